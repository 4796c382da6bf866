/* cli/shard.c — `citrus shard ...`: the shard registry from the command
 * line (GET/POST/PATCH/DELETE /v1/shards and the state actions). */
#include "cli/shard.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/client.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

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
    "  --endpoint URL    server API (default: $CITRUS_ENDPOINT, else " CLIENT_DEFAULT_ENDPOINT ")\n"
    "  -o, --output FMT  text (default) or json (the server's JSON answer)\n"
    "  -h, --help        show this help\n"
    "\n"
    "Exit status: 0 ok, 1 error (including an unknown shard), 2 bad usage.\n";

/* Long-only options. BIT() turns the verb-specific ones into a mask. */
enum {
    OPT_ENDPOINT = 256,
    OPT_STATE,
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

#define BIT(opt) (1u << ((opt)-OPT_STATE))

typedef struct sh_args {
    const char *endpoint;
    bool json;
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
    unsigned seen; /* BIT() of every verb option given */
    char **pos;    /* positional arguments after the verb */
    int npos;
} sh_args;

typedef struct sh_verb {
    const char *name;
    int (*run)(client *c, const sh_args *a, const char *verb);
    int npos;
    unsigned allowed; /* BIT()s */
} sh_verb;

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "citrus shard: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'citrus shard --help'.\n");
    return EXIT_USAGE;
}

static int out_of_memory(void)
{
    fprintf(stderr, "error: out of memory\n");
    return EXIT_RUNTIME;
}

/* ---- requests ---- */

/* Prints an error answer; for force_required also how to go ahead. */
static void print_error(const client_response *resp)
{
    char msg[1024];
    client_response_error(resp, msg, sizeof(msg));
    fprintf(stderr, "error: %s\n", msg);
    if (strncmp(msg, "force_required:", 15) == 0)
        fprintf(stderr, "hint: add --force to do it anyway\n");
}

/* Sends method path with body (a JSON value, or NULL) and insists on a 2xx
 * answer; on anything else prints "error: ..." and returns false. */
static bool call(client *c, const char *method, const char *path, const json_t *body,
                 client_response *resp)
{
    static const char *const headers[] = {"Content-Type: application/json", NULL};
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    if (body && !text) {
        out_of_memory();
        return false;
    }
    int rc =
        client_request(c, method, path, text, text ? strlen(text) : 0, body ? headers : NULL, resp);
    free(text);
    if (rc < 0) {
        fprintf(stderr, "error: %s\n", client_error(c));
        return false;
    }
    if (resp->status < 200 || resp->status > 299) {
        print_error(resp);
        client_response_free(resp);
        return false;
    }
    return true;
}

/* The body of a 2xx answer as a JSON object, or NULL after printing why. */
static json_t *answer_json(const client_response *resp)
{
    char why[256];
    json_t *j = client_response_json(resp, why, sizeof(why));
    if (!j)
        fprintf(stderr, "error: unexpected answer from the server: %s\n", why);
    return j;
}

/* Prints the server's JSON answer as it came, ending in one newline. */
static void print_body(const client_response *resp)
{
    fwrite(resp->body, 1, resp->body_len, stdout);
    if (resp->body_len == 0 || resp->body[resp->body_len - 1] != '\n')
        putchar('\n');
}

static bool flush_out(void)
{
    if (fflush(stdout) == 0 && !ferror(stdout))
        return true;
    fprintf(stderr, "error: writing output: %s\n", strerror(errno));
    return false;
}

/* "/v1/shards/<id><suffix>", the id escaped; caller frees. */
static char *shard_path(const char *id, const char *suffix)
{
    char *e = client_escape_query(id), *p = NULL;
    if (e && asprintf(&p, "/v1/shards/%s%s", e, suffix) < 0)
        p = NULL;
    free(e);
    return p;
}

/* ---- output helpers ---- */

/* The string member name of j, or dflt when absent or null. */
static const char *str_or(const json_t *j, const char *name, const char *dflt)
{
    const char *s = json_string_value(json_object_get(j, name));
    return s && *s ? s : dflt;
}

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
        for (size_t r = 0; r < nrows; r++)
            if (strlen(cells[r * ncols + c]) > w[c])
                w[c] = strlen(cells[r * ncols + c]);
    }
    for (size_t r = 0; r <= nrows; r++) {
        for (size_t c = 0; c < ncols; c++) {
            const char *s = r == 0 ? hdr[c] : cells[(r - 1) * ncols + c];
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
        if (asprintf(&key, "%s -> %s", str_or(r, "from", "(none)"), str_or(r, "to", "(none)")) < 0)
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
        row[0] = strdup(str_or(s, "id", "?"));
        row[1] = strdup(str_or(s, "state", "?"));
        row[2] = strdup(num_member(s, "weight", w, sizeof(w)));
        if (asprintf(&row[3], "%lld", int_member(s, "tokens")) < 0)
            row[3] = NULL;
        if (asprintf(&row[4], "%lld", int_member(s, "tenants")) < 0)
            row[4] = NULL;
        row[5] = strdup(str_or(s, "zone", "-"));
        row[6] = strdup(str_or(s, "dsn", "-"));
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
static void print_shard(const json_t *s)
{
    char w[32];
    printf("id:         %s\n", str_or(s, "id", "?"));
    printf("state:      %s\n", str_or(s, "state", "?"));
    printf("dsn:        %s\n", str_or(s, "dsn", "-"));
    printf("replicas:   ");
    print_list(stdout, json_object_get(s, "replicas"));
    printf("\nzone:       %s\n", str_or(s, "zone", "-"));
    printf("weight:     %s\n", num_member(s, "weight", w, sizeof(w)));
    printf("tags:       ");
    print_tags(stdout, json_object_get(s, "tags"));
    printf("\ntemplate:   %s\n", str_or(s, "template", "-"));
    printf("tokens:     %lld\n", int_member(s, "tokens"));
    printf("tenants:    %lld\n", int_member(s, "tenants"));
    printf("epoch:      %lld\n", int_member(s, "epoch"));
    printf("created_at: %s\n", str_or(s, "created_at", "-"));
    printf("updated_at: %s\n", str_or(s, "updated_at", "-"));
    printf("error:      %s\n", str_or(s, "error", "-"));
    json_t *hist = json_object_get(s, "history");
    if (!json_is_array(hist))
        return;
    printf("history:\n");
    size_t i;
    json_t *e;
    json_array_foreach(hist, i, e)
    {
        printf("  %s  %s -> %s  %s (%s)\n", str_or(e, "at", "?"), str_or(e, "from", "?"),
               str_or(e, "to", "?"), str_or(e, "reason", "-"), str_or(e, "actor", "-"));
    }
}

/* Runs a request whose answer is a shard with a ring change (or, for
 * DELETE, {id, deleted, ring}) and prints it. what() prints the first line
 * of the text output. */
static int change(client *c, const sh_args *a, const char *method, const char *path,
                  const json_t *body, void (*what)(const json_t *j, const sh_args *a))
{
    if (!path)
        return out_of_memory();
    client_response resp;
    if (!call(c, method, path, body, &resp))
        return EXIT_RUNTIME;
    int rc = 0;
    if (a->json) {
        print_body(&resp);
    } else {
        json_t *j = answer_json(&resp);
        if (j) {
            what(j, a);
            print_ring(json_object_get(j, "ring"), json_is_true(json_object_get(j, "dry_run")));
        } else {
            rc = EXIT_RUNTIME;
        }
        json_decref(j);
    }
    client_response_free(&resp);
    return rc == 0 && flush_out() ? 0 : EXIT_RUNTIME;
}

/* ---- verbs ---- */

static int sh_ls(client *c, const sh_args *a, const char *verb)
{
    char *path = NULL;
    if (a->state) {
        char *st = strdup(a->state);
        for (char *p = st; p && *p; p++)
            if (*p == '-')
                *p = '_'; /* read-only, as the action is spelt, is read_only */
        char *e = st ? client_escape_query(st) : NULL;
        if (!e || asprintf(&path, "/v1/shards?state=%s", e) < 0)
            path = NULL;
        free(e);
        free(st);
    } else {
        path = strdup("/v1/shards");
    }
    if (!path)
        return out_of_memory();
    client_response resp;
    bool ok = call(c, "GET", path, NULL, &resp);
    free(path);
    if (!ok)
        return EXIT_RUNTIME;
    int rc = 0;
    if (a->json) {
        print_body(&resp);
    } else {
        json_t *j = answer_json(&resp);
        json_t *shards = json_object_get(j, "shards");
        if (!j || !json_is_array(shards)) {
            if (j)
                fprintf(stderr, "error: unexpected answer from the server: no shards\n");
            rc = EXIT_RUNTIME;
        } else if (!print_shard_table(shards)) {
            rc = out_of_memory();
        }
        json_decref(j);
    }
    client_response_free(&resp);
    return rc == 0 && flush_out() ? 0 : EXIT_RUNTIME;
}

static void what_added(const json_t *j, const sh_args *a)
{
    printf("shard %s added: %s\n", str_or(j, "id", "?"), str_or(j, "state", "?"));
}

static int sh_add(client *c, const sh_args *a, const char *verb)
{
    bool provision = a->seen & BIT(OPT_PROVISION);
    if (provision && a->dsn)
        return usage_error("add: give --dsn (register a database) or --provision (create one), "
                           "not both");
    if (!provision && !a->dsn)
        return usage_error("add: give --dsn DSN to register a database, or --provision");
    if (provision && (a->seen & (BIT(OPT_REPLICA) | BIT(OPT_NO_VERIFY))))
        return usage_error("add --provision does not take --replica or --no-verify");
    if (!provision && (a->seen & BIT(OPT_PARAM)))
        return usage_error("add: --param only goes with --provision");
    json_t *body = json_object();
    if (!body)
        return out_of_memory();
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
    if (a->seen & BIT(OPT_WEIGHT))
        json_object_set_new(body, "weight", json_real(a->weight));
    if (a->tags)
        json_object_set(body, "tags", a->tags);
    const char *path = a->seen & BIT(OPT_NO_VERIFY) ? "/v1/shards?verify=false" : "/v1/shards";
    int rc;
    if (!provision) {
        rc = change(c, a, "POST", path, body, what_added);
        json_decref(body);
        return rc;
    }
    client_response resp;
    bool ok = call(c, "POST", path, body, &resp);
    json_decref(body);
    if (!ok)
        return EXIT_RUNTIME;
    rc = 0;
    if (a->json) {
        print_body(&resp);
    } else {
        json_t *j = answer_json(&resp);
        if (j) {
            const char *id = str_or(j, "id", "?");
            printf("shard %s: %s", id, str_or(j, "state", "?"));
            if (str_or(j, "template", NULL))
                printf(" (template %s)", str_or(j, "template", ""));
            printf("\nit becomes active in the background; follow it with 'citrus shard show "
                   "%s'\n",
                   id);
        } else {
            rc = EXIT_RUNTIME;
        }
        json_decref(j);
    }
    client_response_free(&resp);
    return rc == 0 && flush_out() ? 0 : EXIT_RUNTIME;
}

static int sh_show(client *c, const sh_args *a, const char *verb)
{
    char *path = shard_path(a->pos[0], "");
    if (!path)
        return out_of_memory();
    client_response resp;
    bool ok = call(c, "GET", path, NULL, &resp);
    free(path);
    if (!ok)
        return EXIT_RUNTIME;
    int rc = 0;
    if (a->json) {
        print_body(&resp);
    } else {
        json_t *j = answer_json(&resp);
        if (j)
            print_shard(j);
        else
            rc = EXIT_RUNTIME;
        json_decref(j);
    }
    client_response_free(&resp);
    return rc == 0 && flush_out() ? 0 : EXIT_RUNTIME;
}

static void what_state(const json_t *j, const sh_args *a)
{
    if (json_is_true(json_object_get(j, "dry_run")))
        printf("dry run: shard %s would be %s (nothing changed)\n", str_or(j, "id", "?"),
               str_or(j, "state", "?"));
    else
        printf("shard %s: %s\n", str_or(j, "id", "?"), str_or(j, "state", "?"));
}

/* drain, activate, retire, read-only, retry: POST /v1/shards/ID/VERB. */
static int sh_action(client *c, const sh_args *a, const char *verb)
{
    char *suffix;
    if (asprintf(&suffix, "/%s%s%s", verb, a->force ? "?force=true" : "",
                 a->dry_run ? (a->force ? "&dry_run=true" : "?dry_run=true") : "") < 0)
        return out_of_memory();
    char *path = shard_path(a->pos[0], suffix);
    free(suffix);
    int rc = change(c, a, "POST", path, NULL, what_state);
    free(path);
    return rc;
}

static void what_set(const json_t *j, const sh_args *a)
{
    char w[32];
    printf("shard %s: %s, weight %s, zone %s, tags ", str_or(j, "id", "?"), str_or(j, "state", "?"),
           num_member(j, "weight", w, sizeof(w)), str_or(j, "zone", "-"));
    print_tags(stdout, json_object_get(j, "tags"));
    putchar('\n');
}

static int sh_set(client *c, const sh_args *a, const char *verb)
{
    if (!(a->seen & (BIT(OPT_WEIGHT) | BIT(OPT_ZONE) | BIT(OPT_TAG))))
        return usage_error("set: give at least one of --weight, --zone, --tag");
    json_t *body = json_object();
    if (!body)
        return out_of_memory();
    if (a->seen & BIT(OPT_WEIGHT))
        json_object_set_new(body, "weight", json_real(a->weight));
    if (a->zone)
        json_object_set_new(body, "zone", *a->zone ? json_string(a->zone) : json_null());
    if (a->tags)
        json_object_set(body, "tags", a->tags);
    char *path = shard_path(a->pos[0], "");
    int rc = change(c, a, "PATCH", path, body, what_set);
    free(path);
    json_decref(body);
    return rc;
}

static void what_deleted(const json_t *j, const sh_args *a)
{
    printf("shard %s deleted\n", str_or(j, "id", "?"));
}

static int sh_rm(client *c, const sh_args *a, const char *verb)
{
    char *path = shard_path(a->pos[0], a->force ? "?force=true" : "");
    int rc = change(c, a, "DELETE", path, NULL, what_deleted);
    free(path);
    return rc;
}

#define ACTION_OPTS (BIT(OPT_FORCE) | BIT(OPT_DRY_RUN))

static const sh_verb verbs[] = {
    {"ls", sh_ls, 0, BIT(OPT_STATE)},
    {"add", sh_add, 0,
     BIT(OPT_DSN) | BIT(OPT_ID) | BIT(OPT_REPLICA) | BIT(OPT_ZONE) | BIT(OPT_WEIGHT) |
         BIT(OPT_TAG) | BIT(OPT_TEMPLATE) | BIT(OPT_NO_VERIFY) | BIT(OPT_PROVISION) |
         BIT(OPT_PARAM)},
    {"show", sh_show, 1, 0},
    {"set", sh_set, 1, BIT(OPT_WEIGHT) | BIT(OPT_ZONE) | BIT(OPT_TAG)},
    {"drain", sh_action, 1, ACTION_OPTS},
    {"activate", sh_action, 1, ACTION_OPTS},
    {"retire", sh_action, 1, ACTION_OPTS},
    {"read-only", sh_action, 1, ACTION_OPTS},
    {"retry", sh_action, 1, ACTION_OPTS},
    {"rm", sh_rm, 1, BIT(OPT_FORCE)},
};

static const struct option long_opts[] = {
    {"endpoint", required_argument, NULL, OPT_ENDPOINT},
    {"output", required_argument, NULL, 'o'},
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
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Adds "k=v" to *obj (created on first use); a usage error code, or -1. */
static int add_pair(json_t **obj, const char *opt, const char *arg)
{
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg)
        return usage_error("--%s needs KEY=VALUE, not '%s'", opt, arg);
    if (!*obj && !(*obj = json_object()))
        return out_of_memory();
    char *k = strndup(arg, (size_t)(eq - arg));
    if (!k)
        return out_of_memory();
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

/* Parses argv into *a. Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, sh_args *a)
{
    *a = (sh_args){.endpoint = client_default_endpoint()};
    optind = 0; /* GNU: full re-initialisation, whatever ran getopt before */
    opterr = 0;
    int opt, rc;
    while ((opt = getopt_long(argc, argv, ":o:h", long_opts, NULL)) != -1) {
        if (opt >= OPT_STATE)
            a->seen |= BIT(opt);
        switch (opt) {
        case 'h':
            fputs(usage_text, stdout);
            return 0;
        case OPT_ENDPOINT:
            a->endpoint = optarg;
            break;
        case 'o':
            if (strcmp(optarg, "json") != 0 && strcmp(optarg, "text") != 0)
                return usage_error("-o must be json or text, not '%s'", optarg);
            a->json = strcmp(optarg, "json") == 0;
            break;
        case OPT_STATE:
            a->state = optarg;
            break;
        case OPT_DSN:
            a->dsn = optarg;
            break;
        case OPT_ID:
            a->id = optarg;
            break;
        case OPT_REPLICA:
            if (!a->replicas && !(a->replicas = json_array()))
                return out_of_memory();
            if (json_array_append_new(a->replicas, json_string(optarg)) < 0)
                return usage_error("--replica: '%s' is not valid UTF-8", optarg);
            break;
        case OPT_ZONE:
            a->zone = optarg;
            break;
        case OPT_WEIGHT: {
            char *end;
            errno = 0;
            a->weight = strtod(optarg, &end);
            if (errno || end == optarg || *end || !isfinite(a->weight) || a->weight <= 0)
                return usage_error("--weight needs a number > 0, not '%s'", optarg);
            break;
        }
        case OPT_TAG:
            if ((rc = add_pair(&a->tags, "tag", optarg)) >= 0)
                return rc;
            break;
        case OPT_PARAM:
            if ((rc = add_pair(&a->params, "param", optarg)) >= 0)
                return rc;
            break;
        case OPT_TEMPLATE:
            a->tmpl = optarg;
            break;
        case OPT_NO_VERIFY:
        case OPT_PROVISION:
            break;
        case OPT_FORCE:
            a->force = true;
            break;
        case OPT_DRY_RUN:
            a->dry_run = true;
            break;
        case ':':
            return usage_error("option '%s' needs a value", argv[optind - 1]);
        default:
            return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    a->pos = argv + optind;
    a->npos = argc - optind;
    return -1;
}

static int run(sh_args *a)
{
    if (a->npos < 1) {
        fputs(usage_text, stderr);
        return EXIT_USAGE;
    }
    const char *name = a->pos[0];
    const sh_verb *v = NULL;
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        if (strcmp(verbs[i].name, name) == 0)
            v = &verbs[i];
    if (!v)
        return usage_error("unknown command '%s'", name);
    a->pos++;
    a->npos--;
    if (a->npos != v->npos)
        return usage_error(a->npos < v->npos ? "%s: missing shard ID" : "%s: too many arguments",
                           name);
    if (v->npos && !*a->pos[0])
        return usage_error("%s: the shard ID is empty", name);
    for (int opt = OPT_STATE; opt <= OPT_DRY_RUN; opt++) {
        if ((a->seen & BIT(opt)) && !(v->allowed & BIT(opt))) {
            for (const struct option *o = long_opts; o->name; o++)
                if (o->val == opt)
                    fprintf(stderr, "citrus shard: %s does not take --%s\n", name, o->name);
            fprintf(stderr, "Try 'citrus shard --help'.\n");
            return EXIT_USAGE;
        }
    }
    client *c = client_new(a->endpoint);
    if (!c)
        return usage_error("--endpoint must be an http:// or https:// URL, not '%s'", a->endpoint);
    int rc = v->run(c, a, name);
    client_free(c);
    return rc;
}

int cli_shard_main(int argc, char **argv)
{
    sh_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc < 0)
        rc = run(&a);
    args_clear(&a);
    return rc;
}
