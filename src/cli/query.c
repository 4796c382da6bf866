/* cli/query.c — `citrus query KEY SQL [PARAM...]`: runs one statement on
 * the shard KEY routes to, through the router, using libcitrus
 * (include/citrus/citrus.h) as any application would; prints the rows as a
 * table, or as JSON. */
#include "cli/query.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/citrus.h"
#include "cli/cli_util.h"
#include "wire/base64.h"

#define usage_error(...) cli_usage_error("query", __VA_ARGS__)
#define DEFAULT_ROUTER "http://127.0.0.1:8080"
#define MAX_ENDPOINTS 16

/* One line of the help per line of source. */
// clang-format off
static const char usage_text[] =
    "usage: citrus query [options] KEY SQL [PARAM...]\n"
    "       citrus query [options] --scatter SQL [PARAM...]\n"
    "\n"
    "Runs SQL on the shard KEY routes to (its pin, else the ring), through the\n"
    "router; PARAMs are bound to $1, $2, ... as text (--json-params: as JSON\n"
    "values: 42, 1.5, \"text\", true, null, {\"$bytes\": \"<base64>\"}). Prints the rows\n"
    "as a table and then \"(N rows, shard S)\"; a write prints \"(N changed, shard S)\".\n"
    "\n"
    "options:\n"
    "  --endpoint URL[,URL...]  Citrus API nodes, tried in turn (default:\n"
    "                           $CITRUS_ENDPOINT, else " CLIENT_DEFAULT_ENDPOINT ")\n"
    CLI_USAGE_CREDS
    "  --router URL             the router (default: $CITRUS_ROUTER, else " DEFAULT_ROUTER ")\n"
    "  --consistency LEVEL      strong (default: the primary) or eventual (a replica)\n"
    "  --max-lag-ms N           eventual: the most replication lag accepted\n"
    "  --json-params            PARAMs are JSON values\n"
    "  --scatter                run on every active shard and concatenate the rows\n"
    "  -o, --output FMT         text (default) or json: {shard_id, served_by, ring_version,\n"
    "                           columns, rows, changes, truncated}\n"
    CLI_USAGE_HELP
    "\n"
    "Exit status: 0 ok, 1 error (including a SQL error), 2 bad usage,\n"
    CLI_USAGE_EXIT_AUTH ".\n";
// clang-format on

enum { OPT_ROUTER = CLI_OPT_FIRST, OPT_CONSISTENCY, OPT_MAX_LAG, OPT_JSON_PARAMS, OPT_SCATTER };

typedef struct q_args {
    const char *router;
    citrus_query_opts opts;
    bool json_params, scatter;
} q_args;

static int own_option(void *ctx, int opt, const char *arg)
{
    q_args *a = ctx;
    char *end;
    switch (opt) {
    case OPT_ROUTER:
        a->router = arg;
        return -1;
    case OPT_CONSISTENCY:
        if (strcmp(arg, "strong") != 0 && strcmp(arg, "eventual") != 0)
            return usage_error("--consistency must be strong or eventual, not '%s'", arg);
        a->opts.consistency = strcmp(arg, "eventual") == 0 ? CITRUS_EVENTUAL : CITRUS_STRONG;
        return -1;
    case OPT_MAX_LAG:
        errno = 0;
        a->opts.max_lag_ms = strtol(arg, &end, 10);
        if (errno || !*arg || *end || a->opts.max_lag_ms < 0)
            return usage_error("--max-lag-ms must be a number of milliseconds, not '%s'", arg);
        return -1;
    case OPT_JSON_PARAMS:
        a->json_params = true;
        return -1;
    default:
        a->scatter = true;
        return -1;
    }
}

/* PARAMs as citrus_params; with --json-params their JSON values stay in
 * held (the params borrow their bytes). */
static int parse_params(char **pos, int n, bool as_json, citrus_param *out, json_t *held,
                        unsigned char **blobs)
{
    for (int i = 0; i < n; i++) {
        if (!as_json) {
            out[i] = citrus_param_text(pos[i]);
            continue;
        }
        json_t *j = json_loads(pos[i], JSON_DECODE_ANY, NULL);
        json_t *b = json_object_get(j, "$bytes");
        json_array_append_new(held, j);
        size_t len = 0;
        if (json_is_string(b) && json_object_size(j) == 1 &&
            (blobs[i] = base64_decode(json_string_value(b), json_string_length(b), &len)))
            out[i] = citrus_param_blob(blobs[i], len);
        else if (json_is_integer(j))
            out[i] = citrus_param_int(json_integer_value(j));
        else if (json_is_real(j))
            out[i] = citrus_param_real(json_real_value(j));
        else if (json_is_boolean(j))
            out[i] = citrus_param_bool(json_is_true(j));
        else if (json_is_null(j))
            out[i] = citrus_param_null();
        else if (json_is_string(j))
            out[i] = citrus_param_textn(json_string_value(j), json_string_length(j));
        else
            return usage_error("PARAM %d is not a JSON scalar or {\"$bytes\": base64}: %s", i + 1,
                               pos[i]);
    }
    return -1;
}

/* A cell as JSON (the router's value forms). */
static json_t *cell_json(const citrus_result *r, size_t row, size_t col)
{
    size_t len;
    switch (citrus_result_type(r, row, col)) {
    case CITRUS_INT:
        return json_integer(citrus_result_int(r, row, col));
    case CITRUS_REAL:
        return json_real(citrus_result_real(r, row, col));
    case CITRUS_BOOL:
        return json_boolean(citrus_result_bool(r, row, col));
    case CITRUS_TEXT: {
        const char *s = citrus_result_text(r, row, col, &len);
        return json_stringn_nocheck(s, len);
    }
    case CITRUS_BLOB: {
        const void *p = citrus_result_blob(r, row, col, &len);
        char *b = base64_encode(p, len);
        json_t *j = b ? json_pack("{s:s}", "$bytes", b) : NULL;
        free(b);
        return j;
    }
    default:
        return json_null();
    }
}

static json_t *result_json(const citrus_result *r)
{
    json_t *cols = json_array(), *rows = json_array();
    for (size_t c = 0; c < citrus_result_column_count(r); c++)
        json_array_append_new(cols, json_string(citrus_result_column_name(r, c)));
    for (size_t i = 0; i < citrus_result_row_count(r); i++) {
        json_t *row = json_array();
        for (size_t c = 0; c < citrus_result_column_count(r); c++)
            json_array_append_new(row, cell_json(r, i, c));
        json_array_append_new(rows, row);
    }
    return json_pack("{s:s,s:s,s:I,s:o,s:o,s:I,s:b}", "shard_id", citrus_result_shard_id(r),
                     "served_by", citrus_result_from_replica(r) ? "replica" : "primary",
                     "ring_version", (json_int_t)citrus_result_ring_version(r), "columns", cols,
                     "rows", rows, "changes", (json_int_t)citrus_result_changes(r), "truncated",
                     citrus_result_truncated(r));
}

/* A cell as table text (malloc'd): NULL as "NULL", blobs as \x<hex>. */
static char *cell_text(const citrus_result *r, size_t row, size_t col)
{
    json_t *j = cell_json(r, row, col);
    char *s = NULL;
    if (json_is_string(j))
        s = strdup(json_string_value(j));
    else if (json_is_null(j))
        s = strdup("NULL");
    else
        s = json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT);
    json_decref(j);
    return s;
}

/* The rows, columns padded to their widest cell. */
static bool print_table(const citrus_result *r)
{
    size_t nc = citrus_result_column_count(r), nr = citrus_result_row_count(r);
    char **cells = calloc((nr + 1) * nc + 1, sizeof(*cells));
    size_t *width = calloc(nc + 1, sizeof(*width));
    bool ok = cells && width;
    for (size_t i = 0; ok && i <= nr; i++)
        for (size_t c = 0; ok && c < nc; c++) {
            char *s = i == 0 ? strdup(citrus_result_column_name(r, c)) : cell_text(r, i - 1, c);
            cells[i * nc + c] = s;
            ok = s != NULL;
            if (ok && strlen(s) > width[c])
                width[c] = strlen(s);
        }
    for (size_t i = 0; ok && nc && i <= nr; i++) {
        for (size_t c = 0; c < nc; c++)
            printf("%s%-*s", c ? " | " : "", c + 1 < nc ? (int)width[c] : 0, cells[i * nc + c]);
        putchar('\n');
        if (i == 0 && nc) {
            for (size_t c = 0; c < nc; c++) {
                printf("%s", c ? "-+-" : "");
                for (size_t k = 0; k < width[c]; k++)
                    putchar('-');
            }
            putchar('\n');
        }
    }
    for (size_t i = 0; cells && i < (nr + 1) * nc; i++)
        free(cells[i]);
    free(cells);
    free(width);
    if (!ok)
        return cli_out_of_memory(), false;
    const char *sid = citrus_result_shard_id(r);
    if (nc)
        printf("(%zu row%s%s%s%s%s)\n", nr, nr == 1 ? "" : "s", *sid ? ", shard " : "", sid,
               citrus_result_from_replica(r) ? ", replica" : "",
               citrus_result_truncated(r) ? ", truncated" : "");
    else
        printf("(%" PRId64 " changed%s%s)\n", citrus_result_changes(r), *sid ? ", shard " : "",
               sid);
    return true;
}

static void print_error(const citrus_error *e)
{
    fprintf(stderr, "error: %s: %s", e->name, e->message);
    if (e->sqlstate[0])
        fprintf(stderr, " (sqlstate %s)", e->sqlstate);
    fputc('\n', stderr);
}

/* Splits the comma-separated endpoint list (in place) into v. */
static size_t split_endpoints(char *list, const char **v)
{
    size_t n = 0;
    for (char *save = NULL, *t = strtok_r(list, ",", &save); t && n < MAX_ENDPOINTS;
         t = strtok_r(NULL, ",", &save))
        v[n++] = t;
    return n;
}

static const cli_cmd query_cmd;

static int run(const cli_opts *o, const q_args *a, citrus_param *params, int np)
{
    char *list = strdup(o->endpoint);
    if (!list)
        return cli_out_of_memory();
    cli_auth au;
    int rc = cli_auth_load(query_cmd.name, &o->creds, &au);
    if (rc != 0) {
        free(list);
        return rc;
    }
    const char *eps[MAX_ENDPOINTS];
    citrus_options opt = {.endpoints = eps,
                          .nendpoints = split_endpoints(list, eps),
                          .router_url = a->router,
                          .no_watch = 1,
                          .token = au.token,
                          .cacert = au.cacert,
                          .cert = au.cert,
                          .key = au.key};
    citrus_error e;
    rc = CLI_EXIT_RUNTIME;
    citrus_client *c = citrus_connect(&opt, &e);
    cli_auth_clear(&au); /* the client has its copy */
    citrus_result *r = NULL;
    int qrc = c ? 0 : e.code;
    if (c && a->scatter)
        qrc = citrus_scatter(c, o->pos[0], params, (size_t)np, &a->opts, &r, &e);
    else if (c)
        qrc = citrus_query(c, o->pos[0], o->pos[1], params, (size_t)np, &a->opts, &r, &e);
    if (qrc == CITRUS_EINVAL && !c)
        rc = usage_error("%s", e.message);
    else if (qrc == CITRUS_EUNAUTHENTICATED || qrc == CITRUS_EFORBIDDEN)
        rc = cli_refused(e.http_status              ? e.http_status
                         : qrc == CITRUS_EFORBIDDEN ? 403
                                                    : 401,
                         e.message);
    else if (qrc < 0)
        print_error(&e);
    else if (o->json) {
        json_t *j = result_json(r);
        rc = cli_puts_json(j) ? 0 : CLI_EXIT_RUNTIME;
        json_decref(j);
    } else
        rc = print_table(r) ? 0 : CLI_EXIT_RUNTIME;
    citrus_result_free(r);
    citrus_close(c);
    free(list);
    return rc == 0 && !cli_flush_out() ? CLI_EXIT_RUNTIME : rc;
}

static const struct option long_opts[] = {
    CLI_LONG_OPTS_COMMON,
    {"router", required_argument, NULL, OPT_ROUTER},
    {"consistency", required_argument, NULL, OPT_CONSISTENCY},
    {"max-lag-ms", required_argument, NULL, OPT_MAX_LAG},
    {"json-params", no_argument, NULL, OPT_JSON_PARAMS},
    {"scatter", no_argument, NULL, OPT_SCATTER},
    CLI_LONG_OPTS_END,
};

static const cli_cmd query_cmd = {.name = "query", .usage = usage_text, .long_opts = long_opts};

int cli_query_main(int argc, char **argv)
{
    const char *env = getenv("CITRUS_ROUTER");
    q_args a = {.router = env && *env ? env : DEFAULT_ROUTER};
    cli_opts o;
    int rc = cli_parse_args(&query_cmd, &o, argc, argv, own_option, &a);
    if (rc >= 0)
        return rc;
    int fixed = a.scatter ? 1 : 2; /* SQL, or KEY SQL */
    if (o.npos < fixed) {
        fputs(usage_text, stderr);
        return CLI_EXIT_USAGE;
    }
    for (int i = 0; i < fixed; i++)
        if (!*o.pos[i])
            return usage_error("%s must not be empty", i + 1 < fixed ? "KEY" : "SQL");
    int np = o.npos - fixed;
    citrus_param *params = calloc((size_t)np + 1, sizeof(*params));
    unsigned char **blobs = calloc((size_t)np + 1, sizeof(*blobs));
    json_t *held = json_array();
    if (!params || !blobs || !held)
        rc = cli_out_of_memory();
    else
        rc = parse_params(o.pos + fixed, np, a.json_params, params, held, blobs);
    if (rc < 0)
        rc = run(&o, &a, params, np);
    for (int i = 0; blobs && i < np; i++)
        free(blobs[i]);
    free(blobs);
    free(params);
    json_decref(held);
    return rc;
}
