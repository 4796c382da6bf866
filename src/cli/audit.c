/* cli/audit.c — `citrus audit ls`: the audit log through GET /v1/audit,
 * one page (--limit rows after --after) or, with --all, every page the
 * server's next_after leads to. */
#include "cli/audit.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_util.h"
#include "net/client.h"

#define usage_error(...) cli_usage_error("audit", __VA_ARGS__)

/* The most rows the server sends in one page. */
#define PAGE_MAX 1000

/* One line of the help per line of source. */
// clang-format off
static const char usage_text[] =
    "usage: citrus audit ls [options]\n"
    "\n"
    "Lists the audit log, oldest first: every change, every read of secrets and\n"
    "every refused request (who, what, on what, with which answer).\n"
    "\n"
    "filters:\n"
    "  --since T         rows from T on: Unix milliseconds or RFC 3339\n"
    "                    (2026-01-02T03:04:05Z)\n"
    "  --principal P     rows of this principal (key:<id>/<name>, a user, ...)\n"
    "  --action A        rows of this action (key.create, kv.put, auth.forbidden, ...)\n"
    "  --target T        rows on this target (a key, a shard id, ...)\n"
    "  --limit N         rows per page, 1..1000 (default: the server's, 100)\n"
    "  --after ID        rows after the row ID (where the last page ended)\n"
    "  --all             every page, not just the first\n"
    "\n"
    "options:\n"
    CLI_USAGE_OPTIONS
    "  --json            the same as -o json\n"
    "\n"
    "Exit status: 0 ok, 1 error, 2 bad usage, " CLI_USAGE_EXIT_AUTH ".\n";
// clang-format on

enum {
    OPT_SINCE = CLI_OPT_FIRST,
    OPT_PRINCIPAL,
    OPT_ACTION,
    OPT_TARGET,
    OPT_LIMIT,
    OPT_AFTER,
    OPT_ALL,
    OPT_JSON,
};

typedef struct ad_args {
    cli_opts cli;
    const char *since, *principal, *action, *target;
    long long limit; /* 0: the server's */
    long long after; /* 0: from the start */
    bool all;
} ad_args;

/* "&name=<value escaped>" into f when value is set; false out of memory. */
static bool add_arg(FILE *f, char *sep, const char *name, const char *value)
{
    if (!value)
        return true;
    char *e = client_escape_query(value);
    if (!e)
        return false;
    fprintf(f, "%c%s=%s", *sep, name, e);
    *sep = '&';
    free(e);
    return true;
}

/* The path of the page after row `after` (caller frees), or NULL. */
static char *page_path(const ad_args *a, long long after)
{
    char *p = NULL, sep = '?';
    size_t len = 0;
    FILE *f = open_memstream(&p, &len);
    if (!f)
        return NULL;
    fputs("/v1/audit", f);
    bool ok = add_arg(f, &sep, "since", a->since) && add_arg(f, &sep, "principal", a->principal) &&
              add_arg(f, &sep, "action", a->action) && add_arg(f, &sep, "target", a->target);
    if (a->limit) {
        fprintf(f, "%climit=%lld", sep, a->limit);
        sep = '&';
    }
    if (after)
        fprintf(f, "%cafter=%lld", sep, after);
    if (fclose(f) != 0 || !ok) {
        free(p);
        return NULL;
    }
    return p;
}

static void print_rows(const json_t *entries, bool header)
{
    if (header)
        printf("%-8s  %-24s  %-32s  %-22s  %-24s  %s\n", "ID", "TIME", "PRINCIPAL", "ACTION",
               "TARGET", "STATUS");
    size_t i;
    json_t *e;
    json_array_foreach(entries, i, e)
    {
        printf("%-8" JSON_INTEGER_FORMAT "  %-24s  %-32s  %-22s  %-24s  %" JSON_INTEGER_FORMAT "\n",
               json_integer_value(json_object_get(e, "id")), cli_str_or(e, "time", "?"),
               cli_str_or(e, "principal", "-"), cli_str_or(e, "action", "?"),
               cli_str_or(e, "target", "-"), json_integer_value(json_object_get(e, "status")));
    }
}

/* One page: its answer (caller decrefs) with *entries borrowed and *next
 * the row to continue after (0: none); NULL after a message. */
static json_t *get_page(client *c, const ad_args *a, long long after, json_t **entries,
                        long long *next)
{
    client_response resp;
    char *path = page_path(a, after);
    bool ok = cli_request(c, "GET", path, NULL, 0, NULL, false, &resp);
    free(path);
    if (!ok)
        return NULL;
    json_t *page = cli_answer_json(&resp);
    client_response_free(&resp);
    *entries = json_object_get(page, "entries");
    json_t *na = json_object_get(page, "next_after");
    if (page && (!json_is_array(*entries) || (!json_is_null(na) && !json_is_integer(na)))) {
        fprintf(stderr, "error: unexpected answer from the server: no entries or next_after\n");
        json_decref(page);
        return NULL;
    }
    *next = json_is_integer(na) ? (long long)json_integer_value(na) : 0;
    if (page && *next && (*next <= after || json_array_size(*entries) == 0)) {
        /* Going round in circles would never end. */
        fprintf(stderr, "error: server says there is more but does not move on\n");
        json_decref(page);
        return NULL;
    }
    return page;
}

/* Page by page while --all says so. Text streams; JSON is gathered into
 * one answer shaped like a single page. */
static int ad_ls(client *c, const ad_args *a)
{
    json_t *all = json_array();
    if (!all)
        return cli_out_of_memory();
    int rc = CLI_EXIT_RUNTIME;
    long long after = a->after, next = 0;
    bool first = true;
    do {
        json_t *entries;
        json_t *page = get_page(c, a, after, &entries, &next);
        if (!page)
            goto out;
        bool ok = true;
        if (a->cli.json)
            ok = json_array_extend(all, entries) == 0;
        else
            print_rows(entries, first);
        json_decref(page);
        if (!ok) {
            cli_out_of_memory();
            goto out;
        }
        if (!a->cli.json && !cli_flush_out())
            goto out;
        first = false;
        after = next;
    } while (a->all && next);
    if (a->cli.json) {
        json_t *res = json_pack("{s:O,s:o}", "entries", all, "next_after",
                                next ? json_integer(next) : json_null());
        bool ok = cli_puts_json(res);
        json_decref(res);
        if (!ok)
            goto out;
    } else if (next) {
        printf("(more: continue with --after %lld, or --all)\n", next);
    }
    rc = cli_flush_out() ? 0 : CLI_EXIT_RUNTIME;
out:
    json_decref(all);
    return rc;
}

static const struct option long_opts[] = {
    CLI_LONG_OPTS_COMMON,
    {"since", required_argument, NULL, OPT_SINCE},
    {"principal", required_argument, NULL, OPT_PRINCIPAL},
    {"action", required_argument, NULL, OPT_ACTION},
    {"target", required_argument, NULL, OPT_TARGET},
    {"limit", required_argument, NULL, OPT_LIMIT},
    {"after", required_argument, NULL, OPT_AFTER},
    {"all", no_argument, NULL, OPT_ALL},
    {"json", no_argument, NULL, OPT_JSON},
    CLI_LONG_OPTS_END,
};

static const cli_cmd audit_cmd = {.name = "audit",
                                  .usage = usage_text,
                                  .long_opts = long_opts,
                                  .missing = "argument",
                                  .empty = "arguments must not be empty"};

/* A whole number in lo..hi from arg into *out; false when it is not. */
static bool parse_num(const char *arg, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    *out = strtoll(arg, &end, 10);
    return !errno && end != arg && !*end && *out >= lo && *out <= hi;
}

static int ad_option(void *ctx, int opt, const char *arg)
{
    ad_args *a = ctx;
    switch (opt) {
    case OPT_SINCE:
        a->since = arg;
        break;
    case OPT_PRINCIPAL:
        a->principal = arg;
        break;
    case OPT_ACTION:
        a->action = arg;
        break;
    case OPT_TARGET:
        a->target = arg;
        break;
    case OPT_LIMIT:
        if (!parse_num(arg, 1, PAGE_MAX, &a->limit))
            return usage_error("--limit needs a count in 1..%d, not '%s'", PAGE_MAX, arg);
        break;
    case OPT_AFTER:
        if (!parse_num(arg, 0, INT64_MAX, &a->after))
            return usage_error("--after needs an audit row id (>= 0), not '%s'", arg);
        break;
    case OPT_ALL:
        a->all = true;
        break;
    case OPT_JSON:
        a->cli.json = true;
        break;
    }
    return -1;
}

int cli_audit_main(int argc, char **argv)
{
    ad_args a = {0};
    int rc = cli_parse_args(&audit_cmd, &a.cli, argc, argv, ad_option, &a);
    if (rc >= 0)
        return rc;
    static const struct {
        cli_verb v;
    } verbs[] = {{{"ls", 0, 0, ~0u}}};
    if (!CLI_PICK_VERB(&audit_cmd, &a.cli, verbs))
        return CLI_EXIT_USAGE;
    client *c = cli_client_new(audit_cmd.name, a.cli.endpoint, &a.cli.creds);
    if (!c)
        return CLI_EXIT_USAGE;
    rc = ad_ls(c, &a);
    client_free(c);
    return rc;
}
