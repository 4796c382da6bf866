/* cli/cli.h — the citrus command table: name, entry point, one-line help. */
#ifndef CITRUS_CLI_CLI_H
#define CITRUS_CLI_CLI_H

/* Runs `citrus ARGS...`; returns the exit code (0 ok, 1 runtime error,
 * 2 usage error). */
int cli_main(int argc, char **argv, char **envp);

#endif
