/* cli/route.c — `citrus route KEY...`: where keys go. One key is asked with
 * GET /v1/route/{key}; several (or a key a URL path cannot carry, such as
 * one with a '/') with one POST /v1/route. */
#include "cli/route.h"

#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_util.h"
#include "net/client.h"

#define usage_error(...) cli_usage_error("route", __VA_ARGS__)

/* One line of the help per line of source. */
// clang-format off
static const char usage_text[] =
    "usage: citrus route [options] KEY...\n"
    "\n"
    "Shows which shard each key goes to: its pin in the tenant directory, else\n"
    "the hash ring. One line per key:\n"
    "  KEY -> SHARD (directory|ring, token T, state S) DSN\n"
    "\n"
    "options:\n"
    CLI_USAGE_ENDPOINT
    CLI_USAGE_CREDS
    "  -o, --output FMT  text (default) or json (the server's JSON answer: one route\n"
    "                    for one key, {ring_version, routes} for several)\n"
    CLI_USAGE_HELP
    "\n"
    "Put -- before a KEY that starts with '-'.\n"
    "Exit status: 0 ok, 1 error, 2 bad usage, " CLI_USAGE_EXIT_AUTH ".\n";
// clang-format on

/* "KEY -> SHARD (source, token T, state S) DSN [replicas: ...]" */
static void print_route(const json_t *r)
{
    printf("%s -> %s (%s, token %s, state %s) %s", cli_str_or(r, "key", "?"),
           cli_str_or(r, "shard_id", "?"), cli_str_or(r, "source", "?"),
           cli_str_or(r, "token", "?"), cli_str_or(r, "state", "?"), cli_str_or(r, "dsn", "-"));
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
    if (n == 1 && path_safe(keys[0])) {
        char *path = cli_item_path("/v1/route/", keys[0], "");
        bool ok = cli_request(c, "GET", path, NULL, 0, NULL, false, resp);
        free(path);
        return ok;
    }
    json_t *arr = json_array();
    for (int i = 0; arr && i < n; i++)
        if (json_array_append_new(arr, json_string(keys[i])) < 0) {
            fprintf(stderr, "error: key '%s' is not valid UTF-8\n", keys[i]);
            json_decref(arr);
            return false;
        }
    json_t *body = arr ? json_pack("{s:o}", "keys", arr) : NULL;
    if (!body)
        return cli_out_of_memory(), false;
    bool ok = cli_request_json(c, "POST", "/v1/route", body, resp);
    json_decref(body);
    return ok;
}

/* Prints the answer for n keys; false after a message when it is not one. */
static bool print_answer(const client_response *resp, int n, bool json)
{
    json_t *j = cli_answer_json(resp);
    if (!j)
        return false;
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
        cli_print_body(resp);
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

static const struct option long_opts[] = {CLI_LONG_OPTS_COMMON, CLI_LONG_OPTS_END};

static const cli_cmd route_cmd = {.name = "route", .usage = usage_text, .long_opts = long_opts};

int cli_route_main(int argc, char **argv)
{
    cli_opts o;
    int rc = cli_parse_args(&route_cmd, &o, argc, argv, NULL, NULL);
    if (rc >= 0)
        return rc;
    char **keys = o.pos;
    int n = o.npos;
    if (n < 1) {
        fputs(usage_text, stderr);
        return CLI_EXIT_USAGE;
    }
    for (int i = 0; i < n; i++)
        if (!*keys[i])
            return usage_error("a KEY must not be empty");
    client *c = cli_client_new(route_cmd.name, o.endpoint, &o.creds);
    if (!c)
        return CLI_EXIT_USAGE;
    client_response resp;
    rc = CLI_EXIT_RUNTIME;
    if (ask(c, keys, n, &resp)) {
        if (print_answer(&resp, n, o.json))
            rc = 0;
        client_response_free(&resp);
    }
    client_free(c);
    if (rc == 0 && !cli_flush_out())
        rc = CLI_EXIT_RUNTIME;
    return rc;
}
