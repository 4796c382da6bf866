/* cli/route.c — `citrus route KEY...`: where keys go. One key is asked with
 * GET /v1/route/{key}; several (or a key a URL path cannot carry, such as
 * one with a '/') with one POST /v1/route. */
#include "cli/route.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/client.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

static const char usage_text[] =
    "usage: citrus route [options] KEY...\n"
    "\n"
    "Shows which shard each key goes to: its pin in the tenant directory, else\n"
    "the hash ring. One line per key:\n"
    "  KEY -> SHARD (directory|ring, token T, state S) DSN\n"
    "\n"
    "options:\n"
    "  --endpoint URL    server API (default: $CITRUS_ENDPOINT, else " CLIENT_DEFAULT_ENDPOINT ")\n"
    "  -o, --output FMT  text (default) or json (the server's JSON answer: one route\n"
    "                    for one key, {ring_version, routes} for several)\n"
    "  -h, --help        show this help\n"
    "\n"
    "Put -- before a KEY that starts with '-'.\n"
    "Exit status: 0 ok, 1 error, 2 bad usage.\n";

enum { OPT_ENDPOINT = 256 };

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "citrus route: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'citrus route --help'.\n");
    return EXIT_USAGE;
}

static int out_of_memory(void)
{
    fprintf(stderr, "error: out of memory\n");
    return EXIT_RUNTIME;
}

static const char *str_or(const json_t *j, const char *name, const char *dflt)
{
    const char *s = json_string_value(json_object_get(j, name));
    return s && *s ? s : dflt;
}

/* "KEY -> SHARD (source, token T, state S) DSN [replicas: ...]" */
static void print_route(const json_t *r)
{
    printf("%s -> %s (%s, token %s, state %s) %s", str_or(r, "key", "?"),
           str_or(r, "shard_id", "?"), str_or(r, "source", "?"), str_or(r, "token", "?"),
           str_or(r, "state", "?"), str_or(r, "dsn", "-"));
    json_t *reps = json_object_get(r, "replicas");
    size_t i;
    json_t *v;
    json_array_foreach(reps, i, v)
    {
        printf("%s%s", i ? ", " : " replicas: ", json_string_value(v));
    }
    putchar('\n');
}

/* A key GET /v1/route/{key} can carry: no '/', and not a dot segment the
 * URL would lose. */
static bool path_safe(const char *key)
{
    return !strchr(key, '/') && strcmp(key, ".") != 0 && strcmp(key, "..") != 0;
}

/* Asks the server; the answer (2xx) in *resp. */
static bool ask(client *c, char **keys, int n, client_response *resp)
{
    static const char *const headers[] = {"Content-Type: application/json", NULL};
    char *path = NULL, *body = NULL;
    const char *method = "GET";
    if (n == 1 && path_safe(keys[0])) {
        char *e = client_escape_query(keys[0]);
        if (!e || asprintf(&path, "/v1/route/%s", e) < 0)
            path = NULL;
        free(e);
    } else {
        method = "POST";
        path = strdup("/v1/route");
        json_t *arr = json_array();
        for (int i = 0; arr && i < n; i++)
            if (json_array_append_new(arr, json_string(keys[i])) < 0) {
                fprintf(stderr, "error: key '%s' is not valid UTF-8\n", keys[i]);
                json_decref(arr);
                free(path);
                return false;
            }
        json_t *j = arr ? json_pack("{s:o}", "keys", arr) : NULL;
        body = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
    }
    if (!path || (strcmp(method, "POST") == 0 && !body)) {
        free(path);
        free(body);
        out_of_memory();
        return false;
    }
    int rc =
        client_request(c, method, path, body, body ? strlen(body) : 0, body ? headers : NULL, resp);
    free(path);
    free(body);
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

/* Prints the answer for n keys; false after a message when it is not one. */
static bool print_answer(const client_response *resp, int n, bool json)
{
    char why[256];
    json_t *j = client_response_json(resp, why, sizeof(why));
    if (!j) {
        fprintf(stderr, "error: unexpected answer from the server: %s\n", why);
        return false;
    }
    json_t *routes = json_object_get(j, "routes");
    bool ok = true;
    if (routes && !json_is_array(routes)) {
        fprintf(stderr, "error: unexpected answer from the server: routes is not an array\n");
        ok = false;
    } else if (json && n == 1 && routes) {
        /* One key asked by POST: answer like GET would. */
        char *s = json_dumps(json_array_get(routes, 0), JSON_COMPACT);
        ok = s != NULL;
        if (s)
            puts(s);
        free(s);
    } else if (json) {
        fwrite(resp->body, 1, resp->body_len, stdout);
        if (resp->body_len == 0 || resp->body[resp->body_len - 1] != '\n')
            putchar('\n');
    } else if (routes) {
        size_t i;
        json_t *r;
        json_array_foreach(routes, i, r)
        {
            print_route(r);
        }
    } else {
        print_route(j);
    }
    json_decref(j);
    return ok;
}

int cli_route_main(int argc, char **argv)
{
    static const struct option opts[] = {{"endpoint", required_argument, NULL, OPT_ENDPOINT},
                                         {"output", required_argument, NULL, 'o'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *endpoint = client_default_endpoint();
    bool json = false;
    optind = 0;
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, ":o:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'h':
            fputs(usage_text, stdout);
            return 0;
        case OPT_ENDPOINT:
            endpoint = optarg;
            break;
        case 'o':
            if (strcmp(optarg, "json") != 0 && strcmp(optarg, "text") != 0)
                return usage_error("-o must be json or text, not '%s'", optarg);
            json = strcmp(optarg, "json") == 0;
            break;
        case ':':
            return usage_error("option '%s' needs a value", argv[optind - 1]);
        default:
            return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    char **keys = argv + optind;
    int n = argc - optind;
    if (n < 1) {
        fputs(usage_text, stderr);
        return EXIT_USAGE;
    }
    for (int i = 0; i < n; i++)
        if (!*keys[i])
            return usage_error("a KEY must not be empty");
    client *c = client_new(endpoint);
    if (!c)
        return usage_error("--endpoint must be an http:// or https:// URL, not '%s'", endpoint);
    client_response resp;
    int rc = EXIT_RUNTIME;
    if (ask(c, keys, n, &resp)) {
        if (print_answer(&resp, n, json))
            rc = 0;
        client_response_free(&resp);
    }
    client_free(c);
    if (rc == 0 && (fflush(stdout) != 0 || ferror(stdout))) {
        fprintf(stderr, "error: writing output: %s\n", strerror(errno));
        rc = EXIT_RUNTIME;
    }
    return rc;
}
