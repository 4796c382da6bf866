/* bench_bus: durable publish on the embedded bus (src/bus/bus_sqlite.c)
 * and, with the same threads, values and clock, XADD on Redis Streams.
 *
 *   bench_bus [--seconds T] [--threads 1,16] [--rounds R] [--dir DIR]
 *             [--partitions P] [--value-bytes B] [--redis HOST:PORT]
 *             [--backends embedded,redis,http] [--http URL] [--http-topic T]
 *             [--http-token TOKEN]
 *
 * For each round and each thread count N, in turn for each backend:
 *  - embedded: a fresh log <dir>/bus-<N>-<round>.db (WAL, synchronous =
 *    FULL's durability, see bus_sqlite.c), one topic of P partitions (default 4, `bus.partitions`'
 * default), N threads each looping bus_publish for T seconds (default 5); bus_publish returns once
 * the message's transaction is committed and an fdatasync of the log covers it; concurrent
 * publishers share commits and fsyncs (bus_sqlite_commits and bus_sqlite_syncs count them);
 *  - redis: the stream deleted first, then N threads, each with its own
 *    connection (hiredis, synchronous), looping XADD <stream> * key K value V
 *    for T seconds. Before the run the server must answer appendonly = yes
 *    and appendfsync = always (it then fsyncs its AOF before it answers a
 *    write: acknowledged after fsync, as the embedded bus), or the run fails;
 *  - http: N threads, each with its own keep-alive connection (libcurl),
 *    POSTing one CloudEvents envelope (subject = the key) to a running
 *    node's /v1/topics/<T>/events (default T: citrus.platform.events),
 *    which answers 200 once the event is durable on the node's bus.
 *
 * Every message has a distinct key (thread, sequence) and a CloudEvents-like
 * JSON value of B bytes (default 200, at least 176). The latency of one publish is the
 * time around the one call (bus_publish; redisCommand), on CLOCK_MONOTONIC.
 * Prints one line per run (publishes/s, p50, p99, and for the embedded bus
 * the commits, the fsyncs and publishes per fsync); the last line of stdout is one JSON
 * object with every run. Any failed call fails the run (exit status 3).
 *
 * Redis needs hiredis at build time (CMake links it when pkg-config finds
 * it); a build without it runs the embedded backend only and says so when
 * asked for redis (exit status 2). */
#include <curl/curl.h>
#include <getopt.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"
#include "bus/bus_sqlite.h"
#include "citrus/errors.h"

#ifdef BENCH_HAVE_HIREDIS
#include <hiredis/hiredis.h>
#endif

#define MAX_RUNS 16
#define MAX_THREADS 1024
#define MAX_VALUE 65536
#define TOPIC "citrus.bench.events"
#define STREAM "citrus.bench.events"

enum { BK_EMBEDDED, BK_REDIS, BK_HTTP, BK_COUNT };
static const char *const backend_name[BK_COUNT] = {"embedded", "redis", "http"};

typedef struct opts {
    double seconds;
    size_t threads[MAX_RUNS];
    size_t nruns;
    int rounds;
    const char *dir;
    int partitions;
    size_t value_bytes;
    char redis_host[256];
    int redis_port;
    const char *http_url;   /* http: a citrus node's base URL */
    const char *http_topic; /* default citrus.platform.events */
    const char *http_token; /* Authorization: Bearer, when given */
    bool backends[BK_COUNT];
} opts;

typedef struct worker {
    int backend;
    const opts *o;
    bus *b;
    int id;
    const atomic_int *stop;
    uint64_t n;
    int failed;
    double *lat_us; /* n of them, grown as needed */
    size_t cap;
#ifdef BENCH_HAVE_HIREDIS
    redisContext *rc;
#endif
    CURL *curl; /* http */
    struct curl_slist *hdrs;
} worker;

typedef struct result {
    int backend;
    size_t threads;
    int round;
    uint64_t published;
    double seconds, per_s, p50_us, p99_us, max_us;
    int64_t commits; /* embedded only; -1 otherwise */
    int64_t syncs;   /* embedded only; -1 otherwise */
} result;

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s [--seconds T] [--threads N,N,...] [--rounds R] [--dir DIR]\n"
            "          [--partitions P] [--value-bytes B] [--redis HOST:PORT]\n"
            "          [--backends embedded,redis,http] [--http URL] [--http-topic T]\n"
            "          [--http-token TOKEN]\n",
            argv0);
    exit(2);
}

static long parse_long(const char *s, long lo, long hi, const char *argv0)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < lo || v > hi)
        usage(argv0);
    return v;
}

static opts parse_args(int argc, char **argv)
{
    opts o = {.seconds = 5,
              .threads = {1, 16},
              .nruns = 2,
              .rounds = 1,
              .partitions = 4,
              .value_bytes = 200,
              .backends = {true, false}};
    bool redis_given = false, backends_given = false;
    static const struct option longopts[] = {
        {"seconds", required_argument, NULL, 's'},    {"threads", required_argument, NULL, 't'},
        {"rounds", required_argument, NULL, 'r'},     {"dir", required_argument, NULL, 'd'},
        {"partitions", required_argument, NULL, 'p'}, {"value-bytes", required_argument, NULL, 'v'},
        {"redis", required_argument, NULL, 'R'},      {"backends", required_argument, NULL, 'b'},
        {"http", required_argument, NULL, 'H'},       {"http-topic", required_argument, NULL, 'T'},
        {"http-token", required_argument, NULL, 'K'}, {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 's': {
            char *end;
            o.seconds = strtod(optarg, &end);
            if (*end != '\0' || o.seconds <= 0 || o.seconds > 3600)
                usage(argv[0]);
            break;
        }
        case 't': {
            o.nruns = 0;
            char *save = NULL;
            for (char *tok = strtok_r(optarg, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                if (o.nruns == MAX_RUNS)
                    usage(argv[0]);
                o.threads[o.nruns++] = (size_t)parse_long(tok, 1, MAX_THREADS, argv[0]);
            }
            if (o.nruns == 0)
                usage(argv[0]);
            break;
        }
        case 'r':
            o.rounds = (int)parse_long(optarg, 1, 100, argv[0]);
            break;
        case 'd':
            o.dir = optarg;
            break;
        case 'p':
            o.partitions = (int)parse_long(optarg, 1, 64, argv[0]);
            break;
        case 'v':
            o.value_bytes = (size_t)parse_long(optarg, 176, MAX_VALUE, argv[0]);
            break;
        case 'R': {
            const char *colon = strrchr(optarg, ':');
            size_t hl = colon ? (size_t)(colon - optarg) : 0;
            if (!colon || hl == 0 || hl >= sizeof(o.redis_host))
                usage(argv[0]);
            memcpy(o.redis_host, optarg, hl);
            o.redis_host[hl] = '\0';
            o.redis_port = (int)parse_long(colon + 1, 1, 65535, argv[0]);
            redis_given = true;
            break;
        }
        case 'b': {
            backends_given = true;
            memset(o.backends, 0, sizeof(o.backends));
            char *save = NULL;
            for (char *tok = strtok_r(optarg, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                int k = 0;
                while (k < BK_COUNT && strcmp(tok, backend_name[k]) != 0)
                    k++;
                if (k == BK_COUNT)
                    usage(argv[0]);
                o.backends[k] = true;
            }
            break;
        }
        case 'H':
            o.http_url = optarg;
            break;
        case 'T':
            o.http_topic = optarg;
            break;
        case 'K':
            o.http_token = optarg;
            break;
        default:
            usage(argv[0]);
        }
    }
    if (!o.http_topic)
        o.http_topic = "citrus.platform.events";
    if (o.http_url && !backends_given)
        o.backends[BK_HTTP] = true;
    if (o.backends[BK_HTTP] && !o.http_url) {
        fprintf(stderr, "bench_bus: the http backend needs --http URL\n");
        exit(2);
    }
    if (optind != argc)
        usage(argv[0]);
    if (redis_given && !backends_given)
        o.backends[BK_REDIS] = true;
    if (o.backends[BK_REDIS] && !redis_given) {
        fprintf(stderr, "bench_bus: the redis backend needs --redis HOST:PORT\n");
        exit(2);
    }
    if (!o.backends[BK_EMBEDDED] && !o.backends[BK_REDIS] && !o.backends[BK_HTTP])
        usage(argv[0]);
#ifndef BENCH_HAVE_HIREDIS
    if (o.backends[BK_REDIS]) {
        fprintf(stderr, "bench_bus: built without hiredis (libhiredis-dev): no redis backend;"
                        " install it and rebuild (bench/run-bus.sh does both)\n");
        exit(2);
    }
#endif
    return o;
}

/* The key of message seq of thread id, and a CloudEvents-like value of
 * exactly o->value_bytes bytes (a JSON object: the padding is in data). */
static size_t make_key(char *buf, size_t cap, int id, uint64_t seq)
{
    int n = snprintf(buf, cap, "tenant-%03d/enrollment-%010llu", id, (unsigned long long)seq);
    return n < 0 ? 0 : (size_t)n;
}

static size_t make_value(char *buf, size_t want, const char *key, uint64_t seq)
{
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "{\"id\":\"%016llx\",\"type\":\"enrollment.committed\",\"source\":"
                     "\"/citrus/bench\",\"subject\":\"%s\",\"time\":\"2026-12-07T03:00:00Z\","
                     "\"data\":{\"p\":\"",
                     (unsigned long long)seq, key);
    static const char tail[] = "\"}}";
    size_t hl = n < 0 ? 0 : (size_t)n, tl = sizeof(tail) - 1;
    if (hl >= sizeof(head))
        hl = sizeof(head) - 1;
    if (hl + tl > want) { /* want is too small for the head: a cut head */
        memcpy(buf, head, want);
        return want;
    }
    memcpy(buf, head, hl);
    memset(buf + hl, 'x', want - hl - tl);
    memcpy(buf + want - tl, tail, tl);
    return want;
}

static int lat_push(worker *w, double us)
{
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 4096;
        double *g = realloc(w->lat_us, cap * sizeof(*g));
        if (!g)
            return -1;
        w->lat_us = g;
        w->cap = cap;
    }
    w->lat_us[w->n++] = us;
    return 0;
}

#ifdef BENCH_HAVE_HIREDIS
static redisContext *redis_connect(const opts *o)
{
    struct timeval tv = {.tv_sec = 10};
    redisContext *c = redisConnectWithTimeout(o->redis_host, o->redis_port, tv);
    if (!c || c->err) {
        fprintf(stderr, "bench_bus: redis %s:%d: %s\n", o->redis_host, o->redis_port,
                c ? c->errstr : "out of memory");
        if (c)
            redisFree(c);
        return NULL;
    }
    return c;
}

/* CONFIG GET name must answer want. */
static int redis_config_is(redisContext *c, const char *name, const char *want)
{
    redisReply *r = redisCommand(c, "CONFIG GET %s", name);
    int ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
             r->element[1]->type == REDIS_REPLY_STRING && strcmp(r->element[1]->str, want) == 0;
    if (!ok)
        fprintf(stderr, "bench_bus: redis %s is not %s (%s): not acknowledged after fsync\n", name,
                want,
                r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
                        r->element[1]->type == REDIS_REPLY_STRING
                    ? r->element[1]->str
                    : "no answer");
    if (r)
        freeReplyObject(r);
    return ok ? 0 : -1;
}

/* Checks the server's durability settings and deletes the stream. */
static int redis_prepare(const opts *o)
{
    redisContext *c = redis_connect(o);
    if (!c)
        return -1;
    int rc = redis_config_is(c, "appendonly", "yes");
    if (rc == 0)
        rc = redis_config_is(c, "appendfsync", "always");
    if (rc == 0) {
        redisReply *r = redisCommand(c, "DEL %s", STREAM);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            fprintf(stderr, "bench_bus: redis DEL: %s\n", r ? r->str : c->errstr);
            rc = -1;
        }
        if (r)
            freeReplyObject(r);
    }
    redisFree(c);
    return rc;
}

static int redis_publish(worker *w, const char *key, size_t kl, const char *val, size_t vl)
{
    redisReply *r = redisCommand(w->rc, "XADD %s * key %b value %b", STREAM, key, kl, val, vl);
    int ok = r && r->type == REDIS_REPLY_STRING;
    if (!ok)
        fprintf(stderr, "bench_bus: thread %d: XADD: %s\n", w->id,
                r ? (r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply") : w->rc->errstr);
    if (r)
        freeReplyObject(r);
    return ok ? 0 : -1;
}
#endif

static size_t discard(char *p, size_t size, size_t n, void *ctx)
{
    (void)p;
    (void)ctx;
    return size * n;
}

/* A CloudEvents envelope of about want bytes whose subject (the message
 * key) is key. */
static size_t make_envelope(char *buf, size_t want, const char *key, uint64_t seq, int id)
{
    char head[320];
    int n = snprintf(head, sizeof(head),
                     "{\"specversion\":\"1.0\",\"id\":\"bench-%d-%llu\",\"type\":"
                     "\"enrollment.committed\",\"source\":\"/citrus/bench\",\"subject\":\"%s\","
                     "\"data\":{\"p\":\"",
                     id, (unsigned long long)seq, key);
    static const char tail[] = "\"}}";
    size_t hl = n < 0 ? 0 : (size_t)n, tl = sizeof(tail) - 1;
    if (hl >= sizeof(head))
        hl = sizeof(head) - 1;
    size_t pad = hl + tl < want ? want - hl - tl : 1;
    memcpy(buf, head, hl);
    memset(buf + hl, 'x', pad);
    memcpy(buf + hl + pad, tail, tl);
    return hl + pad + tl;
}

/* POST <url>/v1/topics/<topic>/events: one event, answered 200 once
 * durable. */
static int http_publish(worker *w, const char *body, size_t len)
{
    curl_easy_setopt(w->curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(w->curl, CURLOPT_POSTFIELDSIZE, (long)len);
    CURLcode cc = curl_easy_perform(w->curl);
    long status = 0;
    curl_easy_getinfo(w->curl, CURLINFO_RESPONSE_CODE, &status);
    if (cc != CURLE_OK || status != 200) {
        fprintf(stderr, "bench_bus: thread %d: POST: %s, status %ld\n", w->id,
                curl_easy_strerror(cc), status);
        return -1;
    }
    return 0;
}

static int http_setup(worker *w, const opts *o)
{
    char url[1024], auth[1024];
    snprintf(url, sizeof(url), "%s/v1/topics/%s/events", o->http_url, o->http_topic);
    if (!(w->curl = curl_easy_init()))
        return -1;
    w->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    if (o->http_token) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", o->http_token);
        w->hdrs = curl_slist_append(w->hdrs, auth);
    }
    curl_easy_setopt(w->curl, CURLOPT_URL, url);
    curl_easy_setopt(w->curl, CURLOPT_HTTPHEADER, w->hdrs);
    curl_easy_setopt(w->curl, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(w->curl, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(w->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(w->curl, CURLOPT_TCP_NODELAY, 1L);
    return 0;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    char key[96];
    char *val = malloc(w->o->value_bytes + 512); /* an envelope may pass it */
    if (!val) {
        w->failed = 1;
        return NULL;
    }
    uint64_t seq = 0;
    while (!atomic_load_explicit(w->stop, memory_order_relaxed)) {
        size_t kl = make_key(key, sizeof(key), w->id, seq);
        size_t vl = w->backend == BK_HTTP ? make_envelope(val, w->o->value_bytes, key, seq, w->id)
                                          : make_value(val, w->o->value_bytes, key, seq);
        int rc;
        uint64_t t0 = bench_now_ns();
        if (w->backend == BK_EMBEDDED) {
            int part;
            int64_t off;
            errdetail e = {0};
            rc = bus_publish(w->b, TOPIC, key, kl, val, vl, &part, &off, &e);
            if (rc != 0)
                fprintf(stderr, "bench_bus: thread %d: publish: %s\n", w->id, e.message);
        } else if (w->backend == BK_HTTP) {
            rc = http_publish(w, val, vl);
        } else {
#ifdef BENCH_HAVE_HIREDIS
            rc = redis_publish(w, key, kl, val, vl);
#else
            rc = -1;
#endif
        }
        uint64_t t1 = bench_now_ns();
        if (rc != 0 || lat_push(w, (double)(t1 - t0) / 1e3) != 0) {
            w->failed = 1;
            break;
        }
        seq++;
    }
    free(val);
    return NULL;
}

static void db_unlink(const char *path)
{
    static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
    for (size_t k = 0; k < sizeof(suffix) / sizeof(suffix[0]); k++) {
        char p[600];
        snprintf(p, sizeof(p), "%s%s", path, suffix[k]);
        unlink(p);
    }
}

static double pct(const double *sorted, size_t n, double q)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return sorted[i < n ? i : n - 1];
}

/* One run of backend bk with n threads. */
static int run_one(const opts *o, const char *dir, int bk, size_t n, int round, result *out)
{
    char path[512];
    bus *b = NULL;
    *out = (result){.backend = bk, .threads = n, .round = round, .commits = -1, .syncs = -1};
    if (bk == BK_EMBEDDED) {
        snprintf(path, sizeof(path), "%s/bus-%zu-%d.db", dir, n, round);
        db_unlink(path);
        errdetail e = {0};
        bus_topic_opts to = {.partitions = o->partitions};
        if (bus_open_sqlite(path, NULL, &b, &e) != 0 || bus_topic_create(b, TOPIC, &to, &e) != 0) {
            fprintf(stderr, "bench_bus: %s: %s\n", path, e.message);
            if (b)
                bus_close(b);
            return -1;
        }
    } else if (bk == BK_REDIS) {
#ifdef BENCH_HAVE_HIREDIS
        if (redis_prepare(o) != 0)
            return -1;
#else
        return -1;
#endif
    }
    worker *w = calloc(n, sizeof(*w));
    pthread_t *th = calloc(n, sizeof(*th));
    if (!w || !th) {
        fprintf(stderr, "bench_bus: out of memory\n");
        exit(1);
    }
    atomic_int stop = 0;
    int failed = 0;
    for (size_t i = 0; i < n; i++) {
        w[i] = (worker){.backend = bk, .o = o, .b = b, .id = (int)i, .stop = &stop};
#ifdef BENCH_HAVE_HIREDIS
        if (bk == BK_REDIS && !(w[i].rc = redis_connect(o)))
            failed = 1;
#endif
        if (bk == BK_HTTP && http_setup(&w[i], o) != 0)
            failed = 1;
    }
    int64_t commits0 = b ? bus_sqlite_commits(b) : 0;
    int64_t syncs0 = b ? bus_sqlite_syncs(b) : 0;
    uint64_t t0 = bench_now_ns();
    size_t started = 0;
    for (; !failed && started < n; started++)
        if (pthread_create(&th[started], NULL, worker_main, &w[started]) != 0) {
            fprintf(stderr, "bench_bus: pthread_create failed\n");
            failed = 1;
            break;
        }
    if (!failed)
        bench_sleep_until_ns(t0 + (uint64_t)(o->seconds * 1e9));
    atomic_store(&stop, 1);
    size_t nlat = 0;
    for (size_t i = 0; i < started; i++) {
        pthread_join(th[i], NULL);
        failed |= w[i].failed;
        nlat += w[i].n;
    }
    double dt = (double)(bench_now_ns() - t0) / 1e9;
    int64_t commits = b ? bus_sqlite_commits(b) - commits0 : -1;
    int64_t syncs = b ? bus_sqlite_syncs(b) - syncs0 : -1;
    double *lat = malloc((nlat ? nlat : 1) * sizeof(*lat));
    if (!lat) {
        fprintf(stderr, "bench_bus: out of memory\n");
        exit(1);
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (w[i].n)
            memcpy(lat + k, w[i].lat_us, w[i].n * sizeof(*lat));
        k += w[i].n;
        free(w[i].lat_us);
#ifdef BENCH_HAVE_HIREDIS
        if (w[i].rc)
            redisFree(w[i].rc);
#endif
        if (w[i].curl)
            curl_easy_cleanup(w[i].curl);
        curl_slist_free_all(w[i].hdrs);
    }
    qsort(lat, nlat, sizeof(*lat), bench_cmp_double);
    *out = (result){.backend = bk,
                    .threads = n,
                    .round = round,
                    .published = nlat,
                    .seconds = dt,
                    .per_s = (double)nlat / dt,
                    .p50_us = pct(lat, nlat, 0.50),
                    .p99_us = pct(lat, nlat, 0.99),
                    .max_us = nlat ? lat[nlat - 1] : 0,
                    .commits = commits,
                    .syncs = syncs};
    printf("round %d  %-8s threads %3zu: %8.0f publishes/s  p50 %7.0f us  p99 %7.0f us"
           "  (%llu in %.2f s",
           round, backend_name[bk], n, out->per_s, out->p50_us, out->p99_us,
           (unsigned long long)nlat, dt);
    if (commits > 0 && syncs > 0)
        printf(", %lld commits, %lld fsyncs, %.1f per fsync", (long long)commits, (long long)syncs,
               (double)nlat / (double)syncs);
    printf(")\n");
    fflush(stdout);
    free(lat);
    free(th);
    free(w);
    if (b) {
        bus_close(b);
        db_unlink(path);
    }
    return failed ? -1 : 0;
}

int main(int argc, char **argv)
{
    opts o = parse_args(argc, argv);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char tmp[64] = "/tmp/citrus-bench-bus-XXXXXX";
    const char *dir = o.dir;
    if (!dir) {
        if (!mkdtemp(tmp)) {
            perror("bench_bus: mkdtemp");
            return 1;
        }
        dir = tmp;
    }
    printf("bus publish, %zu-byte values, distinct keys, %.1f s per run, %d round(s);"
           " embedded (SQLite %s): %s, %d partitions",
           o.value_bytes, o.seconds, o.rounds, sqlite3_libversion(), dir, o.partitions);
    if (o.backends[BK_REDIS])
        printf("; redis: %s:%d", o.redis_host, o.redis_port);
    if (o.backends[BK_HTTP])
        printf("; http: %s (topic %s)", o.http_url, o.http_topic);
    printf("\n");
    result *res = calloc((size_t)o.rounds * o.nruns * BK_COUNT, sizeof(*res));
    if (!res) {
        fprintf(stderr, "bench_bus: out of memory\n");
        return 1;
    }
    size_t nres = 0;
    int failed = 0;
    for (int round = 1; round <= o.rounds && !failed; round++)
        for (size_t i = 0; i < o.nruns && !failed; i++)
            /* both backends back to back for one thread count; which goes
             * first alternates with the round */
            for (int j = 0; j < BK_COUNT && !failed; j++) {
                int bk = (round % 2) ? j : BK_COUNT - 1 - j;
                if (!o.backends[bk])
                    continue;
                failed = run_one(&o, dir, bk, o.threads[i], round, &res[nres]) != 0;
                nres++;
            }
    if (!o.dir && rmdir(tmp) != 0)
        fprintf(stderr, "bench_bus: could not remove %s\n", tmp);
    if (failed) {
        printf("RESULT FAILED\n");
        free(res);
        return 3;
    }
    printf("{\"value_bytes\":%zu,\"seconds\":%.1f,\"partitions\":%d,\"runs\":[", o.value_bytes,
           o.seconds, o.partitions);
    for (size_t i = 0; i < nres; i++) {
        printf("%s{\"backend\":\"%s\",\"threads\":%zu,\"round\":%d,\"published\":%llu,"
               "\"publishes_per_s\":%.0f,\"p50_us\":%.0f,\"p99_us\":%.0f,\"max_us\":%.0f",
               i ? "," : "", backend_name[res[i].backend], res[i].threads, res[i].round,
               (unsigned long long)res[i].published, res[i].per_s, res[i].p50_us, res[i].p99_us,
               res[i].max_us);
        if (res[i].commits >= 0)
            printf(",\"commits\":%lld,\"syncs\":%lld", (long long)res[i].commits,
                   (long long)res[i].syncs);
        printf("}");
    }
    printf("]}\n");
    free(res);
    return 0;
}
