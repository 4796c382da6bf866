/* cli/tenant.h — `citrus tenant`: register, show, ls, pin and unpin
 * tenants (POST /api/register and the /v1/tenants directory). */
#ifndef CITRUS_CLI_TENANT_H
#define CITRUS_CLI_TENANT_H

/* argv[0] is "tenant", argv[1] the verb. Returns the process exit code: 0
 * ok, 1 runtime error (server or network error, unknown tenant), 2 usage
 * error. Resets getopt's state. */
int cli_tenant_main(int argc, char **argv);

#endif
