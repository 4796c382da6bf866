/* cli/cli.c — subcommand dispatch and `citrus help` / `citrus version`. */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

#include "cli/audit.h"
#include "cli/dlq.h"
#include "cli/events.h"
#include "cli/auth.h"
#include "cli/backup.h"
#include "cli/cli_util.h"
#include "cli/cluster.h"
#include "cli/kv.h"
#include "cli/query.h"
#include "cli/restore.h"
#include "cli/route.h"
#include "node/serve.h"
#include "cli/shard.h"
#include "cli/tenant.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv, char **envp);
    const char *help;
} command;

static int run_kv(int argc, char **argv, char **envp)
{
    return cli_kv_main(argc, argv);
}

static int run_backup(int argc, char **argv, char **envp)
{
    return cli_backup_main(argc, argv);
}

static int run_restore(int argc, char **argv, char **envp)
{
    return cli_restore_main(argc, argv);
}

static int run_cluster(int argc, char **argv, char **envp)
{
    return cli_cluster_main(argc, argv);
}

static int run_shard(int argc, char **argv, char **envp)
{
    return cli_shard_main(argc, argv);
}

static int run_route(int argc, char **argv, char **envp)
{
    return cli_route_main(argc, argv);
}

static int run_tenant(int argc, char **argv, char **envp)
{
    return cli_tenant_main(argc, argv);
}

static int run_query(int argc, char **argv, char **envp)
{
    return cli_query_main(argc, argv);
}

static int run_auth(int argc, char **argv, char **envp)
{
    return cli_auth_main(argc, argv);
}

static int run_audit(int argc, char **argv, char **envp)
{
    return cli_audit_main(argc, argv);
}

static int run_events(int argc, char **argv, char **envp)
{
    return cli_events_main(argc, argv);
}

static int run_dlq(int argc, char **argv, char **envp)
{
    return cli_dlq_main(argc, argv);
}

static int run_version(int argc, char **argv, char **envp)
{
    printf("citrus %s\n", CITRUS_VERSION);
    return 0;
}

static int run_help(int argc, char **argv, char **envp);

static const command commands[] = {
    {"dev", cli_serve_main, "run everything embedded in one process (catalog API, store)"},
    {"server", cli_serve_main, "run a server node"},
    {"router", cli_serve_main, "run a server node with its router on (127.0.0.1:8080)"},
    {"kv", run_kv, "get, put, del, ls, watch, txn against the catalog KV API"},
    {"cluster", run_cluster, "cluster status: nodes, catalog, controller leader"},
    {"shard", run_shard, "list, add, show, change, drain, retire and delete shards"},
    {"route", run_route, "show which shard each key goes to"},
    {"tenant", run_tenant, "register tenants; show, list, pin and unpin them"},
    {"query", run_query, "run SQL on the shard of a key, through the router (libcitrus)"},
    {"backup", run_backup, "write a consistent snapshot of the catalog to a file"},
    {"restore", run_restore, "rebuild an embedded store from a backup file"},
    {"auth", run_auth, "make, list and revoke API keys; bootstrap the first admin key"},
    {"audit", run_audit, "list the audit log: who changed what, and refused requests"},
    {"events", run_events, "publish events, print a topic's events, consumer groups' lag"},
    {"dlq", run_dlq, "list a topic's dead letters and replay them"},
    {"version", run_version, "print the version"},
    {"help", run_help, "show this help, or a command's help: citrus help COMMAND"},
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *f)
{
    fprintf(f, "usage: citrus COMMAND [options]\n\nCitrus: shard management for multi-tenant "
               "databases.\n\nCommands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\nRun 'citrus COMMAND --help' for a command's options.\n");
}

static const command *find(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static int run_help(int argc, char **argv, char **envp)
{
    if (argc < 2) {
        usage(stdout);
        return 0;
    }
    const command *c = find(argv[1]);
    if (!c || c->run == run_help) {
        usage(c ? stdout : stderr);
        return c ? 0 : 2;
    }
    char *args[] = {argv[1], "--help", NULL};
    return c->run(2, args, envp);
}

int cli_main(int argc, char **argv, char **envp)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0)
        return run_version(0, NULL, envp);
    const command *c = find(argv[1]);
    if (!c) {
        fprintf(stderr, "citrus: unknown command '%s'\n\n", argv[1]);
        usage(stderr);
        return 2;
    }
    cli_set_command(c->name);
    return cli_exit_code(c->run(argc - 1, argv + 1, envp));
}
