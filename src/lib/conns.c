/* lib/conns.c — pooled HTTP handles, endpoint fail-over and error answers
 * (see conns.h). */
#include "lib/conns.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An idle handle, for one base URL. */
typedef struct idle {
    struct idle *next;
    char *base;
    client *c;
} idle;

struct conns {
    char **endpoints;
    size_t n;
    atomic_size_t preferred; /* read and set by any thread */
    long connect_ms, request_ms;
    pthread_mutex_t mu;
    idle *free_list; /* guarded by mu */

    char *cacert, *cert, *key; /* TLS files, or NULL */
    int (*token_cb)(void *ctx, char *buf, size_t len);
    void *token_ctx;
    /* The token sent, and how many times token_cb gave one (a request
     * refused with 401 asks for a new one only if none came since it was
     * sent): guarded by token_mu, which also serialises token_cb. */
    pthread_mutex_t token_mu;
    char *token;
    unsigned token_gen;
};

conns *conns_new(const char *const *endpoints, size_t n, long connect_ms, long request_ms)
{
    conns *p = calloc(1, sizeof(*p));
    if (!p || !(p->endpoints = calloc(n, sizeof(char *)))) {
        free(p);
        return NULL;
    }
    for (; p->n < n; p->n++) {
        size_t len = strlen(endpoints[p->n]);
        while (len > 0 && endpoints[p->n][len - 1] == '/')
            len--;
        if (!(p->endpoints[p->n] = strndup(endpoints[p->n], len))) {
            conns_free(p);
            return NULL;
        }
    }
    p->connect_ms = connect_ms;
    p->request_ms = request_ms;
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_init(&p->token_mu, NULL);
    return p;
}

void conns_free(conns *p)
{
    if (!p)
        return;
    while (p->free_list) {
        idle *i = p->free_list;
        p->free_list = i->next;
        client_free(i->c);
        free(i->base);
        free(i);
    }
    for (size_t i = 0; i < p->n; i++)
        free(p->endpoints[i]);
    free(p->endpoints);
    pthread_mutex_destroy(&p->mu);
    if (p->token) {
        explicit_bzero(p->token, strlen(p->token));
        free(p->token);
    }
    free(p->cacert);
    free(p->cert);
    free(p->key);
    pthread_mutex_destroy(&p->token_mu);
    free(p);
}

/* *dst = a copy of src (NULL stays NULL); false out of memory. */
static bool copy_opt(char **dst, const char *src)
{
    *dst = src && *src ? strdup(src) : NULL;
    return *dst || !(src && *src);
}

int conns_set_credentials(conns *p, const citrus_options *o, citrus_error *err)
{
    if (o->token && o->token_cb)
        return conns_fail(err, CITRUS_EINVAL, "token and token_cb: give one of them");
    if (o->token && client_check_token(o->token) < 0)
        return conns_fail(err, CITRUS_EINVAL,
                          "token: one word of visible ASCII of at most %d bytes expected",
                          CITRUS_TOKEN_MAX);
    if (!copy_opt(&p->token, o->token) || !copy_opt(&p->cacert, o->cacert) ||
        !copy_opt(&p->cert, o->cert) || !copy_opt(&p->key, o->key))
        return conns_fail(err, CITRUS_ENOMEM, "out of memory");
    p->token_cb = o->token_cb;
    p->token_ctx = o->token_ctx;
    return 0;
}

client *conns_client_new(const conns *p, const char *base)
{
    client *c = client_new(base);
    if (c) {
        client_set_connect_timeout_ms(c, p->connect_ms);
        client_set_timeout_ms(c, p->request_ms);
        if (client_set_tls(c, p->cacert, p->cert, p->key) < 0) {
            client_free(c);
            return NULL;
        }
    }
    return c;
}

/* Asks token_cb for a token (token_mu held). */
static int fetch_token(conns *p, citrus_error *err)
{
    char *buf = calloc(1, CITRUS_TOKEN_MAX + 1);
    if (!buf)
        return conns_fail(err, CITRUS_ENOMEM, "out of memory");
    int rc = 0, cb = p->token_cb(p->token_ctx, buf, CITRUS_TOKEN_MAX + 1);
    if (cb != 0)
        rc = conns_fail(err, CITRUS_EUNAUTHENTICATED, "token_cb failed (it returned %d)", cb);
    else if (!memchr(buf, '\0', CITRUS_TOKEN_MAX + 1) || client_check_token(buf) < 0)
        rc = conns_fail(err, CITRUS_EUNAUTHENTICATED,
                        "token_cb gave no token: one word of visible ASCII of at most %d bytes "
                        "expected",
                        CITRUS_TOKEN_MAX);
    if (rc == 0) {
        if (p->token) {
            explicit_bzero(p->token, strlen(p->token));
            free(p->token);
        }
        p->token = buf; /* NUL-terminated within the buffer, checked above */
        p->token_gen++;
        return 0;
    }
    explicit_bzero(buf, CITRUS_TOKEN_MAX + 1);
    free(buf);
    return rc;
}

/* conns_authorize, noting in *gen which token c got. */
static int authorize(conns *p, client *c, unsigned *gen, citrus_error *err)
{
    pthread_mutex_lock(&p->token_mu);
    int rc = p->token_cb && p->token_gen == 0 ? fetch_token(p, err) : 0;
    if (rc == 0 && client_set_token(c, p->token) < 0)
        rc = conns_fail(err, CITRUS_ENOMEM, "out of memory");
    *gen = p->token_gen;
    pthread_mutex_unlock(&p->token_mu);
    return rc;
}

int conns_authorize(conns *p, client *c, citrus_error *err)
{
    unsigned gen;
    return authorize(p, c, &gen, err);
}

/* After a 401 to the token of generation gen: a new token from token_cb
 * unless one came since. Whether to send the request again. */
static bool renew_token(conns *p, unsigned gen, citrus_error *err)
{
    if (!p->token_cb)
        return false;
    pthread_mutex_lock(&p->token_mu);
    int rc = p->token_gen == gen ? fetch_token(p, err) : 0;
    pthread_mutex_unlock(&p->token_mu);
    return rc == 0;
}

size_t conns_endpoint_count(const conns *p)
{
    return p->n;
}

const char *conns_endpoint(const conns *p, size_t i)
{
    return p->endpoints[i];
}

size_t conns_preferred(const conns *p)
{
    return atomic_load_explicit(&p->preferred, memory_order_relaxed);
}

void conns_set_preferred(conns *p, size_t i)
{
    atomic_store_explicit(&p->preferred, i, memory_order_relaxed);
}

/* An idle handle for base, or a new one. */
static idle *take(conns *p, const char *base)
{
    pthread_mutex_lock(&p->mu);
    for (idle **pp = &p->free_list; *pp; pp = &(*pp)->next)
        if (strcmp((*pp)->base, base) == 0) {
            idle *i = *pp;
            *pp = i->next;
            pthread_mutex_unlock(&p->mu);
            return i;
        }
    pthread_mutex_unlock(&p->mu);
    idle *i = calloc(1, sizeof(*i));
    if (i && (i->base = strdup(base)) && (i->c = conns_client_new(p, base)))
        return i;
    if (i)
        free(i->base);
    free(i);
    return NULL;
}

static void give_back(conns *p, idle *i)
{
    pthread_mutex_lock(&p->mu);
    i->next = p->free_list;
    p->free_list = i;
    pthread_mutex_unlock(&p->mu);
}

int conns_fail(citrus_error *err, int code, const char *fmt, ...)
{
    if (!err)
        return code;
    memset(err, 0, sizeof(*err));
    err->code = code;
    err->statement = -1;
    snprintf(err->name, sizeof(err->name), "%s", citrus_err_code(code));
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return code;
}

static int refused(const client_response *resp, const char *base, citrus_error *err);

int conns_request(conns *p, const char *base, const char *method, const char *path,
                  const json_t *body, client_response *resp, citrus_error *err)
{
    memset(resp, 0, sizeof(*resp));
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    if (body && !text)
        return conns_fail(err, CITRUS_ENOMEM, "out of memory");
    idle *i = take(p, base);
    if (!i) {
        free(text);
        if (strncmp(base, "http://", 7) != 0 && strncmp(base, "https://", 8) != 0)
            return conns_fail(err, CITRUS_EINVAL, "%s: not an http(s) URL", base);
        return conns_fail(err, CITRUS_ENOMEM, "out of memory");
    }
    static const char *const json_hdr[] = {"Content-Type: application/json", NULL};
    unsigned gen = 0;
    int rc = authorize(p, i->c, &gen, err);
    for (int attempt = 0; rc == 0; attempt++) {
        rc = client_request(i->c, method, path, text, text ? strlen(text) : 0,
                            text ? json_hdr : NULL, resp);
        if (rc < 0 || resp->status != 401 || attempt > 0 || !renew_token(p, gen, err))
            break;
        client_response_free(resp);
        rc = authorize(p, i->c, &gen, err);
    }
    free(text);
    if (rc < 0) {
        if (rc != CITRUS_EUNAUTHENTICATED && rc != CITRUS_ENOMEM)
            conns_fail(err, rc, "%s", client_error(i->c));
        /* A failed handle may hold a broken connection: start afresh. */
        client_free(i->c);
        free(i->base);
        free(i);
        return rc;
    }
    give_back(p, i);
    if (resp->status == 401 || resp->status == 403) {
        rc = refused(resp, base, err);
        client_response_free(resp);
    }
    return rc;
}

bool conns_should_fail_over(int rc, const client_response *resp)
{
    return rc == CITRUS_EUNAVAILABLE || rc == CITRUS_ETIMEOUT || (rc == 0 && resp->status == 503);
}

int conns_catalog(conns *p, const char *method, const char *path, const json_t *body,
                  client_response *resp, citrus_error *err)
{
    size_t first = conns_preferred(p);
    int rc = CITRUS_EUNAVAILABLE;
    for (size_t k = 0; k < p->n; k++) {
        size_t i = (first + k) % p->n;
        if (k > 0)
            client_response_free(resp);
        rc = conns_request(p, p->endpoints[i], method, path, body, resp, err);
        if (!conns_should_fail_over(rc, resp)) {
            if (rc == 0)
                conns_set_preferred(p, i);
            return rc;
        }
    }
    return rc;
}

/* The CITRUS_E* value of a snake_case code (CITRUS_EINTERNAL if unknown). */
static int code_value(const char *name)
{
#define CITRUS_ERR_LOOKUP(n, val, code, http, desc)                                                \
    if (name && strcmp(name, code) == 0)                                                           \
        return (val);
    CITRUS_ERROR_TABLE(CITRUS_ERR_LOOKUP)
#undef CITRUS_ERR_LOOKUP
    return CITRUS_EINTERNAL;
}

static const char *str_or(const json_t *j, const char *name, const char *dflt)
{
    const char *s = json_string_value(json_object_get(j, name));
    return s ? s : dflt;
}

int conns_answer_error(const client_response *resp, citrus_error *err)
{
    json_t *j = json_loadb(resp->body, resp->body_len, 0, NULL);
    json_t *e = json_object_get(j, "error");
    const char *name = json_string_value(json_object_get(e, "code"));
    int code = code_value(name);
    if (!name) {
        int n = (int)(resp->body_len < 200 ? resp->body_len : 200);
        conns_fail(err, code, "http_%ld: %.*s", resp->status, n, resp->body ? resp->body : "");
    } else {
        conns_fail(err, code, "%s", str_or(e, "message", ""));
    }
    if (err) {
        err->http_status = (int)resp->status;
        if (name)
            snprintf(err->name, sizeof(err->name), "%s", name);
        snprintf(err->sqlstate, sizeof(err->sqlstate), "%s", str_or(e, "sqlstate", ""));
        json_t *st = json_object_get(e, "statement");
        if (json_is_integer(st))
            err->statement = (long)json_integer_value(st);
    }
    json_decref(j);
    return code;
}

/* A 401 or 403 from base as its code, err saying "401 from <base>:
 * <message>". */
static int refused(const client_response *resp, const char *base, citrus_error *err)
{
    int code = conns_answer_error(resp, err);
    if (code != CITRUS_EUNAUTHENTICATED && code != CITRUS_EFORBIDDEN) /* not one of ours */
        code = resp->status == 401 ? CITRUS_EUNAUTHENTICATED : CITRUS_EFORBIDDEN;
    if (err) {
        char msg[sizeof(err->message)];
        snprintf(msg, sizeof(msg), "%s", err->message);
        err->code = code;
        snprintf(err->name, sizeof(err->name), "%s", citrus_err_code(code));
        /* The server's message is cut short when the URL is long. */
        int n = snprintf(err->message, sizeof(err->message), "%ld from %s: ", resp->status, base);
        if (n >= 0 && (size_t)n < sizeof(err->message)) {
            size_t len = strnlen(msg, sizeof(err->message) - 1 - (size_t)n);
            memcpy(err->message + n, msg, len);
            err->message[(size_t)n + len] = '\0';
        }
    }
    return code;
}

json_t *conns_answer_json(const client_response *resp, citrus_error *err)
{
    if (resp->status < 200 || resp->status > 299) {
        conns_answer_error(resp, err);
        return NULL;
    }
    errdetail why;
    json_t *j = client_response_json(resp, &why);
    if (!j)
        conns_fail(err, CITRUS_ECORRUPT, "unexpected answer: %s", why.message);
    return j;
}
