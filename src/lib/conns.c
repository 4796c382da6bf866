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
    free(p);
}

client *conns_client_new(const conns *p, const char *base)
{
    client *c = client_new(base);
    if (c) {
        client_set_connect_timeout_ms(c, p->connect_ms);
        client_set_timeout_ms(c, p->request_ms);
    }
    return c;
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
    int rc = client_request(i->c, method, path, text, text ? strlen(text) : 0,
                            text ? json_hdr : NULL, resp);
    free(text);
    if (rc < 0) {
        conns_fail(err, rc, "%s", client_error(i->c));
        /* A failed handle may hold a broken connection: start afresh. */
        client_free(i->c);
        free(i->base);
        free(i);
        return rc;
    }
    give_back(p, i);
    return 0;
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
