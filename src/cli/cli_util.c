/* cli/cli_util.c — what the request commands of the CLI share; see
 * cli_util.h. */
#include "cli/cli_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "citrus/errors.h"

/* The command running and the code of the last refused request (0: none):
 * the CLI runs one command per process, on one thread. */
static const char *command_name = "";
static int refused_code;

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
        case CLI_OPT_TOKEN:
        case CLI_OPT_TOKEN_FILE:
        case CLI_OPT_CACERT:
        case CLI_OPT_CERT:
        case CLI_OPT_KEY:
            cli_creds_option(&o->creds, opt, optarg);
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

/* ---- credentials ---- */

bool cli_creds_option(cli_creds *cr, int opt, const char *arg)
{
    switch (opt) {
    case CLI_OPT_TOKEN:
        cr->token = arg;
        return true;
    case CLI_OPT_TOKEN_FILE:
        cr->token_file = arg;
        return true;
    case CLI_OPT_CACERT:
        cr->cacert = arg;
        return true;
    case CLI_OPT_CERT:
        cr->cert = arg;
        return true;
    case CLI_OPT_KEY:
        cr->key = arg;
        return true;
    default:
        return false;
    }
}

/* The flag's value, else the environment variable's (NULL when neither
 * is set or non-empty). */
static const char *flag_or_env(const char *flag, const char *env)
{
    if (flag && *flag)
        return flag;
    const char *v = getenv(env);
    return v && *v ? v : NULL;
}

static bool is_blank(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* Reads the first line of the token file path (what names it: "--token-file",
 * "$CITRUS_TOKEN_FILE") into *token, blanks trimmed. Warns when group or
 * others may read it. CLI_EXIT_USAGE after a message when it cannot be read
 * or holds no token. */
static int read_token_file(const char *cmd, const char *what, const char *path, char **token)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        int err = errno;
        if (fd >= 0)
            close(fd);
        return cli_usage_error(cmd, "%s %s: cannot read: %s", what, path, strerror(err));
    }
    if (S_ISREG(st.st_mode) && (st.st_mode & 077))
        fprintf(stderr,
                "citrus %s: warning: token file %s is accessible by others (mode %04o); "
                "chmod 600 it\n",
                cmd, path, (unsigned)(st.st_mode & 07777));
    /* The first line, at most a token's length and its line end. */
    char *buf = malloc(CLIENT_TOKEN_MAX + 3);
    if (!buf) {
        close(fd);
        return cli_usage_error(cmd, "out of memory");
    }
    size_t n = 0;
    ssize_t got = 0;
    while (n < CLIENT_TOKEN_MAX + 2 && !memchr(buf, '\n', n) &&
           (got = read(fd, buf + n, CLIENT_TOKEN_MAX + 2 - n)) > 0)
        n += (size_t)got;
    int err = errno;
    close(fd);
    buf[n] = '\0';
    char *nl = memchr(buf, '\n', n);
    if (nl)
        *nl = '\0';
    char *start = buf, *end = buf + strlen(buf);
    while (start < end && is_blank(*start))
        start++;
    while (end > start && is_blank(end[-1]))
        end--;
    *end = '\0';
    int rc = 0;
    if (got < 0)
        rc = cli_usage_error(cmd, "%s %s: cannot read: %s", what, path, strerror(err));
    else if (!*start)
        rc = cli_usage_error(cmd, "%s %s: the file is empty (its first line should be the token)",
                             what, path);
    else if (!nl && n > CLIENT_TOKEN_MAX)
        rc = cli_usage_error(cmd, "%s %s: the first line is longer than a token can be (%d bytes)",
                             what, path, CLIENT_TOKEN_MAX);
    else if (!(*token = strdup(start)))
        rc = cli_usage_error(cmd, "out of memory");
    explicit_bzero(buf, CLIENT_TOKEN_MAX + 3);
    free(buf);
    return rc;
}

int cli_auth_load(const char *cmd, const cli_creds *cr, cli_auth *out)
{
    *out = (cli_auth){.cacert = flag_or_env(cr->cacert, "CITRUS_CACERT"),
                      .cert = flag_or_env(cr->cert, "CITRUS_CERT"),
                      .key = flag_or_env(cr->key, "CITRUS_KEY")};
    if (out->key && !out->cert)
        return cli_usage_error(cmd, "--key (or $CITRUS_KEY) needs --cert (or $CITRUS_CERT)");
    const char *env_token = getenv("CITRUS_TOKEN"), *env_file = getenv("CITRUS_TOKEN_FILE");
    int rc = 0;
    if (cr->token)
        out->token = strdup(cr->token);
    else if (cr->token_file)
        rc = read_token_file(cmd, "--token-file", cr->token_file, &out->token);
    else if (env_token && *env_token)
        out->token = strdup(env_token);
    else if (env_file && *env_file)
        rc = read_token_file(cmd, "$CITRUS_TOKEN_FILE", env_file, &out->token);
    else
        return 0;
    if (rc == 0 && !out->token)
        rc = cli_usage_error(cmd, "out of memory");
    if (rc == 0 && !*out->token)
        rc = cli_usage_error(cmd, "--token must not be empty");
    if (rc != 0)
        cli_auth_clear(out);
    return rc;
}

void cli_auth_clear(cli_auth *a)
{
    if (a->token) {
        explicit_bzero(a->token, strlen(a->token));
        free(a->token);
    }
    *a = (cli_auth){0};
}

client *cli_client_new(const char *cmd, const char *endpoint, const cli_creds *cr)
{
    client *c = client_new(endpoint);
    if (!c) {
        cli_usage_error(cmd, "--endpoint must be an http:// or https:// URL, not '%s'", endpoint);
        return NULL;
    }
    cli_auth au;
    int rc = cli_auth_load(cmd, cr, &au);
    if (rc == 0) {
        int set = client_set_token(c, au.token);
        if (set == 0)
            set = client_set_tls(c, au.cacert, au.cert, au.key);
        if (set == CITRUS_EINVAL) /* never echo it: it may be a secret all the same */
            rc = cli_usage_error(cmd,
                                 "the token is not one word of visible ASCII of at most %d "
                                 "bytes: check where it came from",
                                 CLIENT_TOKEN_MAX);
        else if (set < 0)
            rc = cli_out_of_memory();
    }
    cli_auth_clear(&au);
    if (rc != 0) {
        client_free(c);
        return NULL;
    }
    return c;
}

/* ---- refused requests ---- */

void cli_set_command(const char *name)
{
    command_name = name;
}

int cli_refused(long status, const char *message)
{
    if (status == 401) {
        fprintf(stderr,
                "citrus %s: not authenticated (401): %s — pass --token, --token-file or set "
                "CITRUS_TOKEN\n",
                command_name, message);
        refused_code = CLI_EXIT_UNAUTHENTICATED;
    } else if (status == 403) {
        fprintf(stderr, "citrus %s: forbidden (403): %s\n", command_name, message);
        refused_code = CLI_EXIT_FORBIDDEN;
    } else {
        return 0;
    }
    return refused_code;
}

int cli_exit_code(int rc)
{
    return rc == CLI_EXIT_RUNTIME && refused_code ? refused_code : rc;
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

void cli_answer_message(const client_response *resp, char *out, size_t len)
{
    json_t *j = json_loadb(resp->body, resp->body_len, 0, NULL);
    const char *m = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
    if (m && *m)
        snprintf(out, len, "%s", m);
    else
        client_response_error(resp, out, len); /* not one of ours: the start of the body */
    json_decref(j);
}

void cli_print_answer_error(const client_response *resp, bool force_hint)
{
    char msg[1024];
    if (resp->status == 401 || resp->status == 403) {
        cli_answer_message(resp, msg, sizeof(msg));
        cli_refused(resp->status, msg);
        return;
    }
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
