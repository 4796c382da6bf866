/* tests/unit/test_store_etcd.c — the etcd catalog store: the catalog
 * conformance suite on store_etcd against a real etcd, then what only the
 * etcd store has: endpoint failover, catch-up watches, one shared watch
 * stream for many watchers, compaction found by probing, a watch stream
 * surviving an etcd restart, outcome-unknown timeouts, close with writes in
 * flight.
 *
 * etcd (/usr/bin/etcd) runs on loopback with ports found by binding port 0,
 * in a mkdtemp directory (under $TMPDIR, else /dev/shm, else /tmp), and is
 * stopped by its PID: SIGTERM, then SIGKILL, then waitpid. One etcd serves
 * the whole binary; the conformance factory empties its keyspace and
 * revokes its leases at each open. Tests that stop or restart etcd restart
 * the same member on the same data directory and ports. No randomness. */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "catalog_conformance.h"

#include "catalog/etcd_client.h"
#include "catalog/store_etcd.h"
#include "citrus/errors.h"

#define WAIT_MS 30000
#define ETCD_BIN "/usr/bin/etcd"

typedef struct etcd_proc {
    pid_t pid;
    int client_port, peer_port;
    char name[16];
    char dir[PATH_MAX - 64];
    char url[64];
    char peer[64];
    char cluster[256]; /* --initial-cluster */
} etcd_proc;

static char tmpdir[PATH_MAX - 128];
static etcd_proc etcd;

/* ---- helpers ------------------------------------------------------------------ */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A loopback port nobody listens on right now, and not one this process
 * handed out before: the kernel may give the same ephemeral port to two
 * binds in a row once the first socket is closed (two members of one
 * cluster given one port: etcd refuses the "duplicate url"). */
static int free_port(void)
{
    static int given[256];
    static size_t ngiven;
    for (;;) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof(a);
        if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
            getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
            perror("free_port");
            exit(1);
        }
        close(fd);
        int port = ntohs(a.sin_port);
        bool seen = false;
        for (size_t i = 0; i < ngiven && !seen; i++)
            seen = given[i] == port;
        if (seen)
            continue;
        if (ngiven < sizeof(given) / sizeof(given[0]))
            given[ngiven++] = port;
        return port;
    }
}

static size_t discard(char *p, size_t size, size_t n, void *ctx)
{
    return size * n;
}

/* POSTs body to url+path; the HTTP status, or 0 when nothing answered. */
static long http_post(const char *url, const char *path, const char *body)
{
    char full[256];
    snprintf(full, sizeof(full), "%s%s", url, path);
    CURL *c = curl_easy_init();
    long status = 0;
    curl_easy_setopt(c, CURLOPT_URL, full);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 2000L);
    curl_easy_setopt(c, CURLOPT_PROXY, "");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    return status;
}

/* A member named name; a single-member cluster until cluster is changed. */
static void etcd_init(etcd_proc *e, const char *name)
{
    memset(e, 0, sizeof(*e));
    e->client_port = free_port();
    e->peer_port = free_port();
    snprintf(e->name, sizeof(e->name), "%s", name);
    snprintf(e->dir, sizeof(e->dir), "%s/%s", tmpdir, name);
    snprintf(e->url, sizeof(e->url), "http://127.0.0.1:%d", e->client_port);
    snprintf(e->peer, sizeof(e->peer), "http://127.0.0.1:%d", e->peer_port);
    snprintf(e->cluster, sizeof(e->cluster), "%s=%s", name, e->peer);
}

/* Forks etcd for e; does not wait. */
static void etcd_spawn(etcd_proc *e)
{
    char log[PATH_MAX];
    snprintf(log, sizeof(log), "%s.log", e->dir);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(1);
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the test */
        FILE *f = fopen(log, "a");
        if (f) {
            dup2(fileno(f), 1);
            dup2(fileno(f), 2);
        }
        execl(ETCD_BIN, ETCD_BIN, "--name", e->name, "--data-dir", e->dir, "--listen-client-urls",
              e->url, "--advertise-client-urls", e->url, "--listen-peer-urls", e->peer,
              "--initial-advertise-peer-urls", e->peer, "--initial-cluster", e->cluster,
              "--heartbeat-interval", "25", "--election-timeout", "250", "--log-level", "warn",
              (char *)NULL);
        _exit(127);
    }
    e->pid = pid;
}

/* Waits until e serves linearizable reads. */
static void etcd_wait_ready(etcd_proc *e)
{
    int64_t until = mono_ms() + WAIT_MS;
    while (http_post(e->url, "/v3/kv/range", "{\"key\":\"AA==\"}") != 200) {
        int status;
        if (waitpid(e->pid, &status, WNOHANG) == e->pid) {
            fprintf(stderr, "etcd %s exited during start; see %s.log\n", e->name, e->dir);
            exit(1);
        }
        if (mono_ms() > until) {
            fprintf(stderr, "etcd %s did not start in time; see %s.log\n", e->name, e->dir);
            exit(1);
        }
        sleep_ms(20);
    }
}

/* Starts the member (again, on the same directory and ports) and waits
 * until it serves reads. */
static void etcd_start(etcd_proc *e)
{
    etcd_spawn(e);
    etcd_wait_ready(e);
}

/* SIGSTOP, then waits until every thread of e is stopped: a request that
 * reaches it afterwards gets no answer until SIGCONT. */
static void etcd_pause(etcd_proc *e)
{
    kill(e->pid, SIGSTOP);
    char dir[64];
    snprintf(dir, sizeof(dir), "/proc/%d/task", (int)e->pid);
    int64_t until = mono_ms() + WAIT_MS;
    for (bool all = false; !all && mono_ms() < until;) {
        all = true;
        DIR *d = opendir(dir);
        for (struct dirent *t; d && (t = readdir(d));) {
            if (t->d_name[0] == '.')
                continue;
            char path[352], buf[512] = "";
            snprintf(path, sizeof(path), "%s/%s/stat", dir, t->d_name);
            FILE *f = fopen(path, "r");
            if (f && fgets(buf, sizeof(buf), f)) {
                const char *state = strrchr(buf, ')'); /* "pid (comm) S ..." */
                if (state && state[1] == ' ' && state[2] != 'T' && state[2] != 't')
                    all = false;
            }
            if (f)
                fclose(f);
        }
        if (d)
            closedir(d);
        if (!all)
            sleep_ms(1);
    }
}

static void etcd_stop(etcd_proc *e)
{
    if (e->pid <= 0)
        return;
    kill(e->pid, SIGCONT); /* in case a test stopped it */
    kill(e->pid, SIGTERM);
    int status;
    int64_t until = mono_ms() + 5000;
    while (waitpid(e->pid, &status, WNOHANG) == 0) {
        if (mono_ms() > until) {
            kill(e->pid, SIGKILL);
            waitpid(e->pid, &status, 0);
            break;
        }
        sleep_ms(10);
    }
    e->pid = 0;
}

static store *open_store(const char *const *eps, size_t n, int64_t request_timeout_ms)
{
    store_etcd_options o = {.endpoints = eps,
                            .nendpoints = n,
                            .connect_timeout_ms = 500,
                            .request_timeout_ms = request_timeout_ms};
    store *s = NULL;
    errdetail err;
    int rc = store_etcd_open(&o, &s, &err);
    if (rc)
        print_message("store_etcd_open: %s (%d)\n", err.message, rc);
    assert_int_equal(rc, 0);
    return s;
}

static store *must_open(void)
{
    const char *eps[] = {etcd.url};
    return open_store(eps, 1, 10000);
}

static store *must_open_batching(void)
{
    const char *eps[] = {etcd.url};
    store_etcd_options o = {
        .endpoints = eps, .nendpoints = 1, .request_timeout_ms = 10000, .batch_puts = true};
    store *s = NULL;
    errdetail err;
    assert_int_equal(store_etcd_open(&o, &s, &err), 0);
    return s;
}

static int64_t rev_now(store *s)
{
    store_status st;
    assert_int_equal(store_status_get(s, &st), 0);
    return st.revision;
}

static int64_t put(store *s, const char *k, const char *v)
{
    int64_t rev = 0;
    assert_int_equal(store_put(s, k, (const unsigned char *)v, strlen(v), 0, -1, NULL, &rev, NULL),
                     0);
    return rev;
}

static size_t count_key(store *s, const char *k)
{
    kv_range_req q = {.key = k, .keys_only = true};
    kv_range_res r;
    assert_int_equal(store_range(s, &q, &r), 0);
    size_t n = r.count;
    kv_range_res_free(&r);
    return n;
}

/* Deletes every key and revokes every lease. */
static void clear_all(store *s)
{
    assert_int_equal(store_delete(s, "", true, -1, NULL, NULL, NULL), 0);
    kv_snapshot snap;
    assert_int_equal(store_snapshot(s, &snap), 0);
    for (size_t i = 0; i < snap.nleases; i++) {
        int rc = store_lease_revoke(s, snap.leases[i].id);
        assert_true(rc == 0 || rc == CITRUS_ENOLEASE);
    }
    kv_snapshot_free(&snap);
}

/* ---- a watch recorder ---------------------------------------------------------------- */

typedef struct rec {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int64_t *revs; /* revision of each event, in delivery order */
    char **keys;
    size_t n, cap, calls, errs;
    int err;
    int64_t last_rev;
    bool broken; /* revisions out of order, mixed in a call, calls after an error */
    bool gate;   /* the first call blocks until released */
    bool entered, released;
} rec;

static void rec_init(rec *r, bool gate)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cond, NULL);
    r->gate = gate;
}

static void rec_free(rec *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->keys[i]);
    free(r->keys);
    free(r->revs);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cond);
}

static void rec_cb(void *ctx, const kv_event *ev, size_t n, int err)
{
    rec *r = ctx;
    pthread_mutex_lock(&r->mu);
    if (r->errs || (!err && n == 0))
        r->broken = true;
    if (err) {
        r->err = err;
        r->errs++;
    } else {
        if (ev[0].kv.mod_revision <= r->last_rev)
            r->broken = true;
        r->last_rev = ev[0].kv.mod_revision;
        r->calls++;
        for (size_t i = 0; i < n; i++) {
            if (ev[i].kv.mod_revision != r->last_rev)
                r->broken = true;
            if (r->n == r->cap) {
                r->cap = r->cap ? r->cap * 2 : 64;
                r->revs = realloc(r->revs, r->cap * sizeof(*r->revs));
                r->keys = realloc(r->keys, r->cap * sizeof(*r->keys));
            }
            r->revs[r->n] = ev[i].kv.mod_revision;
            r->keys[r->n++] = strdup(ev[i].kv.key);
        }
    }
    r->entered = true;
    pthread_cond_broadcast(&r->cond);
    while (r->gate && !r->released)
        pthread_cond_wait(&r->cond, &r->mu);
    pthread_mutex_unlock(&r->mu);
}

static void rec_release(rec *r)
{
    pthread_mutex_lock(&r->mu);
    r->released = true;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->mu);
}

/* Polls until n events (or errs errors) arrived; true if they did. */
static bool rec_until(rec *r, size_t n, size_t errs)
{
    int64_t until = mono_ms() + WAIT_MS;
    for (;;) {
        pthread_mutex_lock(&r->mu);
        bool ok = r->n >= n && r->errs >= errs;
        pthread_mutex_unlock(&r->mu);
        if (ok || mono_ms() > until)
            return ok;
        sleep_ms(2);
    }
}

static store_watch *watch_from(store *s, const char *prefix, int64_t from, rec *r)
{
    store_watch *w = NULL;
    int64_t compact = 0;
    assert_int_equal(store_watch_open(s, prefix, from, rec_cb, r, &w, &compact), 0);
    assert_non_null(w);
    return w;
}

/* Every event is one revision after the previous one, starting at first. */
static void assert_contiguous(rec *r, int64_t first, size_t n)
{
    assert_false(r->broken);
    assert_int_equal(r->n, n);
    for (size_t i = 0; i < n; i++)
        if (r->revs[i] != first + (int64_t)i)
            fail_msg("event %zu at revision %lld, want %lld", i, (long long)r->revs[i],
                     (long long)(first + (int64_t)i));
}

static bool wait_streams(store *s, size_t n)
{
    int64_t until = mono_ms() + WAIT_MS;
    while (store_etcd_watch_streams(s) != n && mono_ms() < until)
        sleep_ms(5);
    return store_etcd_watch_streams(s) == n;
}

/* ---- the conformance factory ------------------------------------------------------------ */

static int conf_open(void *ctx, store **out)
{
    *out = must_open();
    clear_all(*out);
    return 0;
}

static void conf_close(void *ctx, store *s)
{
    store_close(s);
}

static int conf_compact(void *ctx, store **s, int64_t rev)
{
    return store_etcd_compact(*s, rev);
}

/* ---- etcd-only tests ---------------------------------------------------------------------- */

static void test_open_errors(void **state)
{
    char dead[64];
    errdetail err = {0};
    snprintf(dead, sizeof(dead), "http://127.0.0.1:%d", free_port());
    const char *eps[] = {dead};
    store_etcd_options o = {.endpoints = eps, .nendpoints = 1, .connect_timeout_ms = 500};
    store *s = (store *)&s;
    int64_t t0 = mono_ms();
    assert_int_equal(store_etcd_open(&o, &s, &err), CITRUS_EUNAVAILABLE);
    assert_int_equal(err.code, CITRUS_EUNAVAILABLE);
    assert_null(s);
    assert_true(strlen(err.message) > 0);
    print_message("expected error after %lld ms: %s\n", (long long)(mono_ms() - t0), err.message);
    const char *bad[] = {"127.0.0.1:2379"};
    o.endpoints = bad;
    assert_int_equal(store_etcd_open(&o, &s, &err), CITRUS_EINVAL);
    assert_int_equal(err.code, CITRUS_EINVAL);
    print_message("expected error: %s\n", err.message);
    o.nendpoints = 0;
    assert_int_equal(store_etcd_open(&o, &s, &err), CITRUS_EINVAL);
    assert_int_equal(err.code, CITRUS_EINVAL);
    assert_int_equal(store_etcd_compact(NULL, 1), CITRUS_EINVAL);
    assert_null(store_etcd_endpoint(NULL));
}

/* The first endpoint is dead: calls go on to the next one, which is then
 * remembered; a status says etcd. */
static void test_failover(void **state)
{
    char dead[64];
    snprintf(dead, sizeof(dead), "http://127.0.0.1:%d", free_port());
    const char *eps[] = {dead, etcd.url};
    store *s = open_store(eps, 2, 10000);
    assert_string_equal(store_etcd_endpoint(s), etcd.url);
    int64_t r = put(s, "fo/a", "1");
    assert_int_equal(count_key(s, "fo/a"), 1);
    store_status st;
    assert_int_equal(store_status_get(s, &st), 0);
    assert_int_equal(st.revision, r);
    assert_true(st.writable);
    assert_string_equal(st.backend, "etcd");
    assert_string_equal(st.leader, etcd.name);
    assert_int_equal(st.members, 1);
    assert_int_equal(st.healthy_members, 1);
    assert_true(st.quorum);
    assert_string_equal(store_etcd_endpoint(s), etcd.url);
    rec w;
    rec_init(&w, false);
    store_watch *wh = watch_from(s, "fo/", r, &w);
    assert_true(rec_until(&w, 1, 0));
    store_watch_close(s, wh);
    rec_free(&w);
    store_close(s);
}

/* A watch from before the store opened catches up on a stream of its own,
 * then moves to the shared stream; its progress follows the store. */
static void test_catchup_watch(void **state)
{
    store *a = must_open();
    int64_t r0 = rev_now(a);
    for (int i = 0; i < 20; i++) {
        char k[32];
        snprintf(k, sizeof(k), i % 2 ? "cu/%02d" : "other/%02d", i);
        put(a, k, "v");
    }
    store *b = must_open();
    assert_true(wait_streams(b, 1));
    rec r;
    rec_init(&r, false);
    store_watch *w = watch_from(b, "cu/", r0 + 1, &r);
    assert_true(rec_until(&r, 10, 0));
    for (size_t i = 0; i < 10; i++)
        assert_int_equal(r.revs[i], r0 + 2 + 2 * (int64_t)i);
    int64_t r1 = put(a, "other/x", "v"); /* nothing for the watch: progress still moves */
    int64_t until = mono_ms() + WAIT_MS;
    while (store_watch_progress(b, w) < r1 && mono_ms() < until)
        sleep_ms(2);
    assert_int_equal(store_watch_progress(b, w), r1);
    int64_t r2 = put(a, "cu/live", "v");
    assert_true(rec_until(&r, 11, 0));
    assert_int_equal(r.revs[10], r2);
    assert_true(wait_streams(b, 1)); /* the catch-up stream is gone */
    store_watch_close(b, w);
    assert_false(r.broken);
    assert_int_equal(r.n, 11);
    rec_free(&r);
    store_close(b);
    store_close(a);
}

/* Many watchers share one etcd stream. */
static void test_many_watchers_one_stream(void **state)
{
    enum { NW = 1000, NPUT = 10 };
    store *s = must_open();
    struct slot {
        rec r;
        store_watch *w;
    } *slot = calloc(NW, sizeof(struct slot));
    assert_non_null(slot);
    for (int i = 0; i < NW; i++) {
        rec_init(&slot[i].r, false);
        slot[i].w = watch_from(s, i % 2 ? "mwa/" : "mwb/", 0, &slot[i].r);
    }
    int64_t t0 = mono_ms();
    for (int i = 0; i < NPUT; i++)
        put(s, i % 2 ? "mwa/k" : "mwb/k", "v");
    for (int i = 0; i < NW; i++)
        assert_true(rec_until(&slot[i].r, NPUT / 2, 0));
    print_message("%d watchers x %d writes delivered in %lld ms over %zu etcd stream(s)\n", NW,
                  NPUT, (long long)(mono_ms() - t0), store_etcd_watch_streams(s));
    assert_int_equal(store_etcd_watch_streams(s), 1);
    for (int i = 0; i < NW; i++) {
        store_watch_close(s, slot[i].w);
        assert_int_equal(slot[i].r.n, NPUT / 2);
        assert_false(slot[i].r.broken);
        rec_free(&slot[i].r);
    }
    free(slot);
    store_close(s);
}

/* A watcher that falls out of a tiny ring catches up on its own stream and
 * misses nothing. */
static void test_ring_overflow(void **state)
{
    const char *eps[] = {etcd.url};
    store_etcd_options o = {.endpoints = eps, .nendpoints = 1, .watch_ring_revs = 8};
    store *s = NULL;
    errdetail err;
    assert_int_equal(store_etcd_open(&o, &s, &err), 0);
    rec slow;
    rec_init(&slow, true);
    int64_t r0 = rev_now(s);
    store_watch *w = watch_from(s, "ro/", r0 + 1, &slow);
    put(s, "ro/k", "0");
    assert_true(rec_until(&slow, 1, 0)); /* now blocked in its first callback */
    for (int i = 1; i < 100; i++)
        put(s, "ro/k", "v");
    rec_release(&slow);
    assert_true(rec_until(&slow, 100, 0));
    assert_true(wait_streams(s, 1));
    store_watch_close(s, w);
    assert_contiguous(&slow, r0 + 1, 100);
    rec_free(&slow);
    store_close(s);
}

/* Compaction done behind the store's back is found by probing: status,
 * and watches from before it, refused with the exact compact revision. */
static void test_compaction_found(void **state)
{
    store *s = must_open();
    int64_t r0 = rev_now(s);
    for (int i = 0; i < 10; i++)
        put(s, "cf/k", "v");
    store *late = must_open(); /* its ring starts after r0 + 10 */
    int64_t at = r0 + 7;
    char body[64];
    snprintf(body, sizeof(body), "{\"revision\":\"%lld\"}", (long long)at);
    assert_int_equal(http_post(etcd.url, "/v3/kv/compaction", body), 200);

    rec r;
    rec_init(&r, false);
    store_watch *w = NULL;
    int64_t compact = 0;
    /* before late's ring, and not known compacted: found by asking etcd */
    assert_int_equal(store_watch_open(late, "cf/", at - 1, rec_cb, &r, &w, &compact),
                     CITRUS_ECOMPACTED);
    assert_null(w);
    assert_int_equal(compact, at);
    w = watch_from(late, "cf/", at, &r);
    assert_true(rec_until(&r, 4, 0));
    store_watch_close(late, w);
    assert_contiguous(&r, at, 4);
    rec_free(&r);

    store_status st;
    assert_int_equal(store_status_get(s, &st), 0); /* a binary search over reads */
    assert_int_equal(st.compact_revision, at);
    assert_int_equal(st.revision, r0 + 10);
    assert_int_equal(store_watch_open(s, "cf/", at - 1, rec_cb, &r, &w, &compact),
                     CITRUS_ECOMPACTED);
    assert_int_equal(compact, at);
    kv_snapshot snap;
    assert_int_equal(store_snapshot(s, &snap), 0);
    assert_int_equal(snap.compact_revision, at);
    kv_snapshot_free(&snap);
    store_close(late);
    store_close(s);
}

/* "value == ''" holds for an absent key in store.h but never in etcd: the
 * store guards such txns; racing creators still see exactly one winner. */
#define VG_THREADS 8
typedef struct vg_arg {
    store *s;
    int id;
    atomic_int *wins;
    int failures;
} vg_arg;

static void *vg_racer(void *p)
{
    vg_arg *a = p;
    char v[16];
    snprintf(v, sizeof(v), "%d", a->id);
    kv_compare c = {.key = "vg/k", .target = KV_CMP_VALUE, .op = KV_CMP_EQ};
    kv_op op = {.type = KV_OP_PUT,
                .key = "vg/k",
                .value = (const unsigned char *)v,
                .value_len = strlen(v)};
    kv_txn t = {.compares = &c, .ncompares = 1, .success = &op, .nsuccess = 1};
    kv_txn_res res;
    if (store_txn(a->s, &t, &res))
        a->failures++;
    else if (res.succeeded)
        atomic_fetch_add(a->wins, 1);
    kv_txn_res_free(&res);
    return NULL;
}

static void test_value_compare_absent(void **state)
{
    store *s = must_open();
    atomic_int wins;
    atomic_init(&wins, 0);
    pthread_t th[VG_THREADS];
    vg_arg args[VG_THREADS];
    for (int i = 0; i < VG_THREADS; i++) {
        args[i] = (vg_arg){.s = s, .id = i + 1, .wins = &wins};
        assert_int_equal(pthread_create(&th[i], NULL, vg_racer, &args[i]), 0);
    }
    for (int i = 0; i < VG_THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].failures, 0);
    }
    assert_int_equal(atomic_load(&wins), 1);
    kv_range_res r;
    kv_range_req q = {.key = "vg/k"};
    assert_int_equal(store_range(s, &q, &r), 0);
    assert_int_equal(r.count, 1);
    assert_int_equal(r.items[0].version, 1);
    kv_range_res_free(&r);
    store_close(s);
}

/* etcd goes away and comes back on the same data: writes meanwhile fail
 * with CITRUS_EUNAVAILABLE (nothing was sent), and watches resume where
 * they were, without a gap or a repeat. */
static void test_restart_resumes_watch(void **state)
{
    store *s = must_open();
    int64_t r0 = rev_now(s);
    rec live, past;
    rec_init(&live, false);
    rec_init(&past, false);
    store_watch *wl = watch_from(s, "rs/", 0, &live);
    for (int i = 0; i < 10; i++)
        put(s, "rs/k", "a");
    assert_true(rec_until(&live, 10, 0));

    etcd_stop(&etcd);
    int64_t t0 = mono_ms();
    int rc = store_put(s, "rs/k", (const unsigned char *)"x", 1, 0, -1, NULL, NULL, NULL);
    assert_int_equal(rc, CITRUS_EUNAVAILABLE);
    print_message("write with etcd down: %s after %lld ms\n", citrus_err_code(rc),
                  (long long)(mono_ms() - t0));
    kv_range_req q = {.key = "rs/k"};
    kv_range_res r;
    assert_int_equal(store_range(s, &q, &r), CITRUS_EUNAVAILABLE);
    store_status st; /* not current, but filled in */
    assert_int_equal(store_status_get(s, &st), CITRUS_EUNAVAILABLE);
    assert_false(st.writable);
    assert_false(st.quorum);
    assert_int_equal(st.revision, r0 + 10);
    assert_string_equal(st.backend, "etcd");
    int64_t until = mono_ms() + WAIT_MS; /* the member view follows within a refresh */
    while ((store_status_get(s, &st), st.healthy_members || st.leader[0]) && mono_ms() < until)
        sleep_ms(20);
    assert_int_equal(st.healthy_members, 0);
    assert_string_equal(st.leader, "");
    assert_int_equal(st.members, 1);

    etcd_start(&etcd);
    until = mono_ms() + WAIT_MS;
    while ((store_status_get(s, &st), !st.writable || !st.leader[0]) && mono_ms() < until)
        sleep_ms(20);
    assert_true(st.writable);
    assert_true(st.quorum);
    assert_string_equal(st.leader, etcd.name);
    assert_int_equal(st.healthy_members, 1);
    store_watch *wp = watch_from(s, "rs/", r0 + 1, &past);
    for (int i = 0; i < 10; i++)
        put(s, "rs/k", "b");
    assert_int_equal(rev_now(s), r0 + 20);
    assert_true(rec_until(&live, 20, 0));
    assert_true(rec_until(&past, 20, 0));
    store_watch_close(s, wl);
    store_watch_close(s, wp);
    assert_contiguous(&live, r0 + 1, 20);
    assert_contiguous(&past, r0 + 1, 20);
    rec_free(&live);
    rec_free(&past);
    store_close(s);
}

typedef struct async_one {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int calls, rc;
} async_one;

static void async_one_cb(void *ctx, int rc)
{
    async_one *a = ctx;
    pthread_mutex_lock(&a->mu);
    a->calls++;
    a->rc = rc;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
}

/* A write whose answer does not come in time has an unknown outcome:
 * CITRUS_ETIMEOUT, never success or a definite failure. A stopped etcd
 * accepts the connection and the request; it just does not answer. */
static void test_write_timeout(void **state)
{
    const char *eps[] = {etcd.url};
    store *s = open_store(eps, 1, 300);
    int64_t r0 = put(s, "wt/before", "1");
    rec w;
    rec_init(&w, false);
    store_watch *wh = watch_from(s, "wt/", r0, &w);
    assert_true(rec_until(&w, 1, 0));

    etcd_pause(&etcd);
    int64_t t0 = mono_ms();
    int rc = store_put(s, "wt/k", (const unsigned char *)"x", 1, 0, -1, NULL, NULL, NULL);
    print_message("write to a stopped etcd: %s after %lld ms\n", citrus_err_code(rc),
                  (long long)(mono_ms() - t0));
    assert_int_equal(rc, CITRUS_ETIMEOUT);
    async_one a = {.calls = 0};
    pthread_mutex_init(&a.mu, NULL);
    pthread_cond_init(&a.cv, NULL);
    kv_op op = {
        .type = KV_OP_PUT, .key = "wt/async", .value = (const unsigned char *)"y", .value_len = 1};
    kv_txn t = {.success = &op, .nsuccess = 1};
    kv_txn_res res;
    store_txn_async(s, &t, &res, async_one_cb, &a);
    pthread_mutex_lock(&a.mu);
    while (a.calls == 0)
        pthread_cond_wait(&a.cv, &a.mu);
    pthread_mutex_unlock(&a.mu);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.rc, CITRUS_ETIMEOUT);
    kv_range_req q = {.key = "wt/k"};
    kv_range_res r;
    assert_int_equal(store_range(s, &q, &r), CITRUS_EUNAVAILABLE);
    store_status st;
    assert_int_equal(store_status_get(s, &st), CITRUS_EUNAVAILABLE);
    assert_false(st.writable);
    kill(etcd.pid, SIGCONT);

    int64_t until = mono_ms() + WAIT_MS;
    while ((store_status_get(s, &st), !st.writable) && mono_ms() < until)
        sleep_ms(20);
    assert_true(st.writable);
    /* Each write was applied or not; the watch tells which, with no gap. */
    int64_t r1 = put(s, "wt/after", "2");
    assert_true(r1 - r0 - 1 <= 2);
    assert_true(rec_until(&w, (size_t)(r1 - r0 + 1), 0));
    store_watch_close(s, wh);
    assert_false(w.broken);
    size_t timed_out = 0;
    for (size_t i = 0; i < w.n; i++) {
        assert_int_equal(w.revs[i], r0 + (int64_t)i);
        timed_out += strcmp(w.keys[i], "wt/k") == 0 || strcmp(w.keys[i], "wt/async") == 0;
    }
    assert_string_equal(w.keys[r1 - r0], "wt/after");
    assert_true(timed_out <= 2);
    print_message("%zu of the 2 timed-out writes were applied after SIGCONT\n", timed_out);
    rec_free(&w);
    pthread_mutex_destroy(&a.mu);
    pthread_cond_destroy(&a.cv);
    store_close(s);
}

/* Closing the store lets every write in flight finish (its callback runs
 * once, with its real outcome), and gives open watches a final
 * CITRUS_ECLOSED. */
#define CF_N 32
static void test_close_in_flight(void **state)
{
    store *s = must_open();
    rec w;
    rec_init(&w, false);
    store_watch *wh = watch_from(s, "cif/", 0, &w);
    (void)wh; /* freed by store_close */
    static async_one done[CF_N];
    static char keys[CF_N][16];
    static kv_op ops[CF_N];
    static kv_txn txns[CF_N];
    static kv_txn_res res[CF_N];
    for (int i = 0; i < CF_N; i++) {
        done[i] = (async_one){.calls = 0};
        pthread_mutex_init(&done[i].mu, NULL);
        pthread_cond_init(&done[i].cv, NULL);
        snprintf(keys[i], sizeof(keys[i]), "cif/%02d", i);
        ops[i] = (kv_op){
            .type = KV_OP_PUT, .key = keys[i], .value = (const unsigned char *)"v", .value_len = 1};
        txns[i] = (kv_txn){.success = &ops[i], .nsuccess = 1};
        store_txn_async(s, &txns[i], &res[i], async_one_cb, &done[i]);
    }
    store_close(s);
    int ok = 0;
    for (int i = 0; i < CF_N; i++) {
        assert_int_equal(done[i].calls, 1);
        assert_int_equal(done[i].rc, 0);
        assert_true(res[i].succeeded);
        ok++;
        kv_txn_res_free(&res[i]);
        pthread_mutex_destroy(&done[i].mu);
        pthread_cond_destroy(&done[i].cv);
    }
    assert_int_equal(ok, CF_N);
    assert_int_equal(w.errs, 1);
    assert_int_equal(w.err, CITRUS_ECLOSED);
    rec_free(&w);
}

/* With batch_puts, a burst of blind puts goes to etcd in batches (several
 * puts share a revision), and each put still gets its own answer: a key
 * written many times in the burst takes one write per revision, each
 * answered with its own version; a put on a revoked lease fails alone while
 * the puts batched with it succeed (they are sent again, each alone).
 * Closing the store right after a burst answers every put with its real
 * outcome: queued puts are sent before the client closes. */
#define PB_N 200
#define PB_DUP_EVERY 20
#define PB_BAD 101
static async_one pb_done[PB_N];
static char pb_keys[PB_N][16];
static char pb_vals[PB_N][8];
static kv_op pb_ops[PB_N];
static kv_txn pb_txns[PB_N];
static kv_txn_res pb_res[PB_N];

static void async_wait(async_one *a)
{
    pthread_mutex_lock(&a->mu);
    while (a->calls == 0)
        pthread_cond_wait(&a->cv, &a->mu);
    pthread_mutex_unlock(&a->mu);
}

static void pb_submit(store *s, int n)
{
    for (int i = 0; i < n; i++) {
        pb_done[i] = (async_one){.calls = 0};
        pthread_mutex_init(&pb_done[i].mu, NULL);
        pthread_cond_init(&pb_done[i].cv, NULL);
    }
    for (int i = 0; i < n; i++)
        store_txn_async(s, &pb_txns[i], &pb_res[i], async_one_cb, &pb_done[i]);
}

static void pb_release(int n)
{
    for (int i = 0; i < n; i++) {
        kv_txn_res_free(&pb_res[i]);
        pthread_mutex_destroy(&pb_done[i].mu);
        pthread_cond_destroy(&pb_done[i].cv);
    }
}

static void test_put_batches(void **state)
{
    store *s = must_open_batching();
    int64_t gone, ttl;
    assert_int_equal(store_lease_grant(s, 60, &gone, &ttl), 0);
    assert_int_equal(store_lease_revoke(s, gone), 0);
    int ndup = 0;
    for (int i = 0; i < PB_N; i++) {
        bool dup = i % PB_DUP_EVERY == 0;
        ndup += dup;
        snprintf(pb_keys[i], sizeof(pb_keys[i]), dup ? "pb/dup" : "pb/%03d", i);
        snprintf(pb_vals[i], sizeof(pb_vals[i]), "v%d", i);
        pb_ops[i] = (kv_op){.type = KV_OP_PUT,
                            .key = pb_keys[i],
                            .value = (const unsigned char *)pb_vals[i],
                            .value_len = strlen(pb_vals[i]),
                            .lease = i == PB_BAD ? gone : 0};
        pb_txns[i] = (kv_txn){.success = &pb_ops[i], .nsuccess = 1};
    }
    pb_submit(s, PB_N);
    int64_t last_dup_rev = 0;
    int64_t dup_rev[PB_N / PB_DUP_EVERY + 1] = {0}; /* by version */
    const char *last_dup_val = NULL;
    int shared = 0;
    for (int i = 0; i < PB_N; i++) {
        async_wait(&pb_done[i]);
        assert_int_equal(pb_done[i].calls, 1);
        if (i == PB_BAD) {
            assert_int_equal(pb_done[i].rc, CITRUS_ENOLEASE);
            continue;
        }
        if (pb_done[i].rc != 0)
            fail_msg("put %d: %s", i, citrus_err_code(pb_done[i].rc));
        assert_true(pb_res[i].succeeded);
        assert_int_equal(pb_res[i].count, 1);
        const kv_op_result *r = &pb_res[i].results[0];
        assert_int_equal(r->mod_revision, pb_res[i].revision);
        if (i % PB_DUP_EVERY == 0) { /* one revision and one version each */
            assert_in_range(r->version, 1, ndup);
            assert_int_equal(dup_rev[r->version], 0);
            dup_rev[r->version] = pb_res[i].revision;
            if (pb_res[i].revision > last_dup_rev) {
                last_dup_rev = pb_res[i].revision;
                last_dup_val = pb_vals[i];
            }
        } else {
            assert_int_equal(r->version, 1);
            assert_int_equal(r->create_revision, pb_res[i].revision);
        }
        for (int k = 0; k < i; k++)
            if (k != PB_BAD && pb_res[k].revision == pb_res[i].revision) {
                shared++;
                break;
            }
    }
    assert_true(shared > 0);        /* some puts went together */
    for (int v = 2; v <= ndup; v++) /* versions follow revisions */
        assert_true(dup_rev[v] > dup_rev[v - 1]);
    kv_range_res all;
    kv_range_req q = {.key = "pb/", .prefix = true};
    assert_int_equal(store_range(s, &q, &all), 0);
    assert_int_equal(all.count, PB_N - ndup - 1 + 1); /* the bad put is absent; dup once */
    for (size_t k = 0; k < all.count; k++) {
        if (strcmp(all.items[k].key, "pb/dup") == 0) {
            assert_int_equal(all.items[k].version, ndup);
            assert_int_equal(all.items[k].mod_revision, last_dup_rev);
            assert_int_equal(all.items[k].value_len, strlen(last_dup_val));
            assert_memory_equal(all.items[k].value, last_dup_val, strlen(last_dup_val));
        }
        assert_string_not_equal(all.items[k].key, "pb/101");
    }
    kv_range_res_free(&all);
    pb_release(PB_N);
    /* a burst, then close at once: every put answered, and applied */
    pb_ops[PB_BAD].lease = 0;
    int64_t r0 = rev_now(s);
    pb_submit(s, PB_N);
    store_close(s);
    int64_t top = 0;
    for (int i = 0; i < PB_N; i++) {
        assert_int_equal(pb_done[i].calls, 1);
        if (pb_done[i].rc != 0)
            fail_msg("put %d after close: %s", i, citrus_err_code(pb_done[i].rc));
        assert_true(pb_res[i].revision > r0);
        top = pb_res[i].revision > top ? pb_res[i].revision : top;
    }
    pb_release(PB_N);
    s = must_open();
    assert_int_equal(rev_now(s), top);
    store_close(s);
}

/* etcd's errors as the store reports them. */
static void test_error_mapping(void **state)
{
    static const struct {
        const char *msg;
        long code;
        etcd_call_kind kind;
        int rc;
    } cases[] = {
        {"etcdserver: requested lease not found", 5, ETCD_WRITE, CITRUS_ENOLEASE},
        {"etcdserver: duplicate key given in txn request", 3, ETCD_WRITE, CITRUS_EINVAL},
        {"etcdserver: mvcc: required revision has been compacted", 11, ETCD_READ,
         CITRUS_ECOMPACTED},
        {"etcdserver: mvcc: required revision is a future revision", 11, ETCD_READ, CITRUS_EINVAL},
        {"etcdserver: no leader", 14, ETCD_WRITE, CITRUS_EUNAVAILABLE},
        {"etcdserver: request timed out", 14, ETCD_WRITE, CITRUS_ETIMEOUT},
        {"etcdserver: request timed out", 14, ETCD_READ, CITRUS_EUNAVAILABLE},
        {"etcdserver: request timed out, possibly due to previous leader failure", 14, ETCD_WRITE,
         CITRUS_ETIMEOUT},
        {"context deadline exceeded", 2, ETCD_WRITE, CITRUS_ETIMEOUT},
        {"etcdserver: request is too large", 3, ETCD_WRITE, CITRUS_ETOOBIGVAL},
        {"etcdserver: too many operations in txn request", 3, ETCD_WRITE, CITRUS_ETOOMANY},
        {"etcdserver: mvcc: database space exceeded", 8, ETCD_WRITE, CITRUS_ENOSPACE},
        {"etcdserver: key is not provided", 3, ETCD_WRITE, CITRUS_EBADKEY},
        {"an error etcd may add later", 13, ETCD_WRITE, CITRUS_ETIMEOUT},
        {"an error etcd may add later", 13, ETCD_READ, CITRUS_EUNAVAILABLE},
        {"an invalid request etcd may add later", 3, ETCD_WRITE, CITRUS_EINVAL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (etcd_client_error(cases[i].msg, cases[i].code, cases[i].kind) != cases[i].rc)
            fail_msg(
                "\"%s\" (%s) mapped to %s", cases[i].msg,
                cases[i].kind == ETCD_WRITE ? "write" : "read",
                citrus_err_code(etcd_client_error(cases[i].msg, cases[i].code, cases[i].kind)));
}

/* etcd's own limits come back as the store's errors, applying nothing. */
static void test_etcd_limits(void **state)
{
    store *s = must_open();
    int64_t r0 = rev_now(s);
    enum { NOPS = 129 }; /* etcd's --max-txn-ops is 128 */
    static char keys[NOPS][16];
    static kv_op ops[NOPS];
    for (int i = 0; i < NOPS; i++) {
        snprintf(keys[i], sizeof(keys[i]), "lim/%03d", i);
        ops[i] = (kv_op){
            .type = KV_OP_PUT, .key = keys[i], .value = (const unsigned char *)"v", .value_len = 1};
    }
    kv_txn t = {.success = ops, .nsuccess = NOPS};
    kv_txn_res res;
    assert_int_equal(store_txn(s, &t, &res), CITRUS_ETOOMANY);
    size_t big = (size_t)2 * 1024 * 1024; /* etcd's --max-request-bytes is 1.5 MiB */
    unsigned char *v = calloc(1, big);
    assert_non_null(v);
    assert_int_equal(store_put(s, "lim/big", v, big, 0, -1, NULL, NULL, NULL), CITRUS_ETOOBIGVAL);
    free(v);
    assert_int_equal(rev_now(s), r0);
    store_close(s);
}

/* A member that lost its leader refuses at once (the hasleader metadata):
 * CITRUS_EUNAVAILABLE, not a timeout; status shows no quorum. */
static etcd_proc nl_members[2];

static int nl_stop(void **state)
{
    etcd_stop(&nl_members[0]);
    etcd_stop(&nl_members[1]);
    return 0;
}

static void test_no_leader(void **state)
{
    etcd_proc *m = nl_members;
    etcd_init(&m[0], "nl-a");
    etcd_init(&m[1], "nl-b");
    char cluster[sizeof(m[0].cluster)];
    snprintf(cluster, sizeof(cluster), "%.15s=%.63s,%.15s=%.63s", m[0].name, m[0].peer, m[1].name,
             m[1].peer);
    for (int i = 0; i < 2; i++) {
        snprintf(m[i].cluster, sizeof(m[i].cluster), "%s", cluster);
        etcd_spawn(&m[i]);
    }
    etcd_wait_ready(&m[0]);
    etcd_wait_ready(&m[1]);
    const char *eps[] = {m[0].url};
    store *s = open_store(eps, 1, 2000);
    put(s, "nl/a", "1");
    store_status st;
    assert_int_equal(store_status_get(s, &st), 0);
    assert_true(st.writable && st.quorum);
    assert_int_equal(st.members, 2);
    assert_int_equal(st.healthy_members, 2);
    assert_true(strcmp(st.leader, "nl-a") == 0 || strcmp(st.leader, "nl-b") == 0);

    etcd_stop(&m[1]); /* m[0] alone has no quorum: it has or keeps no leader */
    int64_t until = mono_ms() + WAIT_MS;
    while ((store_status_get(s, &st), st.writable || st.leader[0]) && mono_ms() < until)
        sleep_ms(20);
    assert_false(st.writable);
    assert_false(st.quorum);
    assert_int_equal(st.healthy_members, 1);
    int64_t t0 = mono_ms();
    int rc = store_put(s, "nl/b", (const unsigned char *)"2", 1, 0, -1, NULL, NULL, NULL);
    int64_t ms = mono_ms() - t0;
    print_message("write without a leader: %s after %lld ms\n", citrus_err_code(rc), (long long)ms);
    assert_int_equal(rc, CITRUS_EUNAVAILABLE);
    assert_true(ms < 1000);

    etcd_start(&m[1]);
    until = mono_ms() + WAIT_MS;
    while ((store_status_get(s, &st), !st.quorum) && mono_ms() < until)
        sleep_ms(20);
    assert_true(st.quorum);
    put(s, "nl/c", "3");
    assert_int_equal(count_key(s, "nl/b"), 0);
    store_close(s);
}

/* A three-member cluster; a member is stopped (SIGSTOP keeps its
 * connections open, so only silence tells). Calls move to the others, and
 * the watch stream, silent while the store knows of newer revisions, is
 * reopened elsewhere and resumes without a gap or a repeat. */
static etcd_proc st_members[3];

static int st_stop(void **state)
{
    for (int i = 0; i < 3; i++)
        etcd_stop(&st_members[i]);
    return 0;
}

static int put_retrying(store *s, const char *k, int64_t *rev)
{
    int64_t until = mono_ms() + WAIT_MS;
    int rc;
    while ((rc = store_put(s, k, (const unsigned char *)"v", 1, 0, -1, NULL, rev, NULL)) ==
               CITRUS_EUNAVAILABLE &&
           mono_ms() < until)
        sleep_ms(20); /* an election is under way */
    return rc;
}

static void test_stalled_stream_moves(void **state)
{
    etcd_proc *m = st_members;
    char cluster[sizeof(m[0].cluster)];
    const char *names[] = {"st-a", "st-b", "st-c"};
    for (int i = 0; i < 3; i++)
        etcd_init(&m[i], names[i]);
    snprintf(cluster, sizeof(cluster), "%.15s=%.63s,%.15s=%.63s,%.15s=%.63s", m[0].name, m[0].peer,
             m[1].name, m[1].peer, m[2].name, m[2].peer);
    for (int i = 0; i < 3; i++) {
        snprintf(m[i].cluster, sizeof(m[i].cluster), "%s", cluster);
        etcd_spawn(&m[i]);
    }
    for (int i = 0; i < 3; i++)
        etcd_wait_ready(&m[i]);
    const char *eps[] = {m[0].url, m[1].url, m[2].url};
    store_etcd_options o = {.endpoints = eps,
                            .nendpoints = 3,
                            .connect_timeout_ms = 500,
                            .request_timeout_ms = 500,
                            .watch_stall_ms = 500};
    store *s = NULL;
    errdetail err;
    assert_int_equal(store_etcd_open(&o, &s, &err), 0);
    assert_string_equal(store_etcd_endpoint(s), m[0].url);
    assert_true(wait_streams(s, 1));
    rec w;
    rec_init(&w, false);
    int64_t r0 = rev_now(s);
    store_watch *wh = watch_from(s, "st/", r0 + 1, &w);
    for (int i = 0; i < 5; i++)
        assert_int_equal(put_retrying(s, "st/k", NULL), 0);
    assert_true(rec_until(&w, 5, 0));

    etcd_pause(&m[0]); /* holds the store's connections and its watch stream */
    int64_t t0 = mono_ms(), last = 0;
    for (int i = 0; i < 5; i++) {
        int rc = put_retrying(s, "st/k", &last);
        if (rc == CITRUS_ETIMEOUT) /* sent to the stopped member: outcome unknown */
            rc = put_retrying(s, "st/k", &last);
        assert_int_equal(rc, 0);
    }
    assert_string_not_equal(store_etcd_endpoint(s), m[0].url);
    size_t want = (size_t)(last - r0);
    assert_true(rec_until(&w, want, 0));
    print_message("writes and watch moved off the stopped member in %lld ms\n",
                  (long long)(mono_ms() - t0));
    store_watch_close(s, wh);
    assert_contiguous(&w, r0 + 1, want);
    kill(m[0].pid, SIGCONT);
    rec_free(&w);
    store_close(s);
}

/* After a test that stops etcd: whatever happened, etcd runs again. */
static int etcd_running(void **state)
{
    if (etcd.pid > 0)
        kill(etcd.pid, SIGCONT);
    else
        etcd_start(&etcd);
    return 0;
}

/* ---- main ---------------------------------------------------------------------------------- */

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static const char *temp_base(void)
{
    const char *base = getenv("TMPDIR");
    if (base && *base)
        return base;
    return access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
}

int main(void)
{
    if (access(ETCD_BIN, X_OK) != 0) {
        printf("%s not found: etcd store tests skipped\n", ETCD_BIN);
        return 0;
    }
    snprintf(tmpdir, sizeof(tmpdir), "%s/citrus-etcd-test-XXXXXX", temp_base());
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    etcd_init(&etcd, "citrus-test");
    int64_t t0 = mono_ms();
    etcd_start(&etcd);
    printf("store_etcd tests: etcd at %s (pid %d, data %s) started in %lld ms; no random seed\n",
           etcd.url, (int)etcd.pid, etcd.dir, (long long)(mono_ms() - t0));

    catalog_conformance_factory f = {
        .name = "etcd", .open = conf_open, .close = conf_close, .compact = conf_compact};
    int failed = catalog_conformance_run(&f);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_mapping),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_etcd_limits),
        cmocka_unit_test(test_failover),
        cmocka_unit_test(test_catchup_watch),
        cmocka_unit_test(test_many_watchers_one_stream),
        cmocka_unit_test(test_ring_overflow),
        cmocka_unit_test(test_compaction_found),
        cmocka_unit_test(test_value_compare_absent),
        cmocka_unit_test_teardown(test_restart_resumes_watch, etcd_running),
        cmocka_unit_test_teardown(test_write_timeout, etcd_running),
        cmocka_unit_test(test_close_in_flight),
        cmocka_unit_test(test_put_batches),
        cmocka_unit_test_teardown(test_no_leader, nl_stop),
        cmocka_unit_test_teardown(test_stalled_stream_moves, st_stop),
    };
    failed += cmocka_run_group_tests_name("store_etcd", tests, NULL, NULL);
    etcd_stop(&etcd);
    curl_global_cleanup();
    if (!failed)
        nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    else
        printf("etcd data and log kept in %s\n", tmpdir);
    return failed;
}
