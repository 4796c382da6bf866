/* cli/kv.c — `citrus kv ...`: the catalog KV from the command line. */
#include "cli/kv.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"
#include "cli/cli_util.h"
#include "net/client.h"
#include "cli/input.h"
#include "wire/base64.h"

#define usage_error(...) cli_usage_error("kv", __VA_ARGS__)

/* A long poll asks the server to hold the request this long... */
#define WATCH_POLL "30s"
/* ...and gives up on it after this long. */
#define WATCH_REQUEST_TIMEOUT_MS 45000L

/* One line of the help per line of source. */
// clang-format off
static const char usage_text[] =
    "usage: citrus kv <command> [options]\n"
    "\n"
    "commands:\n"
    "  get KEY [--consistency strong|bounded]  print a key's value (exactly its bytes)\n"
    "  put KEY VALUE|- [--cas N] [--lease ID]  write a key; VALUE - reads standard input;\n"
    "                                          --cas N writes only if the key's mod_revision\n"
    "                                          is N (0: only if the key does not exist)\n"
    "  del KEY [--prefix] [--cas N]            delete a key, or every key under a prefix\n"
    "  ls [PREFIX] [--limit N] [--keys-only]   list keys (all, or those under PREFIX)\n"
    "  watch PREFIX [--from-revision N] [--count N]\n"
    "                                          print changes under PREFIX (\"\" = all) as\n"
    "                                          they happen, until --count events or Ctrl-C\n"
    "  txn FILE|-                              run the transaction in a JSON file (see\n"
    "                                          POST /v1/txn)\n"
    "  compact [--revision N]                  drop the change history before N (default:\n"
    "                                          now); sm-admin; clears the NOSPACE alarm\n"
    "                                          once the store is back under its quota\n"
    "  defrag                                  give the space freed by deletes and compact\n"
    "                                          back to the file system; sm-admin; clears\n"
    "                                          the NOSPACE alarm as compact does\n"
    "\n"
    "put, del and txn refuse keys under citrus/ (the catalog's own, 403 reserved);\n"
    "--unsafe asks to write them anyway: sm-admin only, and audited.\n"
    "\n"
    "options:\n"
    CLI_USAGE_OPTIONS
    "\n"
    "Options may come anywhere; put -- before a KEY or VALUE that starts with '-'.\n"
    "Exit status: 0 ok, 1 error (including a key not found), 2 bad usage,\n"
    CLI_USAGE_EXIT_AUTH ".\n";
// clang-format on

/* Long-only options (besides CLI_OPT_ENDPOINT). BIT() turns them into a
 * mask, to check which verbs accept them. */
enum {
    OPT_CONSISTENCY = CLI_OPT_FIRST,
    OPT_CAS,
    OPT_LEASE,
    OPT_PREFIX,
    OPT_LIMIT,
    OPT_KEYS_ONLY,
    OPT_FROM_REV,
    OPT_COUNT,
    OPT_UNSAFE,
    OPT_REVISION,
};

#define BIT(opt) CLI_BIT(opt)

typedef struct kv_args {
    cli_opts cli;            /* --endpoint, -o, positional arguments after the verb */
    const char *consistency; /* NULL = server default */
    int64_t cas;             /* -1 = none */
    int64_t lease;           /* 0 = none */
    bool prefix;
    int64_t limit; /* 0 = no limit */
    bool keys_only;
    int64_t from_rev; /* 0 = from now */
    int64_t count;    /* 0 = forever */
    bool unsafe;      /* ?unsafe=true: write under citrus/ (sm-admin) */
    int64_t revision; /* compact: 0 = the current one */
} kv_args;

typedef struct kv_verb {
    cli_verb v; /* first, for cli_pick_verb */
    int (*run)(client *c, const kv_args *a);
} kv_verb;

/* Parses a decimal integer >= min; false when s is anything else. */
static bool parse_i64(const char *s, int64_t min, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < min)
        return false;
    *out = v;
    return true;
}

/* ---- output helpers ---- */

/* The string member name of j, or "" when absent. */
static const char *str_member(const json_t *j, const char *name)
{
    return cli_str_or(j, name, "");
}

static int64_t int_member(const json_t *j, const char *name)
{
    return (int64_t)json_integer_value(json_object_get(j, name));
}

/* Writes the base64 "value" member of j decoded (nothing when absent). */
static bool print_value(const json_t *j)
{
    json_t *v = json_object_get(j, "value");
    if (!json_is_string(v))
        return true;
    size_t n;
    unsigned char *bytes = base64_decode(json_string_value(v), json_string_length(v), &n);
    if (!bytes) {
        fprintf(stderr, "error: the server sent a value that is not base64\n");
        return false;
    }
    fwrite(bytes, 1, n, stdout);
    free(bytes);
    return true;
}

/* "key<TAB>value" (or just the key) lines for an array of items. */
static bool print_items(const json_t *items, bool keys_only)
{
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it)
    {
        fputs(str_member(it, "key"), stdout);
        if (!keys_only) {
            putchar('\t');
            if (!print_value(it))
                return false;
        }
        putchar('\n');
    }
    return true;
}

/* ---- paths ---- */

/* A path and query being built. */
typedef struct pathb {
    char *s;
    size_t len;
    FILE *f;
    char sep; /* '?' before the first query argument, then '&' */
} pathb;

/* Starts base + the escaped key (the key's '/' kept). When out of memory
 * the builder is dead: pathb_arg and pathb_int do nothing and pathb_end
 * gives NULL. */
static void pathb_start(pathb *p, const char *base, const char *key)
{
    memset(p, 0, sizeof(*p));
    char *k = client_escape_path(key);
    p->f = k ? open_memstream(&p->s, &p->len) : NULL;
    if (p->f)
        fprintf(p->f, "%s%s", base, k);
    free(k);
    p->sep = '?';
}

/* Adds name=value, value escaped. */
static void pathb_arg(pathb *p, const char *name, const char *value)
{
    if (!p->f)
        return;
    char *v = client_escape_query(value);
    fprintf(p->f, "%c%s=%s", p->sep, name, v ? v : "");
    free(v);
    p->sep = '&';
}

static void pathb_int(pathb *p, const char *name, int64_t value)
{
    if (!p->f)
        return;
    fprintf(p->f, "%c%s=%" PRId64, p->sep, name, value);
    p->sep = '&';
}

/* Finishes: the path (caller frees), or NULL on allocation failure (which
 * the cli_* request functions report). */
static char *pathb_end(pathb *p)
{
    if (!p->f)
        return NULL;
    if (fclose(p->f) != 0) {
        free(p->s);
        return NULL;
    }
    return p->s;
}

/* ---- verbs ---- */

static int kv_get(client *c, const kv_args *a)
{
    pathb p;
    pathb_start(&p, "/v1/kv/", a->cli.pos[0]);
    if (a->cli.json)
        pathb_arg(&p, "format", "json");
    if (a->consistency)
        pathb_arg(&p, "consistency", a->consistency);
    char *path = pathb_end(&p);
    client_response resp;
    bool ok = cli_request(c, "GET", path, NULL, 0, NULL, false, &resp);
    free(path);
    if (!ok)
        return CLI_EXIT_RUNTIME;
    if (a->cli.json)
        cli_print_body(&resp);
    else
        fwrite(resp.body, 1, resp.body_len, stdout);
    client_response_free(&resp);
    return cli_flush_out() ? 0 : CLI_EXIT_RUNTIME;
}

static bool text_put(const json_t *j, long status, const void *ctx)
{
    printf("OK revision=%" PRId64 " mod_revision=%" PRId64 " version=%" PRId64 "\n",
           int_member(j, "revision"), int_member(j, "mod_revision"), int_member(j, "version"));
    return true;
}

static int kv_put(client *c, const kv_args *a)
{
    int rc = CLI_EXIT_RUNTIME;
    char *value = NULL;
    size_t len = 0;
    bool from_stdin = strcmp(a->cli.pos[1], "-") == 0;
    if (from_stdin) {
        errdetail why;
        if (input_read("-", &value, &len, &why) < 0) {
            fprintf(stderr, "error: %s\n", why.message);
            return CLI_EXIT_RUNTIME;
        }
    }
    pathb p;
    pathb_start(&p, "/v1/kv/", a->cli.pos[0]);
    if (a->cas >= 0)
        pathb_int(&p, "cas", a->cas);
    if (a->lease)
        pathb_int(&p, "lease", a->lease);
    if (a->unsafe)
        pathb_arg(&p, "unsafe", "true");
    char *path = pathb_end(&p);
    static const char *const headers[] = {"Content-Type: application/octet-stream", NULL};
    const char *body = from_stdin ? value : a->cli.pos[1];
    client_response resp;
    if (cli_request(c, "PUT", path, body, from_stdin ? len : strlen(body), headers, false, &resp))
        rc = cli_print_answer(&resp, a->cli.json, text_put, NULL);
    free(path);
    free(value);
    return rc;
}

static bool text_deleted(const json_t *j, long status, const void *ctx)
{
    printf("deleted %" PRId64 " (revision %" PRId64 ")\n", int_member(j, "deleted"),
           int_member(j, "revision"));
    return true;
}

static int kv_del(client *c, const kv_args *a)
{
    pathb p;
    pathb_start(&p, "/v1/kv/", a->cli.pos[0]);
    if (a->prefix)
        pathb_arg(&p, "prefix", "true");
    if (a->cas >= 0)
        pathb_int(&p, "cas", a->cas);
    if (a->unsafe)
        pathb_arg(&p, "unsafe", "true");
    char *path = pathb_end(&p);
    client_response resp;
    int rc = CLI_EXIT_RUNTIME;
    if (cli_request(c, "DELETE", path, NULL, 0, NULL, false, &resp))
        rc = cli_print_answer(&resp, a->cli.json, text_deleted, NULL);
    free(path);
    return rc;
}

/* Lists page by page (after = last key seen) until everything, or --limit
 * items, has been read. Text output streams; JSON output is gathered into
 * one answer shaped like a single page. */
static int kv_ls(client *c, const kv_args *a)
{
    int rc = CLI_EXIT_RUNTIME;
    const char *prefix = a->cli.npos ? a->cli.pos[0] : "";
    char *after = NULL;
    json_t *all = json_array();
    int64_t first_rev = -1, got = 0;
    bool more = true;
    if (!all)
        return cli_out_of_memory();
    while (more && (a->limit == 0 || got < a->limit)) {
        pathb p;
        pathb_start(&p, "/v1/kv/", prefix);
        pathb_arg(&p, "prefix", "true");
        if (a->limit)
            pathb_int(&p, "limit", a->limit - got);
        if (a->keys_only)
            pathb_arg(&p, "keys_only", "true");
        if (after)
            pathb_arg(&p, "after", after);
        char *path = pathb_end(&p);
        json_t *items;
        json_t *page = cli_get_page(c, path, "items", false, &items, &more);
        free(path);
        if (!page)
            goto out;
        if (first_rev < 0)
            first_rev = int_member(page, "revision");
        got += (int64_t)json_array_size(items);
        bool printed = a->cli.json ? json_array_extend(all, items) == 0
                                   : print_items(items, a->keys_only) && cli_flush_out();
        printed = printed && cli_advance_after(&after, items);
        json_decref(page);
        if (!printed)
            goto out;
    }
    if (a->cli.json) {
        json_t *res = json_pack("{s:I, s:O, s:b}", "revision", (json_int_t)first_rev, "items", all,
                                "more", more);
        bool ok = cli_puts_json(res);
        json_decref(res);
        if (!ok || !cli_flush_out())
            goto out;
    }
    rc = 0;
out:
    free(after);
    json_decref(all);
    return rc;
}

/* Set by SIGINT while watching (lock-free, so a handler may set it). */
static atomic_bool watch_interrupted;

static void on_sigint(int sig)
{
    atomic_store(&watch_interrupted, true);
}

/* Prints one watch event; false when the output failed. */
static bool print_event(const json_t *ev, bool json)
{
    if (json)
        return cli_puts_json(ev);
    const char *type = str_member(ev, "type"), *key = str_member(ev, "key");
    int64_t rev = int_member(ev, "mod_revision");
    if (strcmp(type, "delete") == 0) {
        printf("DELETE %s (rev %" PRId64 ")\n", key, rev);
        return true;
    }
    printf("PUT %s ", key);
    if (!print_value(ev))
        return false;
    printf(" (rev %" PRId64 ")\n", rev);
    return true;
}

/* One long poll from *from; prints what came and moves *from past it. */
static int watch_poll(client *c, const kv_args *a, int64_t *from, int64_t *printed)
{
    pathb p;
    pathb_start(&p, "/v1/watch/", a->cli.pos[0]);
    if (*from > 0) /* else the server starts after its current revision */
        pathb_int(&p, "from_revision", *from);
    pathb_arg(&p, "timeout", WATCH_POLL);
    char *path = pathb_end(&p);
    if (!path)
        return cli_out_of_memory();
    client_response resp;
    int rc = client_request(c, "GET", path, NULL, 0, NULL, &resp);
    free(path);
    if (rc == CITRUS_ECLOSED || rc == CITRUS_ETIMEOUT)
        return 0; /* interrupted, or the poll outlived its deadline: go round */
    if (rc < 0) {
        fprintf(stderr, "error: %s\n", client_error(c));
        return CLI_EXIT_RUNTIME;
    }
    if (resp.status != 200) {
        cli_print_answer_error(&resp, false);
        client_response_free(&resp);
        return CLI_EXIT_RUNTIME;
    }
    json_t *j = cli_answer_json(&resp);
    client_response_free(&resp);
    json_t *events = json_object_get(j, "events");
    if (!j || !json_is_array(events)) {
        if (j)
            fprintf(stderr, "error: unexpected answer from the server: no events\n");
        json_decref(j);
        return CLI_EXIT_RUNTIME;
    }
    size_t i;
    json_t *ev;
    rc = 0;
    json_array_foreach(events, i, ev)
    {
        if (a->count && *printed >= a->count)
            break;
        if (!print_event(ev, a->cli.json)) {
            rc = CLI_EXIT_RUNTIME;
            break;
        }
        (*printed)++;
        int64_t rev = int_member(ev, "mod_revision");
        if (rev >= *from)
            *from = rev + 1;
    }
    /* The answer's revision is the point through which every matching change
     * has been sent: the next poll starts after it. */
    int64_t rev = int_member(j, "revision");
    if (rc == 0 && rev >= *from)
        *from = rev + 1;
    json_decref(j);
    if (rc == 0 && !cli_flush_out())
        rc = CLI_EXIT_RUNTIME;
    return rc;
}

static int kv_watch(client *c, const kv_args *a)
{
    int64_t from = a->from_rev, printed = 0;
    struct sigaction sa = {.sa_handler = on_sigint}, old;
    sigemptyset(&sa.sa_mask);
    atomic_store(&watch_interrupted, false);
    sigaction(SIGINT, &sa, &old);
    client_set_abort_flag(c, &watch_interrupted);
    client_set_timeout_ms(c, WATCH_REQUEST_TIMEOUT_MS);
    int rc = 0;
    while (rc == 0 && !atomic_load(&watch_interrupted) && (a->count == 0 || printed < a->count))
        rc = watch_poll(c, a, &from, &printed);
    client_set_abort_flag(c, NULL);
    sigaction(SIGINT, &old, NULL);
    return rc;
}

/* Prints a txn answer: SUCCESS/FAILURE, then one line per result. */
static bool print_txn(const json_t *j, long status, const void *ctx)
{
    printf("%s revision=%" PRId64 "\n",
           json_is_true(json_object_get(j, "succeeded")) ? "SUCCESS" : "FAILURE",
           int_member(j, "revision"));
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(j, "results"), i, r)
    {
        const char *op = str_member(r, "op");
        if (strcmp(op, "put") == 0) {
            printf("put mod_revision=%" PRId64 " version=%" PRId64 "\n",
                   int_member(r, "mod_revision"), int_member(r, "version"));
        } else if (strcmp(op, "delete") == 0) {
            printf("delete deleted=%" PRId64 "\n", int_member(r, "deleted"));
        } else {
            json_t *items = json_object_get(r, "items");
            printf("%s count=%zu\n", op, json_array_size(items));
            if (!print_items(items, false))
                return false;
        }
    }
    return true;
}

static int kv_txn(client *c, const kv_args *a)
{
    char *body;
    errdetail why;
    size_t len;
    const char *file = a->cli.pos[0];
    if (input_read(file, &body, &len, &why) < 0) {
        fprintf(stderr, "error: %s\n", why.message);
        return CLI_EXIT_RUNTIME;
    }
    int rc = CLI_EXIT_RUNTIME;
    json_error_t je;
    json_t *check = json_loadb(body, len, 0, &je);
    if (!json_is_object(check)) {
        fprintf(stderr, "error: %s: not a JSON object%s%s\n",
                strcmp(file, "-") == 0 ? "standard input" : file, check ? "" : ": ",
                check ? "" : je.text);
        goto out;
    }
    static const char *const headers[] = {"Content-Type: application/json", NULL};
    client_response resp;
    if (cli_request(c, "POST", a->unsafe ? "/v1/txn?unsafe=true" : "/v1/txn", body, len, headers,
                    false, &resp))
        rc = cli_print_answer(&resp, a->cli.json, print_txn, NULL);
out:
    json_decref(check);
    free(body);
    return rc;
}

/* The store's state after a compact or defrag (api/maintenance.c). */
static bool print_maintenance(const json_t *j, long status, const void *ctx)
{
    json_t *alarms = json_object_get(j, "alarms");
    printf("revision=%" PRId64 " compact_revision=%" PRId64 " db_size=%" PRId64
           " db_size_in_use=%" PRId64 " quota_bytes=%" PRId64 " alarms=%s\n",
           int_member(j, "revision"), int_member(j, "compact_revision"), int_member(j, "db_size"),
           int_member(j, "db_size_in_use"), int_member(j, "quota_bytes"),
           json_array_size(alarms) ? "NOSPACE" : "none");
    return true;
}

static int kv_compact(client *c, const kv_args *a)
{
    json_t *body =
        a->revision ? json_pack("{s:I}", "revision", (json_int_t)a->revision) : json_object();
    int rc = cli_exchange_json(c, "POST", "/v1/maintenance/compact", body, a->cli.json,
                               print_maintenance, NULL);
    json_decref(body);
    return rc;
}

static int kv_defrag(client *c, const kv_args *a)
{
    json_t *body = json_object();
    int rc = cli_exchange_json(c, "POST", "/v1/maintenance/defrag", body, a->cli.json,
                               print_maintenance, NULL);
    json_decref(body);
    return rc;
}

static const kv_verb verbs[] = {
    {{"get", 1, 1, BIT(OPT_CONSISTENCY)}, kv_get},
    {{"put", 2, 2, BIT(OPT_CAS) | BIT(OPT_LEASE) | BIT(OPT_UNSAFE)}, kv_put},
    {{"del", 1, 1, BIT(OPT_PREFIX) | BIT(OPT_CAS) | BIT(OPT_UNSAFE)}, kv_del},
    {{"ls", 0, 1, BIT(OPT_LIMIT) | BIT(OPT_KEYS_ONLY)}, kv_ls},
    {{"watch", 1, 1, BIT(OPT_FROM_REV) | BIT(OPT_COUNT)}, kv_watch},
    {{"txn", 1, 1, BIT(OPT_UNSAFE)}, kv_txn},
    {{"compact", 0, 0, BIT(OPT_REVISION)}, kv_compact},
    {{"defrag", 0, 0, 0}, kv_defrag},
};

static const struct option long_opts[] = {
    CLI_LONG_OPTS_COMMON,
    {"consistency", required_argument, NULL, OPT_CONSISTENCY},
    {"cas", required_argument, NULL, OPT_CAS},
    {"lease", required_argument, NULL, OPT_LEASE},
    {"prefix", no_argument, NULL, OPT_PREFIX},
    {"limit", required_argument, NULL, OPT_LIMIT},
    {"keys-only", no_argument, NULL, OPT_KEYS_ONLY},
    {"from-revision", required_argument, NULL, OPT_FROM_REV},
    {"count", required_argument, NULL, OPT_COUNT},
    {"unsafe", no_argument, NULL, OPT_UNSAFE},
    {"revision", required_argument, NULL, OPT_REVISION},
    CLI_LONG_OPTS_END,
};

static const cli_cmd kv_cmd = {
    .name = "kv", .usage = usage_text, .long_opts = long_opts, .missing = "argument"};

/* One of kv's own options into *ctx (a kv_args). -1 to go on, else the
 * exit code. */
static int kv_option(void *ctx, int opt, const char *arg)
{
    kv_args *a = ctx;
    switch (opt) {
    case OPT_CONSISTENCY:
        if (strcmp(arg, "strong") != 0 && strcmp(arg, "bounded") != 0)
            return usage_error("--consistency must be strong or bounded, not '%s'", arg);
        a->consistency = arg;
        break;
    case OPT_CAS:
        if (!parse_i64(arg, 0, &a->cas))
            return usage_error("--cas needs a revision (an integer >= 0), not '%s'", arg);
        break;
    case OPT_LEASE:
        if (!parse_i64(arg, 1, &a->lease))
            return usage_error("--lease needs a lease id, not '%s'", arg);
        break;
    case OPT_PREFIX:
        a->prefix = true;
        break;
    case OPT_LIMIT:
        if (!parse_i64(arg, 1, &a->limit))
            return usage_error("--limit needs a count >= 1, not '%s'", arg);
        break;
    case OPT_KEYS_ONLY:
        a->keys_only = true;
        break;
    case OPT_UNSAFE:
        a->unsafe = true;
        break;
    case OPT_FROM_REV:
        if (!parse_i64(arg, 1, &a->from_rev))
            return usage_error("--from-revision needs a revision >= 1, not '%s'", arg);
        break;
    case OPT_COUNT:
        if (!parse_i64(arg, 1, &a->count))
            return usage_error("--count needs a number >= 1, not '%s'", arg);
        break;
    case OPT_REVISION:
        if (!parse_i64(arg, 1, &a->revision))
            return usage_error("--revision needs a revision >= 1, not '%s'", arg);
        break;
    }
    return -1;
}

int cli_kv_main(int argc, char **argv)
{
    kv_args a = {.cas = -1};
    int rc = cli_parse_args(&kv_cmd, &a.cli, argc, argv, kv_option, &a);
    if (rc >= 0)
        return rc;
    const kv_verb *v = CLI_PICK_VERB(&kv_cmd, &a.cli, verbs);
    if (!v)
        return CLI_EXIT_USAGE;
    if (a.prefix && a.cas >= 0)
        return usage_error("%s: --cas applies to one key, not with --prefix", v->v.name);
    client *c = cli_client_new(kv_cmd.name, a.cli.endpoint, &a.cli.creds);
    if (!c)
        return CLI_EXIT_USAGE;
    rc = v->run(c, &a);
    client_free(c);
    return rc;
}
