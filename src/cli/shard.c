/* cli/shard.c — `citrus shard ...`: the shard registry from the command
 * line (GET/POST/PATCH/DELETE /v1/shards and the state actions). */
#include "cli/shard.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_util.h"
#include "net/client.h"

#define usage_error(...) cli_usage_error("shard", __VA_ARGS__)

/* One line of the help per line of source. */
// clang-format off
static const char usage_text[] =
    "usage: citrus shard <command> [options]\n"
    "\n"
    "commands:\n"
    "  ls [--state S]                 list shards (S: active, read_only, draining, ...)\n"
    "  add --dsn DSN [--id ID] [--replica DSN]... [--zone Z] [--weight W]\n"
    "      [--tag k=v]... [--template T] [--no-verify]\n"
    "                                 register an existing database; --no-verify skips\n"
    "                                 the connection check\n"
    "  add --provision [--id ID] [--template T] [--param k=v]... [--zone Z]\n"
    "      [--weight W] [--tag k=v]...\n"
    "                                 create a new database; the shard then moves\n"
    "                                 provisioning -> initializing -> active on its own\n"
    "  show ID                        a shard's record and history\n"
    "  set ID [--weight W] [--zone Z] [--tag k=v]...\n"
    "                                 change weight, zone or tags (--tag replaces all\n"
    "                                 tags; --zone '' clears the zone)\n"
    "  drain ID                       give the shard's token ranges to the other shards\n"
    "  activate ID                    make a read_only shard active again, or cancel a drain\n"
    "  retire ID                      retire a drained (or draining) shard\n"
    "  read-only ID                   keep the shard's keys but stop writes to it\n"
    "  retry ID                       provision a failed shard again\n"
    "  rm ID [--force]                delete a retired or failed shard's record\n"
    "\n"
    "options:\n"
    "  --force           do it even when pinned tenants would move without their data\n"
    "                    (rm: also drop a failed shard's tokens and pins)\n"
    "  --dry-run         (state changes) show what would happen, change nothing\n"
    CLI_USAGE_OPTIONS
    "\n"
    "Exit status: 0 ok, 1 error (including an unknown shard), 2 bad usage,\n"
    CLI_USAGE_EXIT_AUTH ".\n";
// clang-format on

/* Long-only options (besides CLI_OPT_ENDPOINT). BIT() turns them into a
 * mask. */
enum {
    OPT_STATE = CLI_OPT_FIRST,
    OPT_DSN,
    OPT_ID,
    OPT_REPLICA,
    OPT_ZONE,
    OPT_WEIGHT,
    OPT_TAG,
    OPT_TEMPLATE,
    OPT_NO_VERIFY,
    OPT_PROVISION,
    OPT_PARAM,
    OPT_FORCE,
    OPT_DRY_RUN,
};

#define BIT(opt) CLI_BIT(opt)

typedef struct sh_args {
    cli_opts cli; /* --endpoint, -o, positional arguments after the verb */
    const char *state;
    const char *dsn;
    const char *id;
    json_t *replicas; /* array of strings, or NULL */
    const char *zone;
    double weight;
    json_t *tags;   /* object, or NULL */
    json_t *params; /* object, or NULL */
    const char *tmpl;
    bool force, dry_run;
} sh_args;

typedef struct sh_verb {
    cli_verb v; /* first, for cli_pick_verb */
    int (*run)(client *c, const sh_args *a, const char *verb);
} sh_verb;

/* ---- output helpers ---- */

static long long int_member(const json_t *j, const char *name)
{
    return (long long)json_integer_value(json_object_get(j, name));
}

/* Formats the number member name of j into buf ("%g"), "-" when absent. */
static const char *num_member(const json_t *j, const char *name, char *buf, size_t len)
{
    json_t *v = json_object_get(j, name);
    if (!json_is_number(v))
        return "-";
    snprintf(buf, len, "%g", json_number_value(v));
    return buf;
}

/* Writes "k=v, k=v" of object o (or "-" when empty). */
static void print_tags(FILE *f, const json_t *o)
{
    const char *k;
    json_t *v;
    bool first = true;
    json_object_foreach((json_t *)o, k, v)
    {
        fprintf(f, "%s%s=%s", first ? "" : ", ", k,
                json_string_value(v) ? json_string_value(v) : "");
        first = false;
    }
    if (first)
        fputc('-', f);
}

/* Writes the strings of array a joined by ", " (or "-" when empty). */
static void print_list(FILE *f, const json_t *a)
{
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v)
    {
        fprintf(f, "%s%s", i ? ", " : "", json_string_value(v));
    }
    if (json_array_size(a) == 0)
        fputc('-', f);
}

/* A table of nrows x ncols strings under a header; the last column is not
 * padded. */
static void print_table(const char *const *hdr, size_t ncols, char **cells, size_t nrows)
{
    size_t w[16] = {0}; /* ncols <= 16 */
    for (size_t c = 0; c < ncols; c++) {
        w[c] = strlen(hdr[c]);
        for (size_t r = 0; r < nrows; r++) {
            const char *cell = cells[r * ncols + c];
            if (cell && strlen(cell) > w[c])
                w[c] = strlen(cell);
        }
    }
    for (size_t r = 0; r <= nrows; r++) {
        for (size_t c = 0; c < ncols; c++) {
            const char *s = r == 0 ? hdr[c] : cells[(r - 1) * ncols + c];
            if (!s)
                s = "";
            if (c + 1 < ncols)
                printf("%-*s  ", (int)w[c], s);
            else
                printf("%s\n", s);
        }
    }
}

/* The ring change of an answer: "ring version N: tokens A -> B, M ranges
 * moved, T tenants affected", then how many of the listed ranges moved
 * between each pair of shards. */
static void print_ring(const json_t *ring, bool dry)
{
    if (!json_is_object(ring))
        return;
    long long before = int_member(ring, "tokens_before"), after = int_member(ring, "tokens_after");
    long long total = int_member(ring, "ranges_total");
    long long tenants = int_member(ring, "tenants_affected");
    if (dry)
        printf("ring (dry run): tokens %lld -> %lld, %lld ranges would move, %lld tenants "
               "affected\n",
               before, after, total, tenants);
    else if (!json_is_true(json_object_get(ring, "changed")))
        printf("ring version %lld: unchanged, tokens %lld, %lld tenants affected\n",
               int_member(ring, "version"), after, tenants);
    else
        printf("ring version %lld: tokens %lld -> %lld, %lld ranges moved, %lld tenants "
               "affected\n",
               int_member(ring, "version"), before, after, total, tenants);
    /* Moves grouped by (from, to), in order of first appearance. */
    json_t *ranges = json_object_get(ring, "ranges");
    size_t n = json_array_size(ranges);
    if (n == 0)
        return;
    json_t *pairs = json_object(), *order = json_array();
    if (!pairs || !order) {
        json_decref(pairs);
        json_decref(order);
        return;
    }
    size_t i;
    json_t *r;
    json_array_foreach(ranges, i, r)
    {
        char *key;
        if (asprintf(&key, "%s -> %s", cli_str_or(r, "from", "(none)"),
                     cli_str_or(r, "to", "(none)")) < 0)
            break;
        json_t *cnt = json_object_get(pairs, key);
        if (cnt) {
            json_integer_set(cnt, json_integer_value(cnt) + 1);
        } else {
            json_object_set_new(pairs, key, json_integer(1));
            json_array_append_new(order, json_string(key));
        }
        free(key);
    }
    json_array_foreach(order, i, r)
    {
        const char *key = json_string_value(r);
        printf("  %s: %lld ranges\n", key,
               (long long)json_integer_value(json_object_get(pairs, key)));
    }
    if ((long long)n < total)
        printf("  (the server listed %zu of the %lld ranges)\n", n, total);
    json_decref(pairs);
    json_decref(order);
}

/* "ID  STATE  WEIGHT ..." for GET /v1/shards. */
static bool print_shard_table(const json_t *shards)
{
    static const char *const hdr[] = {"ID", "STATE", "WEIGHT", "TOKENS", "TENANTS", "ZONE", "DSN"};
    enum { NCOLS = sizeof(hdr) / sizeof(hdr[0]) };
    size_t n = json_array_size(shards);
    char **cells = calloc(n * NCOLS + 1, sizeof(*cells));
    if (!cells)
        return false;
    bool ok = true;
    size_t i;
    json_t *s;
    json_array_foreach(shards, i, s)
    {
        char w[32];
        char **row = cells + i * NCOLS;
        row[0] = strdup(cli_str_or(s, "id", "?"));
        row[1] = strdup(cli_str_or(s, "state", "?"));
        row[2] = strdup(num_member(s, "weight", w, sizeof(w)));
        if (asprintf(&row[3], "%lld", int_member(s, "tokens")) < 0)
            row[3] = NULL;
        if (asprintf(&row[4], "%lld", int_member(s, "tenants")) < 0)
            row[4] = NULL;
        row[5] = strdup(cli_str_or(s, "zone", "-"));
        row[6] = strdup(cli_str_or(s, "dsn", "-"));
        for (size_t c = 0; c < NCOLS; c++)
            ok = ok && row[c];
    }
    if (ok)
        print_table(hdr, NCOLS, cells, n);
    for (size_t k = 0; k < n * NCOLS; k++)
        free(cells[k]);
    free(cells);
    return ok;
}

/* The "key: value" lines of a shard record, with its history. */
static bool text_shard(const json_t *s, long status, const void *ctx)
{
    char w[32];
    printf("id:         %s\n", cli_str_or(s, "id", "?"));
    printf("state:      %s\n", cli_str_or(s, "state", "?"));
    printf("dsn:        %s\n", cli_str_or(s, "dsn", "-"));
    printf("replicas:   ");
    print_list(stdout, json_object_get(s, "replicas"));
    printf("\nzone:       %s\n", cli_str_or(s, "zone", "-"));
    printf("weight:     %s\n", num_member(s, "weight", w, sizeof(w)));
    printf("tags:       ");
    print_tags(stdout, json_object_get(s, "tags"));
    printf("\ntemplate:   %s\n", cli_str_or(s, "template", "-"));
    printf("tokens:     %lld\n", int_member(s, "tokens"));
    printf("tenants:    %lld\n", int_member(s, "tenants"));
    printf("epoch:      %lld\n", int_member(s, "epoch"));
    printf("created_at: %s\n", cli_str_or(s, "created_at", "-"));
    printf("updated_at: %s\n", cli_str_or(s, "updated_at", "-"));
    printf("error:      %s\n", cli_str_or(s, "error", "-"));
    json_t *hist = json_object_get(s, "history");
    if (!json_is_array(hist))
        return true;
    printf("history:\n");
    size_t i;
    json_t *e;
    json_array_foreach(hist, i, e)
    {
        printf("  %s  %s -> %s  %s (%s)\n", cli_str_or(e, "at", "?"), cli_str_or(e, "from", "?"),
               cli_str_or(e, "to", "?"), cli_str_or(e, "reason", "-"), cli_str_or(e, "actor", "-"));
    }
    return true;
}

/* Prints the first line of the text output for a change. */
typedef void what_fn(const json_t *j);

/* The text of a change's answer: the line from *ctx (a what_fn *), then the
 * ring change. */
static bool text_change(const json_t *j, long status, const void *ctx)
{
    what_fn *const *what = ctx;
    (*what)(j);
    print_ring(json_object_get(j, "ring"), json_is_true(json_object_get(j, "dry_run")));
    return true;
}

/* Runs a request whose answer is a shard with a ring change (or, for
 * DELETE, {id, deleted, ring}) and prints it. what() prints the first line
 * of the text output. path NULL: out of memory. */
static int change(client *c, const sh_args *a, const char *method, const char *path,
                  const json_t *body, what_fn *what)
{
    return cli_exchange_json(c, method, path, body, a->cli.json, text_change, &what);
}

/* The text of GET /v1/shards: a table. */
static bool text_shards(const json_t *j, long status, const void *ctx)
{
    json_t *shards = json_object_get(j, "shards");
    if (!json_is_array(shards)) {
        fprintf(stderr, "error: unexpected answer from the server: no shards\n");
        return false;
    }
    if (!print_shard_table(shards)) {
        cli_out_of_memory();
        return false;
    }
    return true;
}

/* ---- verbs ---- */

static int sh_ls(client *c, const sh_args *a, const char *verb)
{
    char *st = a->state ? strdup(a->state) : NULL;
    for (char *p = st; p && *p; p++)
        if (*p == '-')
            *p = '_'; /* read-only, as the action is spelt, is read_only */
    char *path = !a->state ? strdup("/v1/shards")
                 : st      ? cli_item_path("/v1/shards?state=", st, "")
                           : NULL;
    free(st);
    int rc = cli_exchange_json(c, "GET", path, NULL, a->cli.json, text_shards, NULL);
    free(path);
    return rc;
}

static void what_added(const json_t *j)
{
    printf("shard %s added: %s\n", cli_str_or(j, "id", "?"), cli_str_or(j, "state", "?"));
}

/* The text of add --provision's answer. */
static bool text_provisioned(const json_t *j, long status, const void *ctx)
{
    const char *id = cli_str_or(j, "id", "?");
    printf("shard %s: %s", id, cli_str_or(j, "state", "?"));
    if (cli_str_or(j, "template", NULL))
        printf(" (template %s)", cli_str_or(j, "template", ""));
    printf("\nit becomes active in the background; follow it with 'citrus shard show "
           "%s'\n",
           id);
    return true;
}

static int sh_add(client *c, const sh_args *a, const char *verb)
{
    bool provision = a->cli.seen & BIT(OPT_PROVISION);
    if (provision && a->dsn)
        return usage_error("add: give --dsn (register a database) or --provision (create one), "
                           "not both");
    if (!provision && !a->dsn)
        return usage_error("add: give --dsn DSN to register a database, or --provision");
    if (provision && (a->cli.seen & (BIT(OPT_REPLICA) | BIT(OPT_NO_VERIFY))))
        return usage_error("add --provision does not take --replica or --no-verify");
    if (!provision && (a->cli.seen & BIT(OPT_PARAM)))
        return usage_error("add: --param only goes with --provision");
    json_t *body = json_object();
    if (!body)
        return cli_out_of_memory();
    if (a->id)
        json_object_set_new(body, "id", json_string(a->id));
    if (provision) {
        json_t *p = json_object();
        if (a->tmpl)
            json_object_set_new(p, "template", json_string(a->tmpl));
        if (a->params)
            json_object_set(p, "params", a->params);
        json_object_set_new(body, "provision", p);
    } else {
        json_object_set_new(body, "dsn", json_string(a->dsn));
        if (a->replicas)
            json_object_set(body, "replicas", a->replicas);
        if (a->tmpl)
            json_object_set_new(body, "template", json_string(a->tmpl));
    }
    if (a->zone && *a->zone)
        json_object_set_new(body, "zone", json_string(a->zone));
    if (a->cli.seen & BIT(OPT_WEIGHT))
        json_object_set_new(body, "weight", json_real(a->weight));
    if (a->tags)
        json_object_set(body, "tags", a->tags);
    const char *path = a->cli.seen & BIT(OPT_NO_VERIFY) ? "/v1/shards?verify=false" : "/v1/shards";
    int rc = provision
                 ? cli_exchange_json(c, "POST", path, body, a->cli.json, text_provisioned, NULL)
                 : change(c, a, "POST", path, body, what_added);
    json_decref(body);
    return rc;
}

static int sh_show(client *c, const sh_args *a, const char *verb)
{
    char *path = cli_item_path("/v1/shards/", a->cli.pos[0], "");
    int rc = cli_exchange_json(c, "GET", path, NULL, a->cli.json, text_shard, NULL);
    free(path);
    return rc;
}

static void what_state(const json_t *j)
{
    if (json_is_true(json_object_get(j, "dry_run")))
        printf("dry run: shard %s would be %s (nothing changed)\n", cli_str_or(j, "id", "?"),
               cli_str_or(j, "state", "?"));
    else
        printf("shard %s: %s\n", cli_str_or(j, "id", "?"), cli_str_or(j, "state", "?"));
}

/* drain, activate, retire, read-only, retry: POST /v1/shards/ID/VERB. */
static int sh_action(client *c, const sh_args *a, const char *verb)
{
    char *suffix;
    if (asprintf(&suffix, "/%s%s%s", verb, a->force ? "?force=true" : "",
                 a->dry_run ? (a->force ? "&dry_run=true" : "?dry_run=true") : "") < 0)
        return cli_out_of_memory();
    char *path = cli_item_path("/v1/shards/", a->cli.pos[0], suffix);
    free(suffix);
    int rc = change(c, a, "POST", path, NULL, what_state);
    free(path);
    return rc;
}

static void what_set(const json_t *j)
{
    char w[32];
    printf("shard %s: %s, weight %s, zone %s, tags ", cli_str_or(j, "id", "?"),
           cli_str_or(j, "state", "?"), num_member(j, "weight", w, sizeof(w)),
           cli_str_or(j, "zone", "-"));
    print_tags(stdout, json_object_get(j, "tags"));
    putchar('\n');
}

static int sh_set(client *c, const sh_args *a, const char *verb)
{
    if (!(a->cli.seen & (BIT(OPT_WEIGHT) | BIT(OPT_ZONE) | BIT(OPT_TAG))))
        return usage_error("set: give at least one of --weight, --zone, --tag");
    json_t *body = json_object();
    if (!body)
        return cli_out_of_memory();
    if (a->cli.seen & BIT(OPT_WEIGHT))
        json_object_set_new(body, "weight", json_real(a->weight));
    if (a->zone)
        json_object_set_new(body, "zone", *a->zone ? json_string(a->zone) : json_null());
    if (a->tags)
        json_object_set(body, "tags", a->tags);
    char *path = cli_item_path("/v1/shards/", a->cli.pos[0], "");
    int rc = change(c, a, "PATCH", path, body, what_set);
    free(path);
    json_decref(body);
    return rc;
}

static void what_deleted(const json_t *j)
{
    printf("shard %s deleted\n", cli_str_or(j, "id", "?"));
}

static int sh_rm(client *c, const sh_args *a, const char *verb)
{
    char *path = cli_item_path("/v1/shards/", a->cli.pos[0], a->force ? "?force=true" : "");
    int rc = change(c, a, "DELETE", path, NULL, what_deleted);
    free(path);
    return rc;
}

#define ACTION_OPTS (BIT(OPT_FORCE) | BIT(OPT_DRY_RUN))

static const sh_verb verbs[] = {
    {{"ls", 0, 0, BIT(OPT_STATE)}, sh_ls},
    {{"add", 0, 0,
      BIT(OPT_DSN) | BIT(OPT_ID) | BIT(OPT_REPLICA) | BIT(OPT_ZONE) | BIT(OPT_WEIGHT) |
          BIT(OPT_TAG) | BIT(OPT_TEMPLATE) | BIT(OPT_NO_VERIFY) | BIT(OPT_PROVISION) |
          BIT(OPT_PARAM)},
     sh_add},
    {{"show", 1, 1, 0}, sh_show},
    {{"set", 1, 1, BIT(OPT_WEIGHT) | BIT(OPT_ZONE) | BIT(OPT_TAG)}, sh_set},
    {{"drain", 1, 1, ACTION_OPTS}, sh_action},
    {{"activate", 1, 1, ACTION_OPTS}, sh_action},
    {{"retire", 1, 1, ACTION_OPTS}, sh_action},
    {{"read-only", 1, 1, ACTION_OPTS}, sh_action},
    {{"retry", 1, 1, ACTION_OPTS}, sh_action},
    {{"rm", 1, 1, BIT(OPT_FORCE)}, sh_rm},
};

static const struct option long_opts[] = {
    CLI_LONG_OPTS_COMMON,
    {"state", required_argument, NULL, OPT_STATE},
    {"dsn", required_argument, NULL, OPT_DSN},
    {"id", required_argument, NULL, OPT_ID},
    {"replica", required_argument, NULL, OPT_REPLICA},
    {"zone", required_argument, NULL, OPT_ZONE},
    {"weight", required_argument, NULL, OPT_WEIGHT},
    {"tag", required_argument, NULL, OPT_TAG},
    {"template", required_argument, NULL, OPT_TEMPLATE},
    {"no-verify", no_argument, NULL, OPT_NO_VERIFY},
    {"provision", no_argument, NULL, OPT_PROVISION},
    {"param", required_argument, NULL, OPT_PARAM},
    {"force", no_argument, NULL, OPT_FORCE},
    {"dry-run", no_argument, NULL, OPT_DRY_RUN},
    CLI_LONG_OPTS_END,
};

static const cli_cmd shard_cmd = {.name = "shard",
                                  .usage = usage_text,
                                  .long_opts = long_opts,
                                  .missing = "shard ID",
                                  .empty = "the shard ID is empty"};

/* Adds "k=v" to *obj (created on first use); a usage error code, or -1. */
static int add_pair(json_t **obj, const char *opt, const char *arg)
{
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg)
        return usage_error("--%s needs KEY=VALUE, not '%s'", opt, arg);
    if (!*obj && !(*obj = json_object()))
        return cli_out_of_memory();
    char *k = strndup(arg, (size_t)(eq - arg));
    if (!k)
        return cli_out_of_memory();
    int rc = -1;
    if (json_object_get(*obj, k))
        rc = usage_error("--%s %s given twice", opt, k);
    else if (json_object_set_new(*obj, k, json_string(eq + 1)) < 0)
        rc = usage_error("--%s: '%s' is not valid UTF-8", opt, arg);
    free(k);
    return rc;
}

static void args_clear(sh_args *a)
{
    json_decref(a->replicas);
    json_decref(a->tags);
    json_decref(a->params);
}

/* One of shard's own options into *ctx (an sh_args). -1 to go on, else the
 * exit code. */
static int sh_option(void *ctx, int opt, const char *arg)
{
    sh_args *a = ctx;
    switch (opt) {
    case OPT_STATE:
        a->state = arg;
        break;
    case OPT_DSN:
        a->dsn = arg;
        break;
    case OPT_ID:
        a->id = arg;
        break;
    case OPT_REPLICA:
        if (!a->replicas && !(a->replicas = json_array()))
            return cli_out_of_memory();
        if (json_array_append_new(a->replicas, json_string(arg)) < 0)
            return usage_error("--replica: '%s' is not valid UTF-8", arg);
        break;
    case OPT_ZONE:
        a->zone = arg;
        break;
    case OPT_WEIGHT: {
        char *end;
        errno = 0;
        a->weight = strtod(arg, &end);
        if (errno || end == arg || *end || !isfinite(a->weight) || a->weight <= 0)
            return usage_error("--weight needs a number > 0, not '%s'", arg);
        break;
    }
    case OPT_TAG:
        return add_pair(&a->tags, "tag", arg);
    case OPT_PARAM:
        return add_pair(&a->params, "param", arg);
    case OPT_TEMPLATE:
        a->tmpl = arg;
        break;
    case OPT_FORCE:
        a->force = true;
        break;
    case OPT_DRY_RUN:
        a->dry_run = true;
        break;
    }
    return -1; /* --no-verify and --provision: only noted in seen */
}

static int run(sh_args *a)
{
    const sh_verb *v = CLI_PICK_VERB(&shard_cmd, &a->cli, verbs);
    if (!v)
        return CLI_EXIT_USAGE;
    client *c = cli_client_new(shard_cmd.name, a->cli.endpoint, &a->cli.creds);
    if (!c)
        return CLI_EXIT_USAGE;
    int rc = v->run(c, a, v->v.name);
    client_free(c);
    return rc;
}

int cli_shard_main(int argc, char **argv)
{
    sh_args a = {0};
    int rc = cli_parse_args(&shard_cmd, &a.cli, argc, argv, sh_option, &a);
    if (rc < 0)
        rc = run(&a);
    args_clear(&a);
    return rc;
}
