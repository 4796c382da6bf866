/* controller/session.c — lease keepalive, registration and candidacy on one
 * thread, woken early when the leader key changes. */
#include "controller/session.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"
#include "controller/election.h"
#include "obs/log.h"
#include "obs/metrics.h"

struct session {
    store *st;
    char node_id[64];
    char api_url[128];
    char leader_key[128];
    int64_t ttl_ms;
    bool campaign;
    const sysclock *clock;
    pthread_t th;
    bool threaded; /* th runs session_main */
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC */
    bool stopping;
    bool woken;
    /* guarded by mu */
    int64_t lease;
    int64_t alive_until_ms; /* last keepalive send + ttl (clock_mono_ms) */
    bool leader;
    int64_t token;
    bool ready; /* registered and campaigned at least once */
    /* session_run_once only */
    store_watch *watch;
};

static void set_leader(session *s, bool leader, int64_t token)
{
    pthread_mutex_lock(&s->mu);
    bool was = s->leader;
    s->leader = leader;
    s->token = leader ? token : 0;
    pthread_mutex_unlock(&s->mu);
    if (was != leader) {
        log_info("controller", leader ? "became controller leader" : "lost controller leadership",
                 json_pack("{s:s,s:I}", "node_id", s->node_id, "token", (json_int_t)token));
        metrics_gauge_set("citrus_controller_leader", "", leader ? 1 : 0);
    }
}

/* Wakes the thread when the leader key changes (e.g. the leader is gone). */
static void on_leader_event(void *ctx, const kv_event *ev, size_t n, int err)
{
    session *s = ctx;
    pthread_mutex_lock(&s->mu);
    s->woken = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static int register_node(session *s, int64_t lease)
{
    char key[192];
    snprintf(key, sizeof(key), SESSION_NODES_PREFIX "%s", s->node_id);
    json_t *v =
        json_pack("{s:s,s:s,s:s}", "id", s->node_id, "api", s->api_url, "version", CITRUS_VERSION);
    char *text = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    if (!text)
        return CITRUS_ENOMEM;
    int rc = store_put(s->st, key, (const unsigned char *)text, strlen(text), lease, -1, NULL, NULL,
                       NULL);
    free(text);
    return rc;
}

/* Makes sure there is a live lease; returns it, or 0. */
static int64_t keep_lease(session *s)
{
    pthread_mutex_lock(&s->mu);
    int64_t lease = s->lease;
    pthread_mutex_unlock(&s->mu);
    int64_t sent = clock_mono_ms(s->clock), ttl = 0;
    int rc = 0;
    if (lease) {
        rc = store_lease_keepalive(s->st, lease, &ttl);
        if (rc == CITRUS_ENOLEASE) {
            log_warn("controller", "session lease expired; starting a new one",
                     json_pack("{s:I}", "lease", (json_int_t)lease));
            lease = 0;
        }
    }
    if (!lease) {
        sent = clock_mono_ms(s->clock);
        rc = store_lease_grant(s->st, s->ttl_ms / 1000, &lease, &ttl);
        if (rc == 0 && (rc = register_node(s, lease)) < 0) {
            log_warn("controller", "cannot register this node",
                     json_pack("{s:s}", "error", citrus_strerror(rc)));
            store_lease_revoke(s->st, lease);
            lease = 0;
        }
    }
    pthread_mutex_lock(&s->mu);
    s->lease = lease;
    if (rc == 0)
        s->alive_until_ms = sent + s->ttl_ms;
    pthread_mutex_unlock(&s->mu);
    return rc == 0 ? lease : 0;
}

static void campaign_step(session *s, int64_t lease)
{
    if (!s->watch) {
        int64_t compact;
        if (store_watch_open(s->st, s->leader_key, 0, on_leader_event, s, &s->watch, &compact) < 0)
            s->watch = NULL; /* retried next round; the tick still polls */
    }
    bool won = false;
    election_view view;
    int rc = lease ? election_campaign(s->st, s->leader_key, s->node_id, lease, &won, &view)
                   : CITRUS_EUNAVAILABLE;
    if (rc == 0 && !won && view.held && strcmp(view.leader, s->node_id) == 0 &&
        view.lease != lease) {
        /* Held under this node's id by another lease: this node's previous
         * incarnation (node ids are unique). Release it instead of waiting
         * for its TTL, then campaign again. */
        log_info("controller", "releasing the leader key of this node's previous run",
                 json_pack("{s:I}", "lease", (json_int_t)view.lease));
        store_lease_revoke(s->st, view.lease);
        rc = election_campaign(s->st, s->leader_key, s->node_id, lease, &won, &view);
    }
    set_leader(s, rc == 0 && won, rc == 0 ? view.token : 0);
}

/* Paces the thread on the real monotonic clock (it decides nothing). */
static void wait_tick(session *s)
{
    struct timespec ts = clock_cond_deadline(s->ttl_ms / 3);
    pthread_mutex_lock(&s->mu);
    while (!s->stopping && !s->woken && pthread_cond_timedwait(&s->cv, &s->mu, &ts) == 0) {
    }
    s->woken = false;
    pthread_mutex_unlock(&s->mu);
}

void session_run_once(session *s)
{
    int64_t lease = keep_lease(s);
    if (s->campaign)
        campaign_step(s, lease);
    if (lease) {
        pthread_mutex_lock(&s->mu);
        s->ready = true;
        pthread_mutex_unlock(&s->mu);
    }
}

static void *session_main(void *arg)
{
    session *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        bool stop = s->stopping;
        pthread_mutex_unlock(&s->mu);
        if (stop)
            break;
        session_run_once(s);
        wait_tick(s);
    }
    return NULL;
}

int session_new(const session_options *o, session **out)
{
    session *s = calloc(1, sizeof(*s));
    if (!s)
        return CITRUS_ENOMEM;
    s->st = o->st;
    snprintf(s->node_id, sizeof(s->node_id), "%s", o->node_id);
    snprintf(s->api_url, sizeof(s->api_url), "%s", o->api_url ? o->api_url : "");
    snprintf(s->leader_key, sizeof(s->leader_key), "%s",
             o->leader_key ? o->leader_key : ELECTION_KEY);
    s->ttl_ms = (o->ttl_s > 0 ? o->ttl_s : 5) * 1000;
    s->campaign = o->campaign;
    s->clock = o->clock;
    if (clock_cond_init(&s->cv) != 0) {
        free(s);
        return CITRUS_ENOMEM;
    }
    pthread_mutex_init(&s->mu, NULL);
    metrics_describe("citrus_controller_leader", METRIC_GAUGE,
                     "1 while this node holds the controller lease.");
    metrics_gauge_set("citrus_controller_leader", "", 0);
    *out = s;
    return 0;
}

int session_start(const session_options *o, session **out)
{
    session *s;
    int rc = session_new(o, &s);
    if (rc < 0)
        return rc;
    if (pthread_create(&s->th, NULL, session_main, s) != 0) {
        session_stop(s);
        return CITRUS_ENOMEM;
    }
    s->threaded = true;
    *out = s;
    return 0;
}

void session_stop(session *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (s->threaded)
        pthread_join(s->th, NULL);
    store_watch_close(s->st, s->watch);
    if (s->lease)
        store_lease_revoke(s->st, s->lease); /* best effort: expiry does it otherwise */
    set_leader(s, false, 0);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

bool session_is_leader(session *s, int64_t *token)
{
    pthread_mutex_lock(&s->mu);
    bool leader = s->leader && clock_mono_ms(s->clock) < s->alive_until_ms;
    if (token)
        *token = leader ? s->token : 0;
    pthread_mutex_unlock(&s->mu);
    return leader;
}

bool session_ready(session *s)
{
    pthread_mutex_lock(&s->mu);
    bool ready = s->ready && clock_mono_ms(s->clock) < s->alive_until_ms;
    pthread_mutex_unlock(&s->mu);
    return ready;
}

int64_t session_lease(session *s)
{
    pthread_mutex_lock(&s->mu);
    int64_t lease = s->lease;
    pthread_mutex_unlock(&s->mu);
    return lease;
}
