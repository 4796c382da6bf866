/* cli/cluster.c — `citrus cluster status`: GET /v1/cluster, printed for
 * people (or as the server's JSON with -o json). */
#include "cli/cluster.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli_util.h"
#include "net/client.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: citrus cluster status [--endpoint URL] [-o text|json] [credentials]\n\n"
               "Shows the citrus nodes, the catalog and the controller leader.\n\n"
               "credentials:\n" CLI_USAGE_CREDS "\n"
               "Exit status: 0 ok, 1 error, 2 bad usage, " CLI_USAGE_EXIT_AUTH ".\n");
}

static void print_text(json_t *j)
{
    json_t *ctl = json_object_get(j, "controller");
    json_t *cat = json_object_get(j, "catalog");
    const char *leader = json_string_value(json_object_get(ctl, "leader"));
    const char *cl = json_string_value(json_object_get(cat, "leader"));
    printf("catalog     %s (revision %lld, %s, leader %s, %lld/%lld members healthy%s)\n",
           json_string_value(json_object_get(cat, "backend")),
           (long long)json_integer_value(json_object_get(cat, "revision")),
           json_is_true(json_object_get(cat, "writable")) ? "writable" : "NOT writable",
           cl ? cl : "none", (long long)json_integer_value(json_object_get(cat, "healthy")),
           (long long)json_integer_value(json_object_get(cat, "members")),
           json_is_true(json_object_get(cat, "quorum")) ? "" : ", NO QUORUM");
    size_t i;
    json_t *n;
    json_array_foreach(json_object_get(cat, "member_list"), i, n)
    {
        const char *url = json_string_value(json_object_get(n, "url"));
        printf("  %-12s %-28s %s%s\n", json_string_value(json_object_get(n, "name")),
               url ? url : "-",
               json_is_true(json_object_get(n, "healthy")) ? "healthy" : "NOT ANSWERING",
               json_is_true(json_object_get(n, "leader")) ? "  (leader)" : "");
    }
    printf("controller  %s\n", leader ? leader : "(no leader)");
    json_t *nodes = json_object_get(j, "nodes");
    printf("nodes       %zu\n", json_array_size(nodes));
    json_array_foreach(nodes, i, n)
    {
        const char *id = json_string_value(json_object_get(n, "id"));
        printf("  %-12s %s%s\n", id ? id : "?",
               json_string_value(json_object_get(n, "api"))
                   ? json_string_value(json_object_get(n, "api"))
                   : "",
               leader && id && strcmp(leader, id) == 0 ? "  (controller)" : "");
    }
}

int cli_cluster_main(int argc, char **argv)
{
    static const struct option opts[] = {{"endpoint", required_argument, NULL, 'e'},
                                         {"output", required_argument, NULL, 'o'},
                                         CLI_LONG_OPTS_CREDS,
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *endpoint = client_default_endpoint();
    cli_creds creds = {0};
    bool json = false;
    optind = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "e:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'e':
            endpoint = optarg;
            break;
        case 'o':
            if (strcmp(optarg, "json") != 0 && strcmp(optarg, "text") != 0) {
                fprintf(stderr, "citrus cluster: -o must be json or text\n");
                return 2;
            }
            json = strcmp(optarg, "json") == 0;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            if (cli_creds_option(&creds, c, optarg))
                break;
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc - 1 || strcmp(argv[optind], "status") != 0) {
        usage(stderr);
        return 2;
    }
    client *cl = cli_client_new("cluster", endpoint, &creds);
    if (!cl)
        return CLI_EXIT_USAGE;
    client_response resp;
    int rc = client_request(cl, "GET", "/v1/cluster", NULL, 0, NULL, &resp);
    if (rc < 0) {
        fprintf(stderr, "error: %s: %s\n", endpoint, client_error(cl));
        client_free(cl);
        return 1;
    }
    int code = 0;
    errdetail why;
    json_t *j = resp.status == 200 ? client_response_json(&resp, &why) : NULL;
    if (resp.status != 200) {
        cli_print_answer_error(&resp, false);
        code = 1;
    } else if (!j) {
        fprintf(stderr, "error: %s\n", why.message);
        code = 1;
    } else if (json) {
        fwrite(resp.body, 1, resp.body_len, stdout);
    } else {
        print_text(j);
    }
    json_decref(j);
    client_response_free(&resp);
    client_free(cl);
    return code;
}
