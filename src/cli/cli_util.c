/* cli/cli_util.c — what the request commands of the CLI share; see
 * cli_util.h. */
#include "cli/cli_util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "citrus %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'citrus %s --help'.\n", cmd);
    return CLI_EXIT_USAGE;
}

int cli_out_of_memory(void)
{
    fprintf(stderr, "error: out of memory\n");
    return CLI_EXIT_RUNTIME;
}

/* ---- options and verbs ---- */

int cli_parse_args(const cli_cmd *cmd, cli_opts *o, int argc, char **argv,
                   int (*own)(void *ctx, int opt, const char *arg), void *ctx)
{
    *o = (cli_opts){.endpoint = client_default_endpoint()};
    optind = 0; /* GNU: full re-initialisation, whatever ran getopt before */
    opterr = 0;
    int opt, rc;
    while ((opt = getopt_long(argc, argv, ":o:h", cmd->long_opts, NULL)) != -1) {
        if (opt >= CLI_OPT_FIRST)
            o->seen |= CLI_BIT(opt);
        switch (opt) {
        case 'h':
            fputs(cmd->usage, stdout);
            return 0;
        case CLI_OPT_ENDPOINT:
            o->endpoint = optarg;
            break;
        case 'o':
            if (strcmp(optarg, "json") != 0 && strcmp(optarg, "text") != 0)
                return cli_usage_error(cmd->name, "-o must be json or text, not '%s'", optarg);
            o->json = strcmp(optarg, "json") == 0;
            break;
        case ':':
            return cli_usage_error(cmd->name, "option '%s' needs a value", argv[optind - 1]);
        default:
            if (opt < CLI_OPT_FIRST || !own)
                return cli_usage_error(cmd->name, "unknown option '%s'", argv[optind - 1]);
            if ((rc = own(ctx, opt, optarg)) >= 0)
                return rc;
            break;
        }
    }
    o->pos = argv + optind;
    o->npos = argc - optind;
    return -1;
}

/* Prints "citrus CMD: VERB does not take --OPT" for the first option in
 * o->seen that v does not allow. Returns 0 when there is none, else
 * CLI_EXIT_USAGE. */
static int check_verb_options(const cli_cmd *cmd, const cli_opts *o, const cli_verb *v)
{
    unsigned bad = o->seen & ~v->allowed;
    if (!bad)
        return 0;
    int opt = CLI_OPT_FIRST;
    while (!(bad & CLI_BIT(opt)))
        opt++;
    for (const struct option *lo = cmd->long_opts; lo->name; lo++)
        if (lo->val == opt)
            fprintf(stderr, "citrus %s: %s does not take --%s\n", cmd->name, v->name, lo->name);
    fprintf(stderr, "Try 'citrus %s --help'.\n", cmd->name);
    return CLI_EXIT_USAGE;
}

const void *cli_pick_verb(const cli_cmd *cmd, cli_opts *o, const void *verbs, size_t n, size_t size)
{
    if (o->npos < 1) {
        fputs(cmd->usage, stderr);
        return NULL;
    }
    const char *name = o->pos[0];
    const cli_verb *v = NULL;
    for (size_t i = 0; i < n; i++) {
        const cli_verb *e = (const cli_verb *)((const char *)verbs + i * size);
        if (strcmp(e->name, name) == 0)
            v = e;
    }
    if (!v) {
        cli_usage_error(cmd->name, "unknown command '%s'", name);
        return NULL;
    }
    o->pos++;
    o->npos--;
    if (o->npos < v->min_pos || o->npos > v->max_pos) {
        if (o->npos < v->min_pos)
            cli_usage_error(cmd->name, "%s: missing %s", name, cmd->missing);
        else
            cli_usage_error(cmd->name, "%s: too many arguments", name);
        return NULL;
    }
    for (int i = 0; cmd->empty && i < o->npos; i++)
        if (!*o->pos[i]) {
            cli_usage_error(cmd->name, "%s: %s", name, cmd->empty);
            return NULL;
        }
    if (check_verb_options(cmd, o, v) != 0)
        return NULL;
    return v;
}

client *cli_client_new(const char *cmd, const char *endpoint)
{
    client *c = client_new(endpoint);
    if (!c)
        cli_usage_error(cmd, "--endpoint must be an http:// or https:// URL, not '%s'", endpoint);
    return c;
}

/* ---- requests ---- */

char *cli_item_path(const char *base, const char *id, const char *suffix)
{
    char *e = client_escape_query(id), *p = NULL;
    if (e && asprintf(&p, "%s%s%s", base, e, suffix) < 0)
        p = NULL;
    free(e);
    return p;
}

void cli_print_answer_error(const client_response *resp, bool force_hint)
{
    char msg[1024];
    client_response_error(resp, msg, sizeof(msg));
    fprintf(stderr, "error: %s\n", msg);
    if (force_hint && strncmp(msg, "force_required:", 15) == 0)
        fprintf(stderr, "hint: add --force to do it anyway\n");
}

bool cli_request(client *c, const char *method, const char *path, const void *body, size_t len,
                 const char *const *headers, bool force_hint, client_response *resp)
{
    if (!path) {
        *resp = (client_response){0};
        cli_out_of_memory();
        return false;
    }
    if (client_request(c, method, path, body, len, headers, resp) < 0) {
        fprintf(stderr, "error: %s\n", client_error(c));
        return false;
    }
    if (resp->status < 200 || resp->status > 299) {
        cli_print_answer_error(resp, force_hint);
        client_response_free(resp);
        return false;
    }
    return true;
}

bool cli_request_json(client *c, const char *method, const char *path, const json_t *body,
                      client_response *resp)
{
    static const char *const headers[] = {"Content-Type: application/json", NULL};
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    if (body && !text) {
        cli_out_of_memory();
        return false;
    }
    bool ok = cli_request(c, method, path, text, text ? strlen(text) : 0, body ? headers : NULL,
                          true, resp);
    free(text);
    return ok;
}

/* ---- answers ---- */

json_t *cli_answer_json(const client_response *resp)
{
    errdetail why;
    json_t *j = client_response_json(resp, &why);
    if (!j)
        fprintf(stderr, "error: unexpected answer from the server: %s\n", why.message);
    return j;
}

void cli_print_body(const client_response *resp)
{
    fwrite(resp->body, 1, resp->body_len, stdout);
    if (resp->body_len == 0 || resp->body[resp->body_len - 1] != '\n')
        putchar('\n');
}

bool cli_puts_json(const json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    if (!s) {
        cli_out_of_memory();
        return false;
    }
    puts(s);
    free(s);
    return true;
}

bool cli_flush_out(void)
{
    if (fflush(stdout) == 0 && !ferror(stdout))
        return true;
    fprintf(stderr, "error: writing output: %s\n", strerror(errno));
    return false;
}

int cli_print_answer(client_response *resp, bool json, cli_text_fn *text, const void *ctx)
{
    bool ok = true;
    if (json) {
        cli_print_body(resp);
    } else {
        json_t *j = cli_answer_json(resp);
        ok = j && text(j, resp->status, ctx);
        json_decref(j);
    }
    client_response_free(resp);
    return ok && cli_flush_out() ? 0 : CLI_EXIT_RUNTIME;
}

int cli_exchange_json(client *c, const char *method, const char *path, const json_t *body,
                      bool json, cli_text_fn *text, const void *ctx)
{
    client_response resp;
    if (!cli_request_json(c, method, path, body, &resp))
        return CLI_EXIT_RUNTIME;
    return cli_print_answer(&resp, json, text, ctx);
}

/* ---- listings ---- */

json_t *cli_get_page(client *c, const char *path, const char *member, bool force_hint,
                     json_t **items, bool *more)
{
    client_response resp;
    if (!cli_request(c, "GET", path, NULL, 0, NULL, force_hint, &resp))
        return NULL;
    json_t *page = cli_answer_json(&resp);
    client_response_free(&resp);
    *items = json_object_get(page, member);
    if (!page || !json_is_array(*items)) {
        if (page)
            fprintf(stderr, "error: unexpected answer from the server: no %s\n", member);
        json_decref(page);
        return NULL;
    }
    *more = json_is_true(json_object_get(page, "more"));
    if (*more && json_array_size(*items) == 0) {
        fprintf(stderr, "error: server says there is more but sent nothing\n");
        json_decref(page);
        return NULL;
    }
    return page;
}

bool cli_advance_after(char **after, const json_t *items)
{
    size_t n = json_array_size(items);
    if (n == 0)
        return true;
    free(*after);
    *after = strdup(cli_str_or(json_array_get(items, n - 1), "key", ""));
    if (!*after) {
        cli_out_of_memory();
        return false;
    }
    return true;
}

const char *cli_str_or(const json_t *j, const char *name, const char *dflt)
{
    const char *s = json_string_value(json_object_get(j, name));
    return s && *s ? s : dflt;
}
