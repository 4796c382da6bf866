/* cli/query.h — `citrus query KEY SQL [PARAM...]`: one statement through
 * the router, with libcitrus. */
#ifndef CITRUS_CLI_QUERY_H
#define CITRUS_CLI_QUERY_H

/* argv[0] is "query". Returns the process exit code: 0 ok, 1 runtime error
 * (including a SQL error), 2 usage error. Resets getopt's state. */
int cli_query_main(int argc, char **argv);

#endif
