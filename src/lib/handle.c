/* lib/handle.c — libcitrus's client: connect and close, the routing copy
 * and local resolution (pin, else ring, as GET /v1/route answers), DSNs,
 * and tenant registration. */
#include "lib/handle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/deadline.h"

#define DEFAULT_CONNECT_MS 2000
#define DEFAULT_REQUEST_MS 30000

struct citrus_route {
    snap *s; /* holds what the pointers below point into */
    const char *shard_id;
    const shard *rec; /* NULL: no record of the shard */
    uint64_t token;
    citrus_source source;
};

/* The current snapshot: a new reference (snap_unref), never NULL after
 * citrus_connect. */
static snap *handle_snap(citrus_client *c)
{
    pthread_mutex_lock(&c->mu);
    snap *s = snap_ref(c->cur);
    pthread_mutex_unlock(&c->mu);
    return s;
}

void handle_publish(citrus_client *c, snap *s)
{
    pthread_mutex_lock(&c->mu);
    snap *old = c->cur;
    c->cur = s;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    snap_unref(old);
}

/* The feed's publish_fn. */
static void publish_to(void *c, snap *s)
{
    handle_publish(c, s);
}

void citrus_free(void *p)
{
    free(p);
}

void handle_free(citrus_client *c)
{
    feed_free(c->feed);
    snap_unref(c->cur);
    conns_free(c->conns);
    free(c->router);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static bool is_url(const char *s)
{
    return s && (strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0);
}

static int check_options(const citrus_options *o, citrus_error *err)
{
    if (!o || !o->endpoints || o->nendpoints == 0)
        return conns_fail(err, CITRUS_EINVAL, "at least one catalog endpoint is needed");
    for (size_t i = 0; i < o->nendpoints; i++)
        if (!is_url(o->endpoints[i]))
            return conns_fail(err, CITRUS_EINVAL, "endpoint %zu is not an http(s) URL: %s", i,
                              o->endpoints[i] ? o->endpoints[i] : "(null)");
    if (o->router_url && !is_url(o->router_url))
        return conns_fail(err, CITRUS_EINVAL, "router_url is not an http(s) URL: %s",
                          o->router_url);
    if (o->connect_timeout_ms < 0 || o->request_timeout_ms < 0)
        return conns_fail(err, CITRUS_EINVAL, "timeouts must not be negative");
    return 0;
}

citrus_client *handle_new(const citrus_options *o, citrus_error *err)
{
    if (check_options(o, err) < 0)
        return NULL;
    citrus_client *c = calloc(1, sizeof(*c));
    if (!c) {
        conns_fail(err, CITRUS_ENOMEM, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->request_ms = o->request_timeout_ms ? o->request_timeout_ms : DEFAULT_REQUEST_MS;
    c->conns = conns_new(o->endpoints, o->nendpoints,
                         o->connect_timeout_ms ? o->connect_timeout_ms : DEFAULT_CONNECT_MS,
                         c->request_ms);
    if (c->conns && conns_set_credentials(c->conns, o, err) < 0) {
        handle_free(c);
        return NULL;
    }
    if (c->conns)
        c->feed = feed_new(c->conns, c->request_ms, publish_to, c);
    if (!c->feed || (o->router_url && !(c->router = strdup(o->router_url)))) {
        conns_fail(err, CITRUS_ENOMEM, "out of memory");
        handle_free(c);
        return NULL;
    }
    return c;
}

citrus_client *citrus_connect(const citrus_options *o, citrus_error *err)
{
    citrus_client *c = handle_new(o, err);
    if (!c)
        return NULL;
    if (feed_load(c->feed, err) < 0 ||
        (!o->no_watch && feed_start(c->feed) < 0 && conns_fail(err, CITRUS_ENOMEM, "no thread"))) {
        handle_free(c);
        return NULL;
    }
    return c;
}

void citrus_close(citrus_client *c)
{
    if (!c)
        return;
    handle_free(c); /* the feed's watch stops first */
}

int64_t citrus_revision(citrus_client *c)
{
    pthread_mutex_lock(&c->mu);
    int64_t r = c->cur->revision;
    pthread_mutex_unlock(&c->mu);
    return r;
}

int64_t citrus_ring_version(citrus_client *c)
{
    pthread_mutex_lock(&c->mu);
    int64_t r = c->cur->ring_version;
    pthread_mutex_unlock(&c->mu);
    return r;
}

/* Waits (mu held) until done(c, arg) or the deadline. */
static int wait_until(citrus_client *c, bool (*done)(const snap *s, const void *arg),
                      const void *arg, long timeout_ms)
{
    struct timespec ts = deadline_in_ms(timeout_ms);
    int rc = 0;
    pthread_mutex_lock(&c->mu);
    while (!done(c->cur, arg) && rc == 0)
        rc = pthread_cond_timedwait(&c->cv, &c->mu, &ts);
    bool ok = done(c->cur, arg);
    pthread_mutex_unlock(&c->mu);
    return ok ? 0 : CITRUS_ETIMEOUT;
}

static bool reached(const snap *s, const void *arg)
{
    return s->revision >= *(const int64_t *)arg;
}

int citrus_wait_revision(citrus_client *c, int64_t revision, long timeout_ms)
{
    return wait_until(c, reached, &revision, timeout_ms);
}

int citrus_refresh(citrus_client *c, citrus_error *err)
{
    return feed_load(c->feed, err);
}

/* ---- resolution ---- */

size_t handle_key_len(const char *key, citrus_error *err)
{
    size_t len = key ? strlen(key) : 0;
    if (len == 0 || len > HANDLE_KEY_MAX) {
        conns_fail(err, CITRUS_EINVAL, "key must be 1..%d bytes", HANDLE_KEY_MAX);
        return 0;
    }
    return len;
}

int citrus_resolve(citrus_client *c, const char *key, citrus_route **out, citrus_error *err)
{
    *out = NULL;
    size_t len = handle_key_len(key, err);
    if (len == 0)
        return CITRUS_EINVAL;
    citrus_route *r = malloc(sizeof(*r));
    if (!r) {
        conns_fail(err, CITRUS_ENOMEM, "out of memory");
        return CITRUS_ENOMEM;
    }
    r->s = handle_snap(c);
    const snap_pin *p = snap_pin_find(r->s, key);
    ring_hit hit;
    if (p) {
        r->shard_id = p->shard_id;
        r->token = p->token;
        r->source = CITRUS_SOURCE_DIRECTORY;
    } else if (ring_lookup(snap_ring_of(r->s), key, len, &hit) == 0) {
        r->shard_id = hit.shard_id;
        r->token = hit.token;
        r->source = CITRUS_SOURCE_RING;
    } else {
        citrus_route_free(r);
        conns_fail(err, CITRUS_EUNAVAILABLE, "no shard owns any token yet: add an active shard");
        return CITRUS_EUNAVAILABLE;
    }
    r->rec = snap_shard(r->s, r->shard_id);
    *out = r;
    return 0;
}

void citrus_route_free(citrus_route *r)
{
    if (!r)
        return;
    snap_unref(r->s);
    free(r);
}

const char *citrus_route_shard_id(const citrus_route *r)
{
    return r->shard_id;
}

citrus_source citrus_route_source(const citrus_route *r)
{
    return r->source;
}

uint64_t citrus_route_token(const citrus_route *r)
{
    return r->token;
}

int64_t citrus_route_ring_version(const citrus_route *r)
{
    return r->s->ring_version;
}

const char *citrus_route_dsn(const citrus_route *r)
{
    return r->rec ? r->rec->dsn : NULL;
}

const char *citrus_route_state(const citrus_route *r)
{
    return r->rec ? shard_state_name(r->rec->state) : NULL;
}

size_t citrus_route_replica_count(const citrus_route *r)
{
    return r->rec ? r->rec->nreplicas : 0;
}

const char *citrus_route_replica(const citrus_route *r, size_t i)
{
    return r->rec && i < r->rec->nreplicas ? r->rec->replicas[i] : NULL;
}

int citrus_shard_dsn(citrus_client *c, const char *key, citrus_consistency consistency,
                     char **dsn_out, citrus_error *err)
{
    *dsn_out = NULL;
    if (consistency != CITRUS_STRONG && consistency != CITRUS_EVENTUAL)
        return conns_fail(err, CITRUS_EINVAL, "consistency must be strong or eventual");
    citrus_route *r;
    int rc = citrus_resolve(c, key, &r, err);
    if (rc < 0)
        return rc;
    const char *dsn = citrus_route_dsn(r);
    size_t n = citrus_route_replica_count(r);
    if (consistency == CITRUS_EVENTUAL && n > 0)
        dsn = citrus_route_replica(
            r, atomic_fetch_add_explicit(&c->replica_rr, 1, memory_order_relaxed) % n);
    if (!dsn)
        rc = conns_fail(err, CITRUS_ENOTFOUND, "shard '%s' has no DSN yet", r->shard_id);
    else if (!(*dsn_out = strdup(dsn)))
        rc = conns_fail(err, CITRUS_ENOMEM, "out of memory");
    citrus_route_free(r);
    return rc;
}

/* ---- tenants ---- */

static bool has_pin(const snap *s, const void *key)
{
    return snap_pin_find(s, key) != NULL;
}

int citrus_register_tenant(citrus_client *c, const char *business_id, const char *location_id,
                           const char *business_type, char **key_out, citrus_error *err)
{
    citrus_error local;
    if (!err)
        err = &local;
    if (key_out)
        *key_out = NULL;
    if (!business_id || !location_id)
        return conns_fail(err, CITRUS_EINVAL, "business_id and location_id are required");
    json_t *body = json_pack("{s:s,s:s,s:s?}", "businessId", business_id, "locationId", location_id,
                             "businessType", business_type);
    if (!body)
        return conns_fail(err, CITRUS_ENOMEM, "out of memory");
    client_response resp;
    int rc = conns_catalog(c->conns, "POST", "/api/register", body, &resp, err);
    json_decref(body);
    json_t *j = rc == 0 ? conns_answer_json(&resp, err) : NULL;
    client_response_free(&resp);
    const char *key = json_string_value(json_object_get(j, "shardKey"));
    if (rc == 0 && !key)
        rc = j ? conns_fail(err, CITRUS_ECORRUPT, "unexpected answer: no shardKey") : err->code;
    /* Read-your-registration: the local copy gets the pin through the watch. */
    if (rc == 0 && feed_watching(c->feed) && wait_until(c, has_pin, key, c->request_ms) < 0)
        rc = conns_fail(err, CITRUS_ETIMEOUT,
                        "registered, but the pin did not reach the local copy in time");
    if (rc == 0 && key_out && !(*key_out = strdup(key)))
        rc = conns_fail(err, CITRUS_ENOMEM, "out of memory");
    json_decref(j);
    return rc;
}
