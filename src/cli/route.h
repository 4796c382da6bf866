/* cli/route.h — `citrus route KEY...`: which shard each key goes to
 * (GET /v1/route/{key}, or POST /v1/route for several keys). */
#ifndef CITRUS_CLI_ROUTE_H
#define CITRUS_CLI_ROUTE_H

/* argv[0] is "route", the keys follow. Returns the process exit code: 0 ok,
 * 1 runtime error (server or network error), 2 usage error. Resets
 * getopt's state. */
int cli_route_main(int argc, char **argv);

#endif
