/* cli/kv.c — `citrus kv ...`: the catalog KV from the command line. */
#include "cli/kv.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"
#include "cli/client.h"
#include "cli/input.h"
#include "http/base64.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

/* A long poll asks the server to hold the request this long... */
#define WATCH_POLL "30s"
/* ...and gives up on it after this long. */
#define WATCH_REQUEST_TIMEOUT_MS 45000L

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
    "\n"
    "options:\n"
    "  --endpoint URL    server API (default: $CITRUS_ENDPOINT, else " CLIENT_DEFAULT_ENDPOINT ")\n"
    "  -o, --output FMT  text (default) or json (the server's JSON answer)\n"
    "  -h, --help        show this help\n"
    "\n"
    "Options may come anywhere; put -- before a KEY or VALUE that starts with '-'.\n"
    "Exit status: 0 ok, 1 error (including a key not found), 2 bad usage.\n";

/* Long-only options. BIT() turns the verb-specific ones (all but
 * OPT_ENDPOINT) into a mask, to check which verbs accept them. */
enum {
    OPT_ENDPOINT = 256,
    OPT_CONSISTENCY,
    OPT_CAS,
    OPT_LEASE,
    OPT_PREFIX,
    OPT_LIMIT,
    OPT_KEYS_ONLY,
    OPT_FROM_REV,
    OPT_COUNT,
};

#define BIT(opt) (1u << ((opt)-OPT_CONSISTENCY))

typedef struct kv_args {
    const char *endpoint;
    bool json;
    const char *consistency; /* NULL = server default */
    int64_t cas;             /* -1 = none */
    int64_t lease;           /* 0 = none */
    bool prefix;
    int64_t limit; /* 0 = no limit */
    bool keys_only;
    int64_t from_rev; /* 0 = from now */
    int64_t count;    /* 0 = forever */
    unsigned seen;    /* BIT() of every verb option given */
    char **pos;       /* positional arguments after the verb */
    int npos;
} kv_args;

typedef struct kv_verb {
    const char *name;
    int (*run)(client *c, const kv_args *a);
    int min_pos, max_pos;
    unsigned allowed; /* BIT()s */
} kv_verb;

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "citrus kv: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'citrus kv --help'.\n");
    return EXIT_USAGE;
}

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

/* Runs a request and insists on a 2xx answer. On anything else prints
 * "error: ..." and returns false; the caller then exits 1. */
static bool call(client *c, const char *method, const char *path, const void *body, size_t len,
                 const char *const *headers, client_response *resp)
{
    int rc = client_request(c, method, path, body, len, headers, resp);
    if (rc < 0) {
        fprintf(stderr, "error: %s\n", client_error(c));
        return false;
    }
    if (resp->status < 200 || resp->status > 299) {
        char msg[1024];
        client_response_error(resp, msg, sizeof(msg));
        fprintf(stderr, "error: %s\n", msg);
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

/* The string member name of j, or "" when absent. */
static const char *str_member(const json_t *j, const char *name)
{
    const char *s = json_string_value(json_object_get(j, name));
    return s ? s : "";
}

static int64_t int_member(const json_t *j, const char *name)
{
    return (int64_t)json_integer_value(json_object_get(j, name));
}

/* Prints the server's JSON answer as it came, ending in one newline. */
static void print_body(const client_response *resp)
{
    fwrite(resp->body, 1, resp->body_len, stdout);
    if (resp->body_len == 0 || resp->body[resp->body_len - 1] != '\n')
        putchar('\n');
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

/* Flushes stdout; false (after a message) when the output is gone. */
static bool flush_out(void)
{
    if (fflush(stdout) == 0 && !ferror(stdout))
        return true;
    fprintf(stderr, "error: writing output: %s\n", strerror(errno));
    return false;
}

/* ---- paths ---- */

/* A path and query being built. */
typedef struct pathb {
    char *s;
    size_t len;
    FILE *f;
    char sep; /* '?' before the first query argument, then '&' */
} pathb;

/* Starts base + the escaped key (the key's '/' kept). */
static bool pathb_start(pathb *p, const char *base, const char *key)
{
    memset(p, 0, sizeof(*p));
    char *k = client_escape_path(key);
    p->f = k ? open_memstream(&p->s, &p->len) : NULL;
    if (p->f)
        fprintf(p->f, "%s%s", base, k);
    free(k);
    p->sep = '?';
    return p->f != NULL;
}

/* Adds name=value, value escaped. */
static void pathb_arg(pathb *p, const char *name, const char *value)
{
    char *v = client_escape_query(value);
    fprintf(p->f, "%c%s=%s", p->sep, name, v ? v : "");
    free(v);
    p->sep = '&';
}

static void pathb_int(pathb *p, const char *name, int64_t value)
{
    fprintf(p->f, "%c%s=%" PRId64, p->sep, name, value);
    p->sep = '&';
}

/* Finishes: the path (caller frees), or NULL on allocation failure. */
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

static int out_of_memory(void)
{
    fprintf(stderr, "error: out of memory\n");
    return EXIT_RUNTIME;
}

/* ---- verbs ---- */

static int kv_get(client *c, const kv_args *a)
{
    pathb p;
    if (!pathb_start(&p, "/v1/kv/", a->pos[0]))
        return out_of_memory();
    if (a->json)
        pathb_arg(&p, "format", "json");
    if (a->consistency)
        pathb_arg(&p, "consistency", a->consistency);
    char *path = pathb_end(&p);
    if (!path)
        return out_of_memory();
    client_response resp;
    bool ok = call(c, "GET", path, NULL, 0, NULL, &resp);
    free(path);
    if (!ok)
        return EXIT_RUNTIME;
    if (a->json)
        print_body(&resp);
    else
        fwrite(resp.body, 1, resp.body_len, stdout);
    client_response_free(&resp);
    return flush_out() ? 0 : EXIT_RUNTIME;
}

static int kv_put(client *c, const kv_args *a)
{
    int rc = EXIT_RUNTIME;
    char *value = NULL, *path = NULL;
    size_t len;
    bool from_stdin = strcmp(a->pos[1], "-") == 0;
    if (from_stdin) {
        char why[512];
        if (input_read("-", &value, &len, why, sizeof(why)) < 0) {
            fprintf(stderr, "error: %s\n", why);
            return EXIT_RUNTIME;
        }
    }
    pathb p;
    if (!pathb_start(&p, "/v1/kv/", a->pos[0])) {
        rc = out_of_memory();
        goto out;
    }
    if (a->cas >= 0)
        pathb_int(&p, "cas", a->cas);
    if (a->lease)
        pathb_int(&p, "lease", a->lease);
    if (!(path = pathb_end(&p))) {
        rc = out_of_memory();
        goto out;
    }
    static const char *const headers[] = {"Content-Type: application/octet-stream", NULL};
    const char *body = from_stdin ? value : a->pos[1];
    client_response resp;
    if (!call(c, "PUT", path, body, from_stdin ? len : strlen(body), headers, &resp))
        goto out;
    if (a->json) {
        print_body(&resp);
        rc = 0;
    } else {
        json_t *j = answer_json(&resp);
        if (j) {
            printf("OK revision=%" PRId64 " mod_revision=%" PRId64 " version=%" PRId64 "\n",
                   int_member(j, "revision"), int_member(j, "mod_revision"),
                   int_member(j, "version"));
            json_decref(j);
            rc = 0;
        }
    }
    client_response_free(&resp);
    if (rc == 0 && !flush_out())
        rc = EXIT_RUNTIME;
out:
    free(path);
    free(value);
    return rc;
}

static int kv_del(client *c, const kv_args *a)
{
    pathb p;
    if (!pathb_start(&p, "/v1/kv/", a->pos[0]))
        return out_of_memory();
    if (a->prefix)
        pathb_arg(&p, "prefix", "true");
    if (a->cas >= 0)
        pathb_int(&p, "cas", a->cas);
    char *path = pathb_end(&p);
    if (!path)
        return out_of_memory();
    client_response resp;
    bool ok = call(c, "DELETE", path, NULL, 0, NULL, &resp);
    free(path);
    if (!ok)
        return EXIT_RUNTIME;
    int rc = 0;
    if (a->json) {
        print_body(&resp);
    } else {
        json_t *j = answer_json(&resp);
        if (j)
            printf("deleted %" PRId64 " (revision %" PRId64 ")\n", int_member(j, "deleted"),
                   int_member(j, "revision"));
        else
            rc = EXIT_RUNTIME;
        json_decref(j);
    }
    client_response_free(&resp);
    return rc == 0 && flush_out() ? 0 : EXIT_RUNTIME;
}

/* Lists page by page (after = last key seen) until everything, or --limit
 * items, has been read. Text output streams; JSON output is gathered into
 * one answer shaped like a single page. */
static int kv_ls(client *c, const kv_args *a)
{
    int rc = EXIT_RUNTIME;
    const char *prefix = a->npos ? a->pos[0] : "";
    char *after = NULL;
    json_t *all = json_array();
    int64_t first_rev = -1, got = 0;
    bool more = true;
    if (!all)
        return out_of_memory();
    while (more && (a->limit == 0 || got < a->limit)) {
        pathb p;
        if (!pathb_start(&p, "/v1/kv/", prefix)) {
            rc = out_of_memory();
            goto out;
        }
        pathb_arg(&p, "prefix", "true");
        if (a->limit)
            pathb_int(&p, "limit", a->limit - got);
        if (a->keys_only)
            pathb_arg(&p, "keys_only", "true");
        if (after)
            pathb_arg(&p, "after", after);
        char *path = pathb_end(&p);
        if (!path) {
            rc = out_of_memory();
            goto out;
        }
        client_response resp;
        bool ok = call(c, "GET", path, NULL, 0, NULL, &resp);
        free(path);
        if (!ok)
            goto out;
        json_t *page = answer_json(&resp);
        client_response_free(&resp);
        json_t *items = json_object_get(page, "items");
        if (!page || !json_is_array(items)) {
            if (page)
                fprintf(stderr, "error: unexpected answer from the server: no items\n");
            json_decref(page);
            goto out;
        }
        size_t n = json_array_size(items);
        more = json_is_true(json_object_get(page, "more"));
        if (first_rev < 0)
            first_rev = int_member(page, "revision");
        if (more && n == 0) {
            fprintf(stderr, "error: server says there is more but sent nothing\n");
            json_decref(page);
            goto out;
        }
        got += (int64_t)n;
        bool printed = a->json ? json_array_extend(all, items) == 0
                               : print_items(items, a->keys_only) && flush_out();
        if (printed && n) {
            free(after);
            after = strdup(str_member(json_array_get(items, n - 1), "key"));
            if (!after) {
                out_of_memory();
                printed = false;
            }
        }
        json_decref(page);
        if (!printed)
            goto out;
    }
    if (a->json) {
        json_t *res = json_pack("{s:I, s:O, s:b}", "revision", (json_int_t)first_rev, "items", all,
                                "more", more);
        char *s = res ? json_dumps(res, JSON_COMPACT) : NULL;
        json_decref(res);
        if (!s) {
            rc = out_of_memory();
            goto out;
        }
        puts(s);
        free(s);
        if (!flush_out())
            goto out;
    }
    rc = 0;
out:
    free(after);
    json_decref(all);
    return rc;
}

/* Set by SIGINT while watching. */
static volatile sig_atomic_t watch_interrupted;

static void on_sigint(int sig)
{
    watch_interrupted = 1;
}

/* Prints one watch event; false when the output failed. */
static bool print_event(const json_t *ev, bool json)
{
    if (json) {
        char *s = json_dumps(ev, JSON_COMPACT);
        if (!s) {
            out_of_memory();
            return false;
        }
        puts(s);
        free(s);
        return true;
    }
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
    if (!pathb_start(&p, "/v1/watch/", a->pos[0]))
        return out_of_memory();
    if (*from > 0) /* else the server starts after its current revision */
        pathb_int(&p, "from_revision", *from);
    pathb_arg(&p, "timeout", WATCH_POLL);
    char *path = pathb_end(&p);
    if (!path)
        return out_of_memory();
    client_response resp;
    int rc = client_request(c, "GET", path, NULL, 0, NULL, &resp);
    free(path);
    if (rc == CITRUS_ECLOSED || rc == CITRUS_ETIMEOUT)
        return 0; /* interrupted, or the poll outlived its deadline: go round */
    if (rc < 0) {
        fprintf(stderr, "error: %s\n", client_error(c));
        return EXIT_RUNTIME;
    }
    if (resp.status != 200) {
        char msg[1024];
        client_response_error(&resp, msg, sizeof(msg));
        fprintf(stderr, "error: %s\n", msg);
        client_response_free(&resp);
        return EXIT_RUNTIME;
    }
    json_t *j = answer_json(&resp);
    client_response_free(&resp);
    json_t *events = json_object_get(j, "events");
    if (!j || !json_is_array(events)) {
        if (j)
            fprintf(stderr, "error: unexpected answer from the server: no events\n");
        json_decref(j);
        return EXIT_RUNTIME;
    }
    size_t i;
    json_t *ev;
    rc = 0;
    json_array_foreach(events, i, ev)
    {
        if (a->count && *printed >= a->count)
            break;
        if (!print_event(ev, a->json)) {
            rc = EXIT_RUNTIME;
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
    if (rc == 0 && !flush_out())
        rc = EXIT_RUNTIME;
    return rc;
}

static int kv_watch(client *c, const kv_args *a)
{
    int64_t from = a->from_rev, printed = 0;
    struct sigaction sa = {.sa_handler = on_sigint}, old;
    sigemptyset(&sa.sa_mask);
    watch_interrupted = 0;
    sigaction(SIGINT, &sa, &old);
    client_set_abort_flag(c, &watch_interrupted);
    client_set_timeout_ms(c, WATCH_REQUEST_TIMEOUT_MS);
    int rc = 0;
    while (rc == 0 && !watch_interrupted && (a->count == 0 || printed < a->count))
        rc = watch_poll(c, a, &from, &printed);
    client_set_abort_flag(c, NULL);
    sigaction(SIGINT, &old, NULL);
    return rc;
}

/* Prints a txn answer: SUCCESS/FAILURE, then one line per result. */
static bool print_txn(const json_t *j)
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
    char *body, why[512];
    size_t len;
    const char *file = a->pos[0];
    if (input_read(file, &body, &len, why, sizeof(why)) < 0) {
        fprintf(stderr, "error: %s\n", why);
        return EXIT_RUNTIME;
    }
    int rc = EXIT_RUNTIME;
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
    if (!call(c, "POST", "/v1/txn", body, len, headers, &resp))
        goto out;
    if (a->json) {
        print_body(&resp);
        rc = 0;
    } else {
        json_t *j = answer_json(&resp);
        if (j && print_txn(j))
            rc = 0;
        json_decref(j);
    }
    client_response_free(&resp);
    if (rc == 0 && !flush_out())
        rc = EXIT_RUNTIME;
out:
    json_decref(check);
    free(body);
    return rc;
}

static const kv_verb verbs[] = {
    {"get", kv_get, 1, 1, BIT(OPT_CONSISTENCY)},
    {"put", kv_put, 2, 2, BIT(OPT_CAS) | BIT(OPT_LEASE)},
    {"del", kv_del, 1, 1, BIT(OPT_PREFIX) | BIT(OPT_CAS)},
    {"ls", kv_ls, 0, 1, BIT(OPT_LIMIT) | BIT(OPT_KEYS_ONLY)},
    {"watch", kv_watch, 1, 1, BIT(OPT_FROM_REV) | BIT(OPT_COUNT)},
    {"txn", kv_txn, 1, 1, 0},
};

static const struct option long_opts[] = {
    {"endpoint", required_argument, NULL, OPT_ENDPOINT},
    {"output", required_argument, NULL, 'o'},
    {"consistency", required_argument, NULL, OPT_CONSISTENCY},
    {"cas", required_argument, NULL, OPT_CAS},
    {"lease", required_argument, NULL, OPT_LEASE},
    {"prefix", no_argument, NULL, OPT_PREFIX},
    {"limit", required_argument, NULL, OPT_LIMIT},
    {"keys-only", no_argument, NULL, OPT_KEYS_ONLY},
    {"from-revision", required_argument, NULL, OPT_FROM_REV},
    {"count", required_argument, NULL, OPT_COUNT},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Parses argv into *a. Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, kv_args *a)
{
    *a = (kv_args){.endpoint = client_default_endpoint(), .cas = -1};
    optind = 0; /* GNU: full re-initialisation, whatever ran getopt before */
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, ":o:h", long_opts, NULL)) != -1) {
        if (opt >= OPT_CONSISTENCY)
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
        case OPT_CONSISTENCY:
            if (strcmp(optarg, "strong") != 0 && strcmp(optarg, "bounded") != 0)
                return usage_error("--consistency must be strong or bounded, not '%s'", optarg);
            a->consistency = optarg;
            break;
        case OPT_CAS:
            if (!parse_i64(optarg, 0, &a->cas))
                return usage_error("--cas needs a revision (an integer >= 0), not '%s'", optarg);
            break;
        case OPT_LEASE:
            if (!parse_i64(optarg, 1, &a->lease))
                return usage_error("--lease needs a lease id, not '%s'", optarg);
            break;
        case OPT_PREFIX:
            a->prefix = true;
            break;
        case OPT_LIMIT:
            if (!parse_i64(optarg, 1, &a->limit))
                return usage_error("--limit needs a count >= 1, not '%s'", optarg);
            break;
        case OPT_KEYS_ONLY:
            a->keys_only = true;
            break;
        case OPT_FROM_REV:
            if (!parse_i64(optarg, 1, &a->from_rev))
                return usage_error("--from-revision needs a revision >= 1, not '%s'", optarg);
            break;
        case OPT_COUNT:
            if (!parse_i64(optarg, 1, &a->count))
                return usage_error("--count needs a number >= 1, not '%s'", optarg);
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

int cli_kv_main(int argc, char **argv)
{
    kv_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0)
        return rc;
    if (a.npos < 1) {
        fputs(usage_text, stderr);
        return EXIT_USAGE;
    }
    const char *name = a.pos[0];
    const kv_verb *v = NULL;
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        if (strcmp(verbs[i].name, name) == 0)
            v = &verbs[i];
    if (!v)
        return usage_error("unknown command '%s'", name);
    a.pos++;
    a.npos--;
    if (a.npos < v->min_pos || a.npos > v->max_pos)
        return usage_error(a.npos < v->min_pos ? "%s: missing argument" : "%s: too many arguments",
                           name);
    for (int opt = OPT_CONSISTENCY; opt <= OPT_COUNT; opt++) {
        if ((a.seen & BIT(opt)) && !(v->allowed & BIT(opt))) {
            for (const struct option *o = long_opts; o->name; o++)
                if (o->val == opt)
                    fprintf(stderr, "citrus kv: %s does not take --%s\n", name, o->name);
            fprintf(stderr, "Try 'citrus kv --help'.\n");
            return EXIT_USAGE;
        }
    }
    if (a.prefix && a.cas >= 0)
        return usage_error("%s: --cas applies to one key, not with --prefix", name);
    client *c = client_new(a.endpoint);
    if (!c)
        return usage_error("--endpoint must be an http:// or https:// URL, not '%s'", a.endpoint);
    rc = v->run(c, &a);
    client_free(c);
    return rc;
}
