/* cli/auth.c — `citrus auth ...`: API keys through /v1/auth/keys, and the
 * cluster's first sm-admin key through POST /v1/auth/bootstrap.
 *
 * A key is in the server's answer once, so the commands that make one
 * print it alone on stdout (for `KEY=$(citrus auth key create ...)`) and
 * what it is on stderr; `bootstrap --out FILE` creates FILE (mode 0600)
 * before asking, so a key that can be had only once is never lost to a
 * file that cannot be written. */
#include "cli/auth.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli_util.h"
#include "net/client.h"

#define usage_error(...) cli_usage_error("auth", __VA_ARGS__)

/* One line of the help per line of source. */
// clang-format off
static const char usage_text[] =
    "usage: citrus auth <command> [options]\n"
    "\n"
    "commands:\n"
    "  key create --name NAME --role ROLE [--role ROLE]... [--tenant PATTERN]...\n"
    "             [--grant PREFIX=read|readwrite]... [--expires-in SECONDS]\n"
    "                               make an API key: prints the key (shown only this\n"
    "                               once) alone on stdout, its id and name on stderr;\n"
    "                               roles: sm-admin, sm-operator, reader, tenant (which\n"
    "                               needs a --tenant scope, as acme:*); --grant gives\n"
    "                               KV access under a prefix\n"
    "  key ls                       list the API keys (never the keys themselves)\n"
    "  key rm ID                    revoke a key (refused at once)\n"
    "  bootstrap [--out FILE]       the cluster's first sm-admin key, once per cluster\n"
    "                               (needs no token): printed, or written to FILE\n"
    "                               (created, mode 0600)\n"
    "\n"
    "options:\n"
    CLI_USAGE_OPTIONS
    "  --json            the same as -o json\n"
    "\n"
    "Exit status: 0 ok, 1 error, 2 bad usage, " CLI_USAGE_EXIT_AUTH ";\n"
    "bootstrap: 5 when the cluster was bootstrapped already.\n";
// clang-format on

/* Long-only options. */
enum {
    OPT_NAME = CLI_OPT_FIRST,
    OPT_ROLE,
    OPT_TENANT,
    OPT_GRANT,
    OPT_EXPIRES_IN,
    OPT_OUT,
    OPT_JSON,
};

#define BIT(opt) CLI_BIT(opt)
#define CREATE_OPTS                                                                                \
    (BIT(OPT_NAME) | BIT(OPT_ROLE) | BIT(OPT_TENANT) | BIT(OPT_GRANT) | BIT(OPT_EXPIRES_IN) |      \
     BIT(OPT_JSON))

/* The server keeps at most this many scopes and grants per key. */
#define MAX_SCOPES 64

typedef struct au_args {
    cli_opts cli; /* --endpoint, -o, credentials, positional arguments */
    const char *name;
    json_t *roles, *tenants, *grants; /* arrays, built as the options come */
    long long expires_in;             /* 0: never */
    const char *out;
} au_args;

typedef struct au_verb {
    cli_verb v; /* first, for cli_pick_verb */
    int (*run)(client *c, const au_args *a);
} au_verb;

/* ---- key create ---- */

/* "value, value" of a string array, into out. */
static void join(const json_t *arr, char *out, size_t len, const char *none)
{
    size_t i, n = 0;
    json_t *v;
    out[0] = '\0';
    json_array_foreach(arr, i, v)
    {
        const char *s = json_string_value(v);
        int w = snprintf(out + n, len - n, "%s%s", i ? "," : "", s ? s : "?");
        if (w < 0 || (size_t)w >= len - n)
            break;
        n += (size_t)w;
    }
    if (!out[0])
        snprintf(out, len, "%s", none);
}

/* Prints a new key: alone on stdout, what it is on stderr; or the whole
 * answer with json. */
static bool print_new_key(const json_t *j, bool json, const char *what)
{
    const char *key = json_string_value(json_object_get(j, "key"));
    if (!key) {
        fprintf(stderr, "error: unexpected answer from the server: no key\n");
        return false;
    }
    if (json)
        return cli_puts_json(j);
    char roles[256];
    join(json_object_get(j, "roles"), roles, sizeof(roles), "-");
    puts(key);
    fprintf(stderr, "%s key %s (name %s, roles %s): it is shown only this once\n", what,
            cli_str_or(j, "id", "?"), cli_str_or(j, "name", "?"), roles);
    return true;
}

static bool text_created(const json_t *j, long status, const void *ctx)
{
    (void)status;
    (void)ctx;
    return print_new_key(j, false, "created");
}

static int au_create(client *c, const au_args *a)
{
    if (!a->name || !*a->name)
        return usage_error("key create: --name NAME is required");
    if (json_array_size(a->roles) == 0)
        return usage_error("key create: --role ROLE is required (sm-admin, sm-operator, "
                           "reader or tenant)");
    json_t *body = json_pack("{s:s,s:O}", "name", a->name, "roles", a->roles);
    if (!body)
        return usage_error("key create: --name must be valid UTF-8");
    bool ok = true;
    if (json_array_size(a->tenants))
        ok = json_object_set(body, "tenants", a->tenants) == 0;
    if (ok && json_array_size(a->grants))
        ok = json_object_set(body, "grants", a->grants) == 0;
    if (ok && a->expires_in)
        ok = json_object_set_new(body, "expires_in_s", json_integer(a->expires_in)) == 0;
    int rc =
        ok ? cli_exchange_json(c, "POST", "/v1/auth/keys", body, a->cli.json, text_created, NULL)
           : cli_out_of_memory();
    json_decref(body);
    return rc;
}

/* ---- key ls, key rm ---- */

/* An RFC 3339 time member, or dflt when it is null or absent. */
static const char *when(const json_t *k, const char *name, const char *dflt)
{
    return cli_str_or(k, name, dflt);
}

static bool text_keys(const json_t *j, long status, const void *ctx)
{
    (void)status;
    (void)ctx;
    json_t *keys = json_object_get(j, "keys");
    if (!json_is_array(keys)) {
        fprintf(stderr, "error: unexpected answer from the server: no keys\n");
        return false;
    }
    printf("%-16s  %-20s  %-24s  %-20s  %-20s  %s\n", "ID", "NAME", "ROLES", "TENANTS", "EXPIRES",
           "LAST_USED");
    size_t i;
    json_t *k;
    json_array_foreach(keys, i, k)
    {
        char roles[256], tenants[256];
        join(json_object_get(k, "roles"), roles, sizeof(roles), "-");
        join(json_object_get(k, "tenants"), tenants, sizeof(tenants), "-");
        printf("%-16s  %-20s  %-24s  %-20s  %-20s  %s\n", cli_str_or(k, "id", "?"),
               cli_str_or(k, "name", "?"), roles, tenants, when(k, "expires_at", "never"),
               when(k, "last_used_at", "never"));
    }
    return true;
}

static int au_ls(client *c, const au_args *a)
{
    return cli_exchange_json(c, "GET", "/v1/auth/keys", NULL, a->cli.json, text_keys, NULL);
}

static bool text_deleted(const json_t *j, long status, const void *ctx)
{
    (void)status;
    (void)ctx;
    printf("revoked key %s\n", cli_str_or(j, "deleted", "?"));
    return true;
}

static int au_rm(client *c, const au_args *a)
{
    char *path = cli_item_path("/v1/auth/keys/", a->cli.pos[0], "");
    int rc = path ? cli_exchange_json(c, "DELETE", path, NULL, a->cli.json, text_deleted, NULL)
                  : cli_out_of_memory();
    free(path);
    return rc;
}

/* ---- bootstrap ---- */

/* Writes the key and a newline to fd and closes it; false after a message
 * (the key then goes to stdout so that it is not lost). */
static bool write_key(int fd, const char *file, const json_t *j)
{
    const char *key = json_string_value(json_object_get(j, "key"));
    size_t n = key ? strlen(key) : 0;
    bool ok = key && write(fd, key, n) == (ssize_t)n && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
    int err = errno;
    ok = close(fd) == 0 && ok;
    if (ok) {
        fprintf(stderr, "bootstrap key %s written to %s (mode 0600)\n", cli_str_or(j, "id", "?"),
                file);
        return true;
    }
    if (!key) {
        fprintf(stderr, "error: unexpected answer from the server: no key\n");
        return false;
    }
    fprintf(stderr,
            "error: cannot write %s: %s; the key (shown only this once) is on stdout instead\n",
            file, strerror(err ? err : EIO));
    puts(key);
    return false;
}

static int au_bootstrap(client *c, const au_args *a)
{
    int fd = -1;
    if (a->out) {
        /* Before asking: a file that cannot be made must not cost the key. */
        fd = open(a->out, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0) {
            fprintf(stderr, "error: cannot create %s: %s%s\n", a->out, strerror(errno),
                    errno == EEXIST ? " (bootstrap does not overwrite a file)" : "");
            return CLI_EXIT_RUNTIME;
        }
    }
    client_response resp;
    int rc = CLI_EXIT_RUNTIME;
    if (client_request(c, "POST", "/v1/auth/bootstrap", NULL, 0, NULL, &resp) < 0) {
        fprintf(stderr, "error: %s\n", client_error(c));
        goto out;
    }
    if (resp.status == 403) {
        char msg[1024];
        cli_answer_message(&resp, msg, sizeof(msg));
        fprintf(stderr,
                "citrus auth: already bootstrapped (403): %s\nMake further keys with 'citrus "
                "auth key create' and an sm-admin token.\n",
                msg);
        rc = CLI_EXIT_FORBIDDEN;
    } else if (resp.status < 200 || resp.status > 299) {
        cli_print_answer_error(&resp, false);
    } else {
        json_t *j = cli_answer_json(&resp);
        bool ok =
            j && (fd >= 0 ? write_key(fd, a->out, j) : print_new_key(j, a->cli.json, "bootstrap"));
        fd = -1; /* write_key closed it */
        json_decref(j);
        rc = ok && cli_flush_out() ? 0 : CLI_EXIT_RUNTIME;
    }
    explicit_bzero(resp.body, resp.body_len);
    client_response_free(&resp);
out:
    if (fd >= 0) {
        close(fd);
        unlink(a->out); /* nothing was written to it */
    }
    return rc;
}

/* ---- dispatch ---- */

static const au_verb key_verbs[] = {
    {{"create", 0, 0, CREATE_OPTS}, au_create},
    {{"ls", 0, 0, BIT(OPT_JSON)}, au_ls},
    {{"rm", 1, 1, BIT(OPT_JSON)}, au_rm},
};

static const struct option long_opts[] = {
    CLI_LONG_OPTS_COMMON,
    {"name", required_argument, NULL, OPT_NAME},
    {"role", required_argument, NULL, OPT_ROLE},
    {"tenant", required_argument, NULL, OPT_TENANT},
    {"grant", required_argument, NULL, OPT_GRANT},
    {"expires-in", required_argument, NULL, OPT_EXPIRES_IN},
    {"out", required_argument, NULL, OPT_OUT},
    {"json", no_argument, NULL, OPT_JSON},
    CLI_LONG_OPTS_END,
};

static const cli_cmd auth_cmd = {.name = "auth",
                                 .usage = usage_text,
                                 .long_opts = long_opts,
                                 .missing = "argument",
                                 .empty = "arguments must not be empty"};

/* Appends s to the array *arr (made on first use); at most MAX_SCOPES. */
static int add_string(json_t **arr, const char *opt, const char *s)
{
    if (!*s)
        return usage_error("--%s must not be empty", opt);
    if (json_array_size(*arr) >= MAX_SCOPES)
        return usage_error("at most %d --%s options", MAX_SCOPES, opt);
    json_t *v = json_string(s);
    if (!v)
        return usage_error("--%s must be valid UTF-8", opt);
    if ((!*arr && !(*arr = json_array())) || json_array_append_new(*arr, v) < 0)
        return cli_out_of_memory();
    return -1;
}

/* --grant PREFIX=read|readwrite as {"prefix", "access"}. */
static int add_grant(json_t **arr, const char *arg)
{
    const char *eq = strrchr(arg, '=');
    if (!eq || eq == arg || (strcmp(eq + 1, "read") != 0 && strcmp(eq + 1, "readwrite") != 0))
        return usage_error("--grant needs PREFIX=read or PREFIX=readwrite, not '%s'", arg);
    if (json_array_size(*arr) >= MAX_SCOPES)
        return usage_error("at most %d --grant options", MAX_SCOPES);
    json_t *g = json_pack("{s:s%,s:s}", "prefix", arg, (size_t)(eq - arg), "access", eq + 1);
    if (!g)
        return usage_error("--grant must be valid UTF-8");
    if ((!*arr && !(*arr = json_array())) || json_array_append_new(*arr, g) < 0)
        return cli_out_of_memory();
    return -1;
}

/* One of auth's own options into *ctx (an au_args). -1 to go on, else the
 * exit code. */
static int au_option(void *ctx, int opt, const char *arg)
{
    au_args *a = ctx;
    switch (opt) {
    case OPT_NAME:
        a->name = arg;
        break;
    case OPT_ROLE:
        return add_string(&a->roles, "role", arg);
    case OPT_TENANT:
        return add_string(&a->tenants, "tenant", arg);
    case OPT_GRANT:
        return add_grant(&a->grants, arg);
    case OPT_EXPIRES_IN: {
        char *end;
        errno = 0;
        a->expires_in = strtoll(arg, &end, 10);
        if (errno || end == arg || *end || a->expires_in < 1)
            return usage_error("--expires-in needs a number of seconds >= 1, not '%s'", arg);
        break;
    }
    case OPT_OUT:
        if (!*arg)
            return usage_error("--out must not be empty");
        a->out = arg;
        break;
    case OPT_JSON:
        a->cli.json = true;
        break;
    }
    return -1;
}

/* Picks and runs the verb: "bootstrap", or "key" and one of key_verbs. */
static int dispatch(au_args *a)
{
    cli_opts *o = &a->cli;
    if (o->npos < 1) {
        fputs(usage_text, stderr);
        return CLI_EXIT_USAGE;
    }
    const au_verb *v = NULL;
    if (strcmp(o->pos[0], "bootstrap") == 0) {
        static const au_verb boot[] = {
            {{"bootstrap", 0, 0, BIT(OPT_OUT) | BIT(OPT_JSON)}, au_bootstrap}};
        v = CLI_PICK_VERB(&auth_cmd, o, boot);
    } else if (strcmp(o->pos[0], "key") == 0) {
        o->pos++;
        o->npos--;
        v = CLI_PICK_VERB(&auth_cmd, o, key_verbs);
    } else {
        return usage_error("unknown command '%s'", o->pos[0]);
    }
    if (!v)
        return CLI_EXIT_USAGE;
    client *c = cli_client_new(auth_cmd.name, o->endpoint, &o->creds);
    if (!c)
        return CLI_EXIT_USAGE;
    int rc = v->run(c, a);
    client_free(c);
    return rc;
}

int cli_auth_main(int argc, char **argv)
{
    au_args a = {0};
    int rc = cli_parse_args(&auth_cmd, &a.cli, argc, argv, au_option, &a);
    if (rc < 0)
        rc = dispatch(&a);
    json_decref(a.roles);
    json_decref(a.tenants);
    json_decref(a.grants);
    return rc;
}
