/* cli/auth.h — `citrus auth`: make, list and revoke API keys
 * (/v1/auth/keys) and bootstrap a cluster's first admin key
 * (/v1/auth/bootstrap). */
#ifndef CITRUS_CLI_AUTH_H
#define CITRUS_CLI_AUTH_H

/* argv[0] is "auth", then "key create|ls|rm ..." or "bootstrap". Returns
 * the process exit code (cli_util.h: 0 ok, 1 runtime error, 2 usage, 4 not
 * authenticated, 5 forbidden, or for bootstrap: already bootstrapped).
 * Resets getopt's state. */
int cli_auth_main(int argc, char **argv);

#endif
