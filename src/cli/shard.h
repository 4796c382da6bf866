/* cli/shard.h — `citrus shard`: list, add (register or provision), show,
 * change (set, drain, activate, retire, read-only, retry) and delete shards
 * through a server's /v1/shards routes. */
#ifndef CITRUS_CLI_SHARD_H
#define CITRUS_CLI_SHARD_H

/* argv[0] is "shard", argv[1] the verb. Returns the process exit code: 0 ok,
 * 1 runtime error (server or network error), 2 usage error. Output goes to
 * stdout, errors to stderr. Resets getopt's state. */
int cli_shard_main(int argc, char **argv);

#endif
