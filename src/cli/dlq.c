/* cli/dlq.c — `citrus dlq ls|replay`: the dead letters of <topic>.dlq
 * (GET /v1/dlq/{topic}, page after page) and their replay on the topic
 * (POST /v1/dlq/{topic}/{id}/replay). */
#include "cli/dlq.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_util.h"
#include "net/client.h"

#define usage_error(...) cli_usage_error("dlq", __VA_ARGS__)

#define PAGE_MAX 1000 /* dead letters the server sends in one page */

/* One line of the help per line of source. */
// clang-format off
static const char usage_text[] =
    "usage: citrus dlq <command> [options]\n"
    "\n"
    "commands:\n"
    "  ls TOPIC [--limit N]         the dead letters of TOPIC (those of TOPIC.dlq):\n"
    "                               id, attempts, where they were, where a replay\n"
    "                               put them (PARTITION/OFFSET on TOPIC, or\n"
    "                               'replaying'), the last error (at most --limit,\n"
    "                               default 100)\n"
    "  replay TOPIC ID [--force]    publish dead letter ID (PARTITION-OFFSET, as ls\n"
    "                               shows it) on TOPIC again, same key and event;\n"
    "                               one replayed already is refused (it says where\n"
    "                               it went) unless --force\n"
    "\n"
    "options:\n"
    CLI_USAGE_OPTIONS
    "\n"
    "Exit status: 0 ok, 1 error (including an unknown topic or dead letter),\n"
    "2 bad usage, " CLI_USAGE_EXIT_AUTH ".\n";
// clang-format on

enum { OPT_LIMIT = CLI_OPT_FIRST, OPT_FORCE };

typedef struct dl_args {
    cli_opts cli;
    long long limit;
    bool force;
} dl_args;

typedef struct dl_verb {
    cli_verb v;
    int (*run)(client *c, const dl_args *a);
} dl_verb;

static void print_rows(const json_t *items, bool header)
{
    if (header)
        printf("%-14s  %-8s  %-14s  %-24s  %-14s  %s\n", "ID", "ATTEMPTS", "SOURCE", "TIME",
               "REPLAYED", "ERROR");
    size_t i;
    json_t *d;
    json_array_foreach(items, i, d)
    {
        char src[48];
        snprintf(src, sizeof(src), "%" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT,
                 json_integer_value(json_object_get(d, "source_partition")),
                 json_integer_value(json_object_get(d, "source_offset")));
        const json_t *rep = json_object_get(d, "replay");
        const char *state = cli_str_or(rep, "state", "");
        char replayed[48] = "-";
        if (strcmp(state, "replayed") == 0)
            snprintf(replayed, sizeof(replayed), "%" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT,
                     json_integer_value(json_object_get(rep, "partition")),
                     json_integer_value(json_object_get(rep, "offset")));
        else if (*state)
            snprintf(replayed, sizeof(replayed), "%s", state);
        printf("%-14s  %-8" JSON_INTEGER_FORMAT "  %-14s  %-24s  %-14s  %s\n",
               cli_str_or(d, "id", "?"), json_integer_value(json_object_get(d, "attempts")), src,
               cli_str_or(d, "time", "?"), replayed, cli_str_or(d, "error", "-"));
    }
}

/* Pages until --limit dead letters or the last page; text streams, JSON
 * is gathered into one answer shaped like a page. */
static int dl_ls(client *c, const dl_args *a)
{
    int rc = CLI_EXIT_RUNTIME;
    json_t *all = json_array(), *next = NULL;
    long long got = 0;
    bool more = true;
    if (!all)
        return cli_out_of_memory();
    while (more && got < a->limit) {
        long long want = a->limit - got < PAGE_MAX ? a->limit - got : PAGE_MAX;
        char sfx[96];
        if (next)
            snprintf(sfx, sizeof(sfx),
                     "?limit=%lld&partition=%" JSON_INTEGER_FORMAT
                     "&from_offset=%" JSON_INTEGER_FORMAT,
                     want, json_integer_value(json_object_get(next, "partition")),
                     json_integer_value(json_object_get(next, "from_offset")));
        else
            snprintf(sfx, sizeof(sfx), "?limit=%lld", want);
        char *path = cli_item_path("/v1/dlq/", a->cli.pos[0], sfx);
        json_t *items;
        json_t *page = cli_get_page(c, path, "dead_letters", false, &items, &more);
        free(path);
        if (!page)
            goto out;
        long long n = (long long)json_array_size(items);
        got += n;
        if (a->cli.json)
            json_array_extend(all, items);
        else
            print_rows(items, got == n);
        json_decref(next);
        next = json_incref(json_object_get(page, "next"));
        json_decref(page);
        if (more && !next) {
            fprintf(stderr, "error: unexpected answer from the server: more but no next\n");
            goto out;
        }
        if (!a->cli.json && !cli_flush_out())
            goto out;
    }
    if (a->cli.json) {
        json_t *res = json_pack("{s:O,s:b}", "dead_letters", all, "more", more);
        bool ok = cli_puts_json(res);
        json_decref(res);
        if (!ok)
            goto out;
    } else if (more) {
        printf("(more: raise --limit)\n");
    }
    rc = cli_flush_out() ? 0 : CLI_EXIT_RUNTIME;
out:
    json_decref(next);
    json_decref(all);
    return rc;
}

static bool text_replayed(const json_t *j, long status, const void *ctx)
{
    printf("replayed %s to %s: partition %" JSON_INTEGER_FORMAT " offset %" JSON_INTEGER_FORMAT
           "\n",
           cli_str_or(j, "id", "?"), cli_str_or(j, "topic", "?"),
           json_integer_value(json_object_get(j, "partition")),
           json_integer_value(json_object_get(j, "offset")));
    return true;
}

static int dl_replay(client *c, const dl_args *a)
{
    char *id = client_escape_path(a->cli.pos[1]);
    char *sfx = NULL;
    char *path = NULL;
    if (id && asprintf(&sfx, "/%s/replay%s", id, a->force ? "?force=true" : "") >= 0)
        path = cli_item_path("/v1/dlq/", a->cli.pos[0], sfx);
    free(id);
    free(sfx);
    int rc = cli_exchange_json(c, "POST", path, NULL, a->cli.json, text_replayed, NULL);
    free(path);
    return rc;
}

static const dl_verb verbs[] = {
    {{"ls", 1, 1, CLI_BIT(OPT_LIMIT)}, dl_ls},
    {{"replay", 2, 2, CLI_BIT(OPT_FORCE)}, dl_replay},
};

static const struct option long_opts[] = {
    CLI_LONG_OPTS_COMMON,
    {"limit", required_argument, NULL, OPT_LIMIT},
    {"force", no_argument, NULL, OPT_FORCE},
    CLI_LONG_OPTS_END,
};

static const cli_cmd dlq_cmd = {.name = "dlq",
                                .usage = usage_text,
                                .long_opts = long_opts,
                                .missing = "argument",
                                .empty = "arguments must not be empty"};

static int dl_option(void *ctx, int opt, const char *arg)
{
    dl_args *a = ctx;
    if (opt == OPT_FORCE)
        a->force = true;
    if (opt == OPT_LIMIT) {
        char *end;
        errno = 0;
        a->limit = strtoll(arg, &end, 10);
        if (errno || end == arg || *end || a->limit < 1)
            return usage_error("--limit needs a count >= 1, not '%s'", arg);
    }
    return -1;
}

int cli_dlq_main(int argc, char **argv)
{
    dl_args a = {.limit = 100};
    int rc = cli_parse_args(&dlq_cmd, &a.cli, argc, argv, dl_option, &a);
    if (rc >= 0)
        return rc;
    const dl_verb *v = CLI_PICK_VERB(&dlq_cmd, &a.cli, verbs);
    if (!v)
        return CLI_EXIT_USAGE;
    client *c = cli_client_new(dlq_cmd.name, a.cli.endpoint, &a.cli.creds);
    if (!c)
        return CLI_EXIT_USAGE;
    rc = v->run(c, &a);
    client_free(c);
    return rc;
}
