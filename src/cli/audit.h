/* cli/audit.h — `citrus audit ls`: the audit log (GET /v1/audit) as a
 * table or JSON, one page or all of them. */
#ifndef CITRUS_CLI_AUDIT_H
#define CITRUS_CLI_AUDIT_H

/* argv[0] is "audit", argv[1] "ls". Returns the process exit code
 * (cli_util.h: 0 ok, 1 runtime error, 2 usage, 4 not authenticated, 5
 * forbidden). Resets getopt's state. */
int cli_audit_main(int argc, char **argv);

#endif
