/* api/authkeys.c — /v1/auth/keys and /v1/auth/bootstrap: API keys made,
 * listed and revoked (auth/keyring.h). The key itself is in the answer to
 * its POST only; lists never carry it or its hash. Catalog calls: on the
 * work pool. */
#include <stdio.h>
#include <string.h>

#include "api/app.h"
#include "api/handlers.h"
#include "citrus/errors.h"

static int no_keys(http_req *r)
{
    return http_reply_error(r, CITRUS_EUNPROCESSABLE,
                            "API keys are off on this node: add api_key to auth.modes", NULL);
}

/* 201 {"key": "ck_...", "id", "name", "roles", ...}. */
static int reply_created(http_req *r, app *a, const char *token, json_t *view, int64_t rev)
{
    reader_note_write(a->rd, rev);
    json_object_set_new(view, "key", json_string(token));
    json_object_set_new(view, "revision", json_integer(rev));
    http_add_header(r, "Cache-Control", "no-store");
    return http_reply_json(r, 201, view);
}

int api_auth_keys_create(http_req *r, void *ctx)
{
    APP_OFFLOAD(r, api_auth_keys_create, ctx);
    app *a = ctx;
    if (!a->keys)
        return no_keys(r);
    json_t *body = http_req_json(r);
    if (!body)
        return CITRUS_EBADJSON;
    apikey_spec spec;
    errdetail e;
    int rc = apikey_spec_parse(body, clock_wall_ms(NULL), &spec, &e);
    json_decref(body);
    if (rc < 0)
        return http_reply_error(r, rc, e.message, NULL);
    char token[APIKEY_TOKEN_LEN + 1];
    json_t *view = NULL;
    int64_t rev = 0;
    rc = keyring_create(a->keys, &spec, false, token, &view, &rev, &e);
    apikey_spec_clear(&spec);
    if (rc < 0)
        return http_reply_error(r, rc, e.message, NULL);
    rc = reply_created(r, a, token, view, rev);
    memset(token, 0, sizeof(token));
    return rc;
}

int api_auth_keys_list(http_req *r, void *ctx)
{
    APP_OFFLOAD(r, api_auth_keys_list, ctx);
    app *a = ctx;
    if (!a->keys)
        return no_keys(r);
    json_t *items;
    int64_t rev;
    errdetail e;
    int rc = keyring_list(a->keys, &items, &rev, &e);
    if (rc < 0)
        return http_reply_error(r, rc, e.message, NULL);
    return http_reply_json(r, 200,
                           json_pack("{s:o,s:I}", "keys", items, "revision", (json_int_t)rev));
}

int api_auth_keys_delete(http_req *r, void *ctx)
{
    APP_OFFLOAD(r, api_auth_keys_delete, ctx);
    app *a = ctx;
    if (!a->keys)
        return no_keys(r);
    const char *id = http_req_param(r, "id");
    int64_t rev = 0;
    errdetail e;
    int rc = keyring_delete(a->keys, id, &rev, &e);
    if (rc < 0)
        return http_reply_error(r, rc, e.message, NULL);
    reader_note_write(a->rd, rev);
    return http_reply_json(r, 200,
                           json_pack("{s:s,s:I}", "deleted", id, "revision", (json_int_t)rev));
}

int api_auth_bootstrap(http_req *r, void *ctx)
{
    APP_OFFLOAD(r, api_auth_bootstrap, ctx);
    app *a = ctx;
    if (!a->keys)
        return no_keys(r);
    apikey_spec spec = {.roles = AUTH_ADMIN};
    snprintf(spec.name, sizeof(spec.name), "bootstrap");
    char token[APIKEY_TOKEN_LEN + 1];
    json_t *view = NULL;
    int64_t rev = 0;
    errdetail e;
    int rc = keyring_create(a->keys, &spec, true, token, &view, &rev, &e);
    if (rc < 0)
        return http_reply_error(r, rc, e.message, NULL);
    rc = reply_created(r, a, token, view, rev);
    memset(token, 0, sizeof(token));
    return rc;
}
