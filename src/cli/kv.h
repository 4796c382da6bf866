/* cli/kv.h — `citrus kv`: get, put, del, ls, watch and txn against a
 * server's /v1/kv, /v1/watch and /v1/txn routes. */
#ifndef CITRUS_CLI_KV_H
#define CITRUS_CLI_KV_H

/* argv[0] is "kv", argv[1] the verb. Returns the process exit code: 0 ok,
 * 1 runtime error (server or network error, key not found), 2 usage error.
 * Output goes to stdout, errors to stderr. Resets getopt's state. */
int cli_kv_main(int argc, char **argv);

#endif
