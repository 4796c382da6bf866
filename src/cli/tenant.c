/* cli/tenant.c — `citrus tenant ...`: register tenants through the Citrus
 * API (POST /api/register) and read or change the tenant directory
 * (/v1/tenants). */
#include "cli/tenant.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/client.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

/* The most tenants the server sends in one page. */
#define PAGE_MAX 10000

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
    "  --endpoint URL    server API (default: $CITRUS_ENDPOINT, else " CLIENT_DEFAULT_ENDPOINT ")\n"
    "  -o, --output FMT  text (default) or json (the server's JSON answer)\n"
    "  -h, --help        show this help\n"
    "\n"
    "Exit status: 0 ok, 1 error (including an unknown tenant), 2 bad usage.\n";

enum {
    OPT_ENDPOINT = 256,
    OPT_TYPE,
    OPT_SHARD,
    OPT_LIMIT,
    OPT_AFTER,
    OPT_FORCE,
};

#define BIT(opt) (1u << ((opt)-OPT_TYPE))

typedef struct tn_args {
    const char *endpoint;
    bool json;
    const char *type;
    const char *shard;
    long long limit; /* 0 = all */
    const char *after;
    bool force;
    unsigned seen;
    char **pos;
    int npos;
} tn_args;

typedef struct tn_verb {
    const char *name;
    int (*run)(client *c, const tn_args *a);
    int npos;
    unsigned allowed;
} tn_verb;

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "citrus tenant: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'citrus tenant --help'.\n");
    return EXIT_USAGE;
}

static int out_of_memory(void)
{
    fprintf(stderr, "error: out of memory\n");
    return EXIT_RUNTIME;
}

/* ---- requests and output ---- */

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
        char msg[1024];
        client_response_error(resp, msg, sizeof(msg));
        fprintf(stderr, "error: %s\n", msg);
        if (strncmp(msg, "force_required:", 15) == 0)
            fprintf(stderr, "hint: add --force to do it anyway\n");
        client_response_free(resp);
        return false;
    }
    return true;
}

static json_t *answer_json(const client_response *resp)
{
    char why[256];
    json_t *j = client_response_json(resp, why, sizeof(why));
    if (!j)
        fprintf(stderr, "error: unexpected answer from the server: %s\n", why);
    return j;
}

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

static const char *str_or(const json_t *j, const char *name, const char *dflt)
{
    const char *s = json_string_value(json_object_get(j, name));
    return s && *s ? s : dflt;
}

/* "/v1/tenants/<key><suffix>", the key escaped; caller frees. */
static char *tenant_path(const char *key, const char *suffix)
{
    char *e = client_escape_query(key), *p = NULL;
    if (e && asprintf(&p, "/v1/tenants/%s%s", e, suffix) < 0)
        p = NULL;
    free(e);
    return p;
}

static void print_pin(const json_t *p)
{
    printf("key:           %s\n", str_or(p, "key", "?"));
    printf("shard_id:      %s\n", str_or(p, "shard_id", "?"));
    printf("hash:          %s\n", str_or(p, "hash", "-"));
    printf("token:         %s\n", str_or(p, "token", "-"));
    printf("pinned_at:     %s\n", str_or(p, "pinned_at", "-"));
    printf("business_type: %s\n", str_or(p, "business_type", "-"));
}

/* A GET/PUT/DELETE whose 2xx answer is printed by text() (or as is). */
static int simple(client *c, const tn_args *a, const char *method, char *path, const json_t *body,
                  void (*text)(const json_t *j, long status))
{
    if (!path)
        return out_of_memory();
    client_response resp;
    bool ok = call(c, method, path, body, &resp);
    free(path);
    if (!ok)
        return EXIT_RUNTIME;
    int rc = 0;
    if (a->json) {
        print_body(&resp);
    } else {
        json_t *j = answer_json(&resp);
        if (j)
            text(j, resp.status);
        else
            rc = EXIT_RUNTIME;
        json_decref(j);
    }
    client_response_free(&resp);
    return rc == 0 && flush_out() ? 0 : EXIT_RUNTIME;
}

/* ---- verbs ---- */

static void text_registered(const json_t *j, long status)
{
    printf("shardId:          %s\n", str_or(j, "shardId", "?"));
    printf("shardKey:         %s\n", str_or(j, "shardKey", "?"));
    printf("connectionString: %s\n", str_or(j, "connectionString", "-"));
    printf("status:           %s\n", str_or(j, "status", "?"));
    printf("new:              %s\n", status == 201 ? "yes" : "no (already registered)");
}

static int tn_register(client *c, const tn_args *a)
{
    if (!a->type)
        return usage_error("register: --type TYPE is required (the business type)");
    json_t *body = json_pack("{s:s,s:s,s:s}", "businessId", a->pos[0], "locationId", a->pos[1],
                             "businessType", a->type);
    if (!body)
        return usage_error("register: arguments must be valid UTF-8");
    char *path = strdup("/api/register");
    int rc = simple(c, a, "POST", path, body, text_registered);
    json_decref(body);
    return rc;
}

static void text_pin(const json_t *j, long status)
{
    print_pin(j);
}

static int tn_show(client *c, const tn_args *a)
{
    return simple(c, a, "GET", tenant_path(a->pos[0], ""), NULL, text_pin);
}

static void text_pinned(const json_t *j, long status)
{
    printf("%s pinned to %s%s\n", str_or(j, "key", "?"), str_or(j, "shard_id", "?"),
           status == 201 ? " (new pin)" : "");
}

static int tn_pin(client *c, const tn_args *a)
{
    json_t *body = json_pack("{s:s}", "shard_id", a->pos[1]);
    if (!body)
        return usage_error("pin: SHARD must be valid UTF-8");
    int rc = simple(c, a, "PUT", tenant_path(a->pos[0], a->force ? "?force=true" : ""), body,
                    text_pinned);
    json_decref(body);
    return rc;
}

static void text_unpinned(const json_t *j, long status)
{
    printf("%s unpinned (it now routes by the ring)\n", str_or(j, "key", "?"));
}

static int tn_unpin(client *c, const tn_args *a)
{
    return simple(c, a, "DELETE", tenant_path(a->pos[0], ""), NULL, text_unpinned);
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
        printf("%-24s  %-16s  %-14s  %s\n", str_or(t, "key", "?"), str_or(t, "shard_id", "?"),
               str_or(t, "business_type", "-"), str_or(t, "pinned_at", "-"));
    }
}

/* Lists page by page (after = last key seen) until everything, or --limit
 * tenants, has been read. Text streams; JSON is gathered into one answer
 * shaped like a single page. */
static int tn_ls(client *c, const tn_args *a)
{
    int rc = EXIT_RUNTIME;
    char *after = a->after ? strdup(a->after) : NULL;
    json_t *all = json_array();
    long long got = 0;
    bool more = true;
    if (!all || (a->after && !after)) {
        free(after);
        json_decref(all);
        return out_of_memory();
    }
    while (more && (a->limit == 0 || got < a->limit)) {
        long long want = 0;
        if (a->limit)
            want = a->limit - got < PAGE_MAX ? a->limit - got : PAGE_MAX;
        char *path = page_path(a, after, want);
        if (!path) {
            rc = out_of_memory();
            goto out;
        }
        client_response resp;
        bool ok = call(c, "GET", path, NULL, &resp);
        free(path);
        if (!ok)
            goto out;
        json_t *page = answer_json(&resp);
        client_response_free(&resp);
        json_t *items = json_object_get(page, "tenants");
        if (!page || !json_is_array(items)) {
            if (page)
                fprintf(stderr, "error: unexpected answer from the server: no tenants\n");
            json_decref(page);
            goto out;
        }
        size_t n = json_array_size(items);
        more = json_is_true(json_object_get(page, "more"));
        if (more && n == 0) {
            fprintf(stderr, "error: server says there is more but sent nothing\n");
            json_decref(page);
            goto out;
        }
        got += (long long)n;
        bool printed = true;
        if (a->json)
            printed = json_array_extend(all, items) == 0;
        else
            print_tenant_rows(items, got == (long long)n);
        if (printed && n) {
            free(after);
            after = strdup(str_or(json_array_get(items, n - 1), "key", ""));
            if (!after) {
                out_of_memory();
                printed = false;
            }
        }
        json_decref(page);
        if (!printed || (!a->json && !flush_out()))
            goto out;
    }
    if (a->json) {
        json_t *res = json_pack("{s:O,s:b}", "tenants", all, "more", more);
        char *s = res ? json_dumps(res, JSON_COMPACT) : NULL;
        json_decref(res);
        if (!s) {
            rc = out_of_memory();
            goto out;
        }
        puts(s);
        free(s);
    } else if (more) {
        printf("(more: continue with --after %s)\n", after ? after : "");
    }
    rc = flush_out() ? 0 : EXIT_RUNTIME;
out:
    free(after);
    json_decref(all);
    return rc;
}

static const tn_verb verbs[] = {
    {"register", tn_register, 2, BIT(OPT_TYPE)},
    {"show", tn_show, 1, 0},
    {"ls", tn_ls, 0, BIT(OPT_SHARD) | BIT(OPT_LIMIT) | BIT(OPT_AFTER)},
    {"pin", tn_pin, 2, BIT(OPT_FORCE)},
    {"unpin", tn_unpin, 1, 0},
};

static const struct option long_opts[] = {
    {"endpoint", required_argument, NULL, OPT_ENDPOINT},
    {"output", required_argument, NULL, 'o'},
    {"type", required_argument, NULL, OPT_TYPE},
    {"shard", required_argument, NULL, OPT_SHARD},
    {"limit", required_argument, NULL, OPT_LIMIT},
    {"after", required_argument, NULL, OPT_AFTER},
    {"force", no_argument, NULL, OPT_FORCE},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Parses argv into *a. Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, tn_args *a)
{
    *a = (tn_args){.endpoint = client_default_endpoint()};
    optind = 0;
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, ":o:h", long_opts, NULL)) != -1) {
        if (opt >= OPT_TYPE)
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
        case OPT_TYPE:
            a->type = optarg;
            break;
        case OPT_SHARD:
            a->shard = optarg;
            break;
        case OPT_LIMIT: {
            char *end;
            errno = 0;
            a->limit = strtoll(optarg, &end, 10);
            if (errno || end == optarg || *end || a->limit < 1)
                return usage_error("--limit needs a count >= 1, not '%s'", optarg);
            break;
        }
        case OPT_AFTER:
            a->after = optarg;
            break;
        case OPT_FORCE:
            a->force = true;
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

int cli_tenant_main(int argc, char **argv)
{
    tn_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0)
        return rc;
    if (a.npos < 1) {
        fputs(usage_text, stderr);
        return EXIT_USAGE;
    }
    const char *name = a.pos[0];
    const tn_verb *v = NULL;
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        if (strcmp(verbs[i].name, name) == 0)
            v = &verbs[i];
    if (!v)
        return usage_error("unknown command '%s'", name);
    a.pos++;
    a.npos--;
    if (a.npos != v->npos)
        return usage_error(a.npos < v->npos ? "%s: missing argument" : "%s: too many arguments",
                           name);
    for (int i = 0; i < a.npos; i++)
        if (!*a.pos[i])
            return usage_error("%s: arguments must not be empty", name);
    for (int opt = OPT_TYPE; opt <= OPT_FORCE; opt++) {
        if ((a.seen & BIT(opt)) && !(v->allowed & BIT(opt))) {
            for (const struct option *o = long_opts; o->name; o++)
                if (o->val == opt)
                    fprintf(stderr, "citrus tenant: %s does not take --%s\n", name, o->name);
            fprintf(stderr, "Try 'citrus tenant --help'.\n");
            return EXIT_USAGE;
        }
    }
    client *c = client_new(a.endpoint);
    if (!c)
        return usage_error("--endpoint must be an http:// or https:// URL, not '%s'", a.endpoint);
    rc = v->run(c, &a);
    client_free(c);
    return rc;
}
