/* cli/tenant.c — `citrus tenant ...`: register tenants through the Citrus
 * API (POST /api/register) and read or change the tenant directory
 * (/v1/tenants). */
#include "cli/tenant.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_util.h"
#include "net/client.h"

#define usage_error(...) cli_usage_error("tenant", __VA_ARGS__)

/* The most tenants the server sends in one page. */
#define PAGE_MAX 10000

/* One line of the help per line of source. */
// clang-format off
static const char usage_text[] =
    "usage: citrus tenant <command> [options]\n"
    "\n"
    "commands:\n"
    "  register BUSINESS_ID LOCATION_ID --type TYPE\n"
    "                               register tenant BUSINESS_ID:LOCATION_ID: pin it to\n"
    "                               the shard the ring gives it and set up the schema\n"
    "                               template TYPE there (again: the same answer)\n"
    "  show KEY                     a tenant's pin\n"
    "  ls [--shard ID] [--limit N] [--after KEY]\n"
    "                               list pinned tenants (all, or those on a shard)\n"
    "  pin KEY SHARD [--force]      pin a tenant to a shard; --force moves a pinned\n"
    "                               tenant (without its data)\n"
    "  unpin KEY                    remove a pin (the key then routes by the ring)\n"
    "\n"
    "options:\n"
    CLI_USAGE_OPTIONS
    "\n"
    "Exit status: 0 ok, 1 error (including an unknown tenant), 2 bad usage,\n"
    CLI_USAGE_EXIT_AUTH ".\n";
// clang-format on

/* Long-only options (besides CLI_OPT_ENDPOINT). */
enum {
    OPT_TYPE = CLI_OPT_FIRST,
    OPT_SHARD,
    OPT_LIMIT,
    OPT_AFTER,
    OPT_FORCE,
};

#define BIT(opt) CLI_BIT(opt)

typedef struct tn_args {
    cli_opts cli; /* --endpoint, -o, positional arguments after the verb */
    const char *type;
    const char *shard;
    long long limit; /* 0 = all */
    const char *after;
    bool force;
} tn_args;

typedef struct tn_verb {
    cli_verb v; /* first, for cli_pick_verb */
    int (*run)(client *c, const tn_args *a);
} tn_verb;

/* A request whose 2xx answer is printed by text() (or as is); frees path
 * (NULL: out of memory). */
static int simple(client *c, const tn_args *a, const char *method, char *path, const json_t *body,
                  cli_text_fn *text)
{
    int rc = cli_exchange_json(c, method, path, body, a->cli.json, text, NULL);
    free(path);
    return rc;
}

/* A string member of an answer and what stands for it when it is absent. */
typedef struct member {
    const char *name, *dflt;
} member;

/* "name: value" lines for the n members m of j, the values starting in
 * column width. */
static void print_members(const json_t *j, const member *m, size_t n, int width)
{
    for (size_t i = 0; i < n; i++)
        printf("%s:%*s%s\n", m[i].name, width - (int)strlen(m[i].name) - 1, "",
               cli_str_or(j, m[i].name, m[i].dflt));
}

/* ---- verbs ---- */

static bool text_registered(const json_t *j, long status, const void *ctx)
{
    static const member m[] = {
        {"shardId", "?"}, {"shardKey", "?"}, {"connectionString", "-"}, {"status", "?"}};
    print_members(j, m, sizeof(m) / sizeof(m[0]), 18);
    printf("new:              %s\n", status == 201 ? "yes" : "no (already registered)");
    return true;
}

static int tn_register(client *c, const tn_args *a)
{
    if (!a->type)
        return usage_error("register: --type TYPE is required (the business type)");
    json_t *body = json_pack("{s:s,s:s,s:s}", "businessId", a->cli.pos[0], "locationId",
                             a->cli.pos[1], "businessType", a->type);
    if (!body)
        return usage_error("register: arguments must be valid UTF-8");
    char *path = strdup("/api/register");
    int rc = simple(c, a, "POST", path, body, text_registered);
    json_decref(body);
    return rc;
}

/* A tenant's pin as "key: value" lines. */
static bool text_pin(const json_t *p, long status, const void *ctx)
{
    static const member m[] = {{"key", "?"},   {"shard_id", "?"},  {"hash", "-"},
                               {"token", "-"}, {"pinned_at", "-"}, {"business_type", "-"}};
    print_members(p, m, sizeof(m) / sizeof(m[0]), 15);
    return true;
}

static int tn_show(client *c, const tn_args *a)
{
    return simple(c, a, "GET", cli_item_path("/v1/tenants/", a->cli.pos[0], ""), NULL, text_pin);
}

static bool text_pinned(const json_t *j, long status, const void *ctx)
{
    printf("%s pinned to %s%s\n", cli_str_or(j, "key", "?"), cli_str_or(j, "shard_id", "?"),
           status == 201 ? " (new pin)" : "");
    return true;
}

static int tn_pin(client *c, const tn_args *a)
{
    json_t *body = json_pack("{s:s}", "shard_id", a->cli.pos[1]);
    if (!body)
        return usage_error("pin: SHARD must be valid UTF-8");
    int rc = simple(c, a, "PUT",
                    cli_item_path("/v1/tenants/", a->cli.pos[0], a->force ? "?force=true" : ""),
                    body, text_pinned);
    json_decref(body);
    return rc;
}

static bool text_unpinned(const json_t *j, long status, const void *ctx)
{
    printf("%s unpinned (it now routes by the ring)\n", cli_str_or(j, "key", "?"));
    return true;
}

static int tn_unpin(client *c, const tn_args *a)
{
    return simple(c, a, "DELETE", cli_item_path("/v1/tenants/", a->cli.pos[0], ""), NULL,
                  text_unpinned);
}

/* One page: the path for it (caller frees). */
static char *page_path(const tn_args *a, const char *after, long long want)
{
    char *shard = a->shard ? client_escape_query(a->shard) : NULL;
    char *aft = after ? client_escape_query(after) : NULL;
    char *p = NULL;
    size_t len = 0;
    FILE *f = (!a->shard || shard) && (!after || aft) ? open_memstream(&p, &len) : NULL;
    if (f) {
        char sep = '?';
        fputs("/v1/tenants", f);
        if (shard) {
            fprintf(f, "%cshard=%s", sep, shard);
            sep = '&';
        }
        if (aft) {
            fprintf(f, "%cafter=%s", sep, aft);
            sep = '&';
        }
        if (want > 0)
            fprintf(f, "%climit=%lld", sep, want);
        if (fclose(f) != 0) {
            free(p);
            p = NULL;
        }
    }
    free(shard);
    free(aft);
    return p;
}

/* Rows of a page of tenants, under the header for the first page. */
static void print_tenant_rows(const json_t *items, bool header)
{
    if (header)
        printf("%-24s  %-16s  %-14s  %s\n", "KEY", "SHARD", "TYPE", "PINNED_AT");
    size_t i;
    json_t *t;
    json_array_foreach(items, i, t)
    {
        printf("%-24s  %-16s  %-14s  %s\n", cli_str_or(t, "key", "?"),
               cli_str_or(t, "shard_id", "?"), cli_str_or(t, "business_type", "-"),
               cli_str_or(t, "pinned_at", "-"));
    }
}

/* Lists page by page (after = last key seen) until everything, or --limit
 * tenants, has been read. Text streams; JSON is gathered into one answer
 * shaped like a single page. */
static int tn_ls(client *c, const tn_args *a)
{
    int rc = CLI_EXIT_RUNTIME;
    char *after = a->after ? strdup(a->after) : NULL;
    json_t *all = json_array();
    long long got = 0;
    bool more = true;
    if (!all || (a->after && !after)) {
        free(after);
        json_decref(all);
        return cli_out_of_memory();
    }
    while (more && (a->limit == 0 || got < a->limit)) {
        long long want = 0;
        if (a->limit)
            want = a->limit - got < PAGE_MAX ? a->limit - got : PAGE_MAX;
        char *path = page_path(a, after, want);
        json_t *items;
        json_t *page = cli_get_page(c, path, "tenants", true, &items, &more);
        free(path);
        if (!page)
            goto out;
        long long n = (long long)json_array_size(items);
        got += n;
        bool printed = true;
        if (a->cli.json)
            printed = json_array_extend(all, items) == 0;
        else
            print_tenant_rows(items, got == n);
        printed = printed && cli_advance_after(&after, items);
        json_decref(page);
        if (!printed || (!a->cli.json && !cli_flush_out()))
            goto out;
    }
    if (a->cli.json) {
        json_t *res = json_pack("{s:O,s:b}", "tenants", all, "more", more);
        bool ok = cli_puts_json(res);
        json_decref(res);
        if (!ok)
            goto out;
    } else if (more) {
        printf("(more: continue with --after %s)\n", after ? after : "");
    }
    rc = cli_flush_out() ? 0 : CLI_EXIT_RUNTIME;
out:
    free(after);
    json_decref(all);
    return rc;
}

static const tn_verb verbs[] = {
    {{"register", 2, 2, BIT(OPT_TYPE)}, tn_register},
    {{"show", 1, 1, 0}, tn_show},
    {{"ls", 0, 0, BIT(OPT_SHARD) | BIT(OPT_LIMIT) | BIT(OPT_AFTER)}, tn_ls},
    {{"pin", 2, 2, BIT(OPT_FORCE)}, tn_pin},
    {{"unpin", 1, 1, 0}, tn_unpin},
};

static const struct option long_opts[] = {
    CLI_LONG_OPTS_COMMON,
    {"type", required_argument, NULL, OPT_TYPE},
    {"shard", required_argument, NULL, OPT_SHARD},
    {"limit", required_argument, NULL, OPT_LIMIT},
    {"after", required_argument, NULL, OPT_AFTER},
    {"force", no_argument, NULL, OPT_FORCE},
    CLI_LONG_OPTS_END,
};

static const cli_cmd tenant_cmd = {.name = "tenant",
                                   .usage = usage_text,
                                   .long_opts = long_opts,
                                   .missing = "argument",
                                   .empty = "arguments must not be empty"};

/* One of tenant's own options into *ctx (a tn_args). -1 to go on, else the
 * exit code. */
static int tn_option(void *ctx, int opt, const char *arg)
{
    tn_args *a = ctx;
    switch (opt) {
    case OPT_TYPE:
        a->type = arg;
        break;
    case OPT_SHARD:
        a->shard = arg;
        break;
    case OPT_LIMIT: {
        char *end;
        errno = 0;
        a->limit = strtoll(arg, &end, 10);
        if (errno || end == arg || *end || a->limit < 1)
            return usage_error("--limit needs a count >= 1, not '%s'", arg);
        break;
    }
    case OPT_AFTER:
        a->after = arg;
        break;
    case OPT_FORCE:
        a->force = true;
        break;
    }
    return -1;
}

int cli_tenant_main(int argc, char **argv)
{
    tn_args a = {0};
    int rc = cli_parse_args(&tenant_cmd, &a.cli, argc, argv, tn_option, &a);
    if (rc >= 0)
        return rc;
    const tn_verb *v = CLI_PICK_VERB(&tenant_cmd, &a.cli, verbs);
    if (!v)
        return CLI_EXIT_USAGE;
    client *c = cli_client_new(tenant_cmd.name, a.cli.endpoint, &a.cli.creds);
    if (!c)
        return CLI_EXIT_USAGE;
    rc = v->run(c, &a);
    client_free(c);
    return rc;
}
