/* bench_ingest: enrollment events per second through the enrollment ingest
 * worker, end to end, in one process (issue 15 item 8).
 *
 *   bench_ingest [--events N] [--rounds R] [--mode backlog|live]
 *                [--threads T] [--batch B] [--partitions P] [--shards S]
 *                [--tenants K] [--pinned Q] [--manifests M]
 *                [--publish-batch C] [--dir DIR]
 *
 * Each round builds, in a fresh directory under DIR (default a temp dir),
 * what a node's workers role runs on, with the node's own calls
 * (src/node/bus_boot.c, records_boot.c, shards_boot.c, workers_boot.c):
 *  - the catalog (store_sqlite_open, catalog.db) read through a reader,
 *    a registry on it (murmur3, 256 vnodes: the defaults) holding S active
 *    shards ("shard-00".., default 8) and Q tenant pins (tenant-0 ..
 *    tenant-(Q-1), default 100, pinned round-robin to the shards);
 *  - the records store (records_open_sqlite, records.db) holding M
 *    manifests ("m-0".., default 1000), manifest i for tenant i % K
 *    (default K 1000 tenants, so Q/K of the events route by the directory,
 *    the rest by the ring);
 *  - the embedded bus (bus_open_sqlite, bus.db: WAL, each answer durable)
 *    with citrus.enrollment.events and citrus.shard.ingest.commands of P
 *    partitions (default 4, bus.partitions' default);
 *  - the enrollment ingest worker: worker_new / worker_start with
 *    ingest_handle and the node's routing (workers_ingest_route), group
 *    citrus-enrollment-ingest, T threads (default 1) polling B events
 *    (default 100): workers.threads and workers.batch.
 *
 * N enrollment events (default 20000; ids "enr-<round>-<i>", keyed by
 * their tenant key, data.manifest_id = manifest i % M) are published with
 * bus_publish_batch, C per call (default 1000 for the backlog, 100 live):
 *  - backlog (default): all before the worker starts;
 *  - live: by a publisher thread started with the worker, as fast as the
 *    bus takes them (the rate is then also bounded by the publisher).
 *
 * Measured: from the first event the worker handles (its handler's first
 * call) to the moment citrus.shard.ingest.commands holds N commands
 * (bus_topic_describe, checked every 5 ms): events/s; and to the
 * moment the group has committed every event (bus_groups_describe: lag 0):
 * committed/s. Then every command is read back (bus_read): each event must
 * have produced exactly one command (counted by its
 * data.enrollment_event_id), to the shard its tenant's pin names when it
 * has one (routed_by "directory"), else by the ring; the group's lag must
 * be 0 and nothing dead-lettered. Any failure fails the round (exit 3).
 *
 * Prints one line per round, the last line of stdout is one JSON object
 * with every round. Also printed: the bus's transactions
 * (bus_sqlite_commits) and fdatasyncs (bus_sqlite_syncs) per event, and
 * the process's CPU seconds. */
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
#include "catalog/reader.h"
#include "catalog/store_sqlite.h"
#include "citrus/errors.h"
#include "core/shard.h"
#include "node/workers_boot.h"
#include "obs/log.h"
#include "records/ledger.h"
#include "registry/registry.h"
#include "registry/tenants.h"
#include "workers/ingest.h"
#include "workers/runner.h"

#define EVENTS_TOPIC "citrus.enrollment.events"
#define COMMANDS_TOPIC "citrus.shard.ingest.commands"
#define GROUP "citrus-enrollment-ingest"
#define MAX_ROUNDS 64
#define READ_PAGE 1000
/* How often the topic and the group are looked at: each look is a request
 * on the bus's writer queue, so not too often. */
#define POLL_NS 5000000ull

typedef struct opts {
    size_t events, manifests, tenants, pinned, shards, publish_batch;
    int rounds, threads, partitions;
    size_t batch;
    bool live;
    const char *dir;
} opts;

typedef struct result {
    int round;
    size_t events;
    double seconds, per_s;               /* first handled -> N commands on the topic */
    double commit_seconds, commit_per_s; /* first handled -> all committed */
    double publish_per_s;                /* live: the publisher's rate */
    int64_t bus_commits, bus_syncs;
    double cpu_s;
    size_t directory, ring;
} result;

static void usage(void)
{
    fprintf(stderr, "usage: bench_ingest [--events N] [--rounds R] [--mode backlog|live]\n"
                    "                    [--threads T] [--batch B] [--partitions P] [--shards S]\n"
                    "                    [--tenants K] [--pinned Q] [--manifests M]\n"
                    "                    [--publish-batch C] [--dir DIR]\n");
    exit(2);
}

static size_t num(const char *s, size_t lo, size_t hi)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "bench_ingest: %s: not a number in %zu..%zu\n", s, lo, hi);
        exit(2);
    }
    return (size_t)v;
}

static opts parse_args(int argc, char **argv)
{
    opts o = {.events = 20000,
              .manifests = 1000,
              .tenants = 1000,
              .pinned = 100,
              .shards = 8,
              .rounds = 1,
              .threads = 1,
              .partitions = 4,
              .batch = 100};
    static const struct option lo[] = {{"events", 1, 0, 'n'},        {"rounds", 1, 0, 'r'},
                                       {"mode", 1, 0, 'm'},          {"threads", 1, 0, 't'},
                                       {"batch", 1, 0, 'b'},         {"partitions", 1, 0, 'p'},
                                       {"shards", 1, 0, 's'},        {"tenants", 1, 0, 'k'},
                                       {"pinned", 1, 0, 'q'},        {"manifests", 1, 0, 'M'},
                                       {"publish-batch", 1, 0, 'c'}, {"dir", 1, 0, 'd'},
                                       {"help", 0, 0, 'h'},          {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'n':
            o.events = num(optarg, 1, 10000000);
            break;
        case 'r':
            o.rounds = (int)num(optarg, 1, MAX_ROUNDS);
            break;
        case 'm':
            if (strcmp(optarg, "live") != 0 && strcmp(optarg, "backlog") != 0)
                usage();
            o.live = strcmp(optarg, "live") == 0;
            break;
        case 't':
            o.threads = (int)num(optarg, 1, 16);
            break;
        case 'b':
            o.batch = num(optarg, 1, 1000);
            break;
        case 'p':
            o.partitions = (int)num(optarg, 1, 64);
            break;
        case 's':
            o.shards = num(optarg, 1, 1000);
            break;
        case 'k':
            o.tenants = num(optarg, 1, 10000000);
            break;
        case 'q':
            o.pinned = num(optarg, 0, 100000);
            break;
        case 'M':
            o.manifests = num(optarg, 1, 1000000);
            break;
        case 'c':
            o.publish_batch = num(optarg, 1, 1000);
            break;
        case 'd':
            o.dir = optarg;
            break;
        default:
            usage();
        }
    }
    if (o.pinned > o.tenants)
        o.pinned = o.tenants;
    if (!o.publish_batch)
        o.publish_batch = o.live ? 100 : 1000;
    return o;
}

static void die(const char *what, const errdetail *e)
{
    fprintf(stderr, "bench_ingest: %s: %s\n", what, e ? e->message : "failed");
    exit(1);
}

/* ---- the node's pieces ---------------------------------------------------------- */

typedef struct setup {
    char dir[512];
    store *st;
    reader *rd;
    registry *reg;
    records *rec;
    bus *b;
} setup;

static void shard_name(char *buf, size_t len, size_t i)
{
    snprintf(buf, len, "shard-%02zu", i);
}

static void add_shard(registry *reg, size_t i)
{
    shard s;
    shard_init(&s);
    shard_name(s.id, sizeof(s.id), i);
    char dsn[128];
    snprintf(dsn, sizeof(dsn), "postgresql://127.0.0.1:5432/bench_%zu", i);
    s.dsn = strdup(dsn);
    int64_t now = clock_wall_ms(NULL);
    s.created_ms = s.updated_ms = now;
    errdetail e = {0};
    reg_result res;
    if (!s.dsn || shard_transition(&s, SHARD_INITIALIZING, "registered", "bench", now) != 0 ||
        shard_transition(&s, SHARD_ACTIVE, "ready", "bench", now) != 0 ||
        registry_shard_create(reg, &s, NULL, &res, &e) != 0)
        die("creating a shard", &e);
    reg_result_clear(&res);
    shard_clear(&s);
}

static void setup_open(const opts *o, const char *root, int round, setup *s)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->dir, sizeof(s->dir), "%s/round-%d-XXXXXX", root, round);
    if (!mkdtemp(s->dir)) {
        perror(s->dir);
        exit(1);
    }
    char path[600];
    errdetail e = {0};
    snprintf(path, sizeof(path), "%s/catalog.db", s->dir);
    store_sqlite_options so = {.path = path};
    if (store_sqlite_open(&so, &s->st, &e) != 0)
        die(path, &e);
    reader_options ro = {.st = s->st, .max_staleness_ms = 5000};
    if (!(s->rd = reader_new(&ro)))
        die("reader", NULL);
    s->reg = registry_new(s->st, NULL, CITRUS_HASH_MURMUR3, 256, reader_routing_read, s->rd);
    if (!s->reg)
        die("registry", NULL);
    registry_set_revision_fn(s->reg, reader_routing_revision, s->rd);
    registry_set_commit_fn(s->reg, reader_note_commit, s->rd);
    if (registry_init(s->reg, &e) != 0)
        die("registry_init", &e);
    for (size_t i = 0; i < o->shards; i++)
        add_shard(s->reg, i);
    for (size_t i = 0; i < o->pinned; i++) {
        char key[64], sid[64];
        snprintf(key, sizeof(key), "tenant-%zu", i);
        shard_name(sid, sizeof(sid), i % o->shards);
        tenant_pin pin;
        bool created;
        int rc = tenants_put(s->reg, key, sid, 0, &pin, &created, &e);
        if (rc != 0)
            die("pinning a tenant", &e);
    }
    snprintf(path, sizeof(path), "%s/records.db", s->dir);
    if (records_open_sqlite(path, &s->rec, &e) != 0)
        die(path, &e);
    for (size_t i = 0; i < o->manifests; i++) {
        char id[64], body[160];
        snprintf(id, sizeof(id), "m-%zu", i);
        snprintf(body, sizeof(body), "{\"tenant_key\":\"tenant-%zu\",\"rows\":%zu}", i % o->tenants,
                 100 + i % 7);
        if (records_manifest_put(s->rec, id, body, clock_wall_ms(NULL), NULL, NULL, &e) != 0)
            die("manifest", &e);
    }
    snprintf(path, sizeof(path), "%s/bus.db", s->dir);
    bus_config bc = {.max_message_bytes = 1024 * 1024 + BUS_KEY_MAX};
    if (bus_open_sqlite(path, &bc, &s->b, &e) != 0)
        die(path, &e);
    bus_topic_opts to = {.partitions = o->partitions};
    if (bus_topic_create(s->b, EVENTS_TOPIC, &to, &e) != 0 ||
        bus_topic_create(s->b, COMMANDS_TOPIC, &to, &e) != 0)
        die("topics", &e);
}

static void setup_close(setup *s)
{
    bus_close(s->b);
    records_close(s->rec);
    registry_free(s->reg);
    reader_free(s->rd);
    store_close(s->st);
    static const char *const files[] = {"bus.db", "records.db", "catalog.db"};
    static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
    for (size_t f = 0; f < 3; f++)
        for (size_t k = 0; k < 4; k++) {
            char p[700];
            snprintf(p, sizeof(p), "%s/%s%s", s->dir, files[f], suffix[k]);
            unlink(p);
        }
    rmdir(s->dir);
}

/* ---- the events ------------------------------------------------------------------ */

/* Event i of round r: its envelope (malloc'd) and its key (the tenant). */
static char *make_event(const opts *o, int round, size_t i, char *key, size_t klen, size_t *len)
{
    size_t m = i % o->manifests;
    snprintf(key, klen, "tenant-%zu", m % o->tenants);
    char id[64], mid[64], corr[64];
    snprintf(id, sizeof(id), "enr-%d-%zu", round, i);
    snprintf(mid, sizeof(mid), "m-%zu", m);
    snprintf(corr, sizeof(corr), "c-%d-%zu", round, i);
    json_t *data = json_pack("{s:s,s:s}", "manifest_id", mid, "enrolled_by", "bench");
    envelope_spec spec = {.id = id,
                          .type = "enrollment.committed",
                          .source = "/bench/enrollment",
                          .subject = mid,
                          .time_ms = clock_wall_ms(NULL),
                          .correlationid = corr,
                          .data = data};
    envelope ev;
    errdetail e = {0};
    if (!data || envelope_build(&spec, &ev, &e) != 0)
        die("envelope", &e);
    json_decref(data);
    char *text = envelope_encode(&ev, len);
    envelope_clear(&ev);
    if (!text)
        die("out of memory", NULL);
    return text;
}

/* Publishes events [from, to) of round r in calls of o->publish_batch. */
static void publish_range(const opts *o, bus *b, int round, size_t from, size_t to)
{
    size_t cap = o->publish_batch;
    bus_record *recs = calloc(cap, sizeof(*recs));
    char **vals = calloc(cap, sizeof(*vals));
    char(*keys)[64] = calloc(cap, sizeof(*keys));
    if (!recs || !vals || !keys)
        die("out of memory", NULL);
    for (size_t i = from; i < to;) {
        size_t n = 0;
        for (; n < cap && i < to; n++, i++) {
            size_t len;
            vals[n] = make_event(o, round, i, keys[n], sizeof(keys[n]), &len);
            recs[n] = (bus_record){
                .key = keys[n], .key_len = strlen(keys[n]), .value = vals[n], .value_len = len};
        }
        errdetail e = {0};
        if (bus_publish_batch(b, EVENTS_TOPIC, recs, n, NULL, NULL, NULL, &e) != 0)
            die("publishing the events", &e);
        for (size_t k = 0; k < n; k++)
            free(vals[k]);
    }
    free(recs);
    free(vals);
    free(keys);
}

typedef struct publisher {
    const opts *o;
    bus *b;
    int round;
    double seconds;
} publisher;

static void *publisher_main(void *arg)
{
    publisher *p = arg;
    double t0 = bench_now_s();
    publish_range(p->o, p->b, p->round, 0, p->o->events);
    p->seconds = bench_now_s() - t0;
    return NULL;
}

/* ---- the worker, its first event timed -------------------------------------------- */

typedef struct timed_ctx {
    ingest_ctx ic;
    _Atomic uint64_t first_ns;
} timed_ctx;

static int timed_handle(void *ctx, const envelope *ev, const bus_message *m, worker_effect *fx,
                        errdetail *e)
{
    timed_ctx *t = ctx;
    uint64_t zero = 0;
    if (atomic_load_explicit(&t->first_ns, memory_order_relaxed) == 0)
        atomic_compare_exchange_strong(&t->first_ns, &zero, bench_now_ns());
    return ingest_handle(&t->ic, ev, m, fx, e);
}

/* The commands on the topic (all partitions), and the group's lag and
 * in-flight events on the events topic. */
static int64_t commands_now(bus *b)
{
    bus_topic_info info;
    errdetail e = {0};
    if (bus_topic_describe(b, COMMANDS_TOPIC, &info, &e) != 0)
        die("describing the commands topic", &e);
    return info.messages;
}

static void group_state(bus *b, int64_t *lag, int64_t *in_flight)
{
    bus_group_entry *g = NULL;
    size_t n = 0;
    errdetail e = {0};
    if (bus_groups_describe(b, GROUP, 1000, &g, &n, NULL, &e) != 0)
        die("describing the group", &e);
    *lag = *in_flight = 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(g[i].topic, EVENTS_TOPIC) == 0) {
            *lag += g[i].lag;
            *in_flight += g[i].in_flight;
        }
    free(g);
}

/* Every command read back: one per event, routed as its tenant says. */
static int verify(const opts *o, setup *s, int round, result *r)
{
    uint8_t *seen = calloc(o->events, 1);
    if (!seen)
        die("out of memory", NULL);
    size_t total = 0, bad = 0, dup = 0;
    char prefix[32];
    int pl = snprintf(prefix, sizeof(prefix), "enr-%d-", round);
    for (int p = 0; p < o->partitions; p++) {
        int64_t from = 0;
        for (;;) {
            bus_message *m = NULL;
            size_t n = 0;
            errdetail e = {0};
            int rc = bus_read(s->b, COMMANDS_TOPIC, p, from, READ_PAGE, &m, &n, &e);
            if (rc == CITRUS_EINVAL || (rc == 0 && n == 0))
                break;
            if (rc != 0)
                die("reading the commands", &e);
            for (size_t i = 0; i < n; i++) {
                total++;
                json_t *c = json_loads((const char *)m[i].value, 0, NULL);
                json_t *d = json_object_get(c, "data");
                const char *eid = json_string_value(json_object_get(d, "enrollment_event_id"));
                const char *sid = json_string_value(json_object_get(d, "shard_id"));
                const char *by = json_string_value(json_object_get(d, "routed_by"));
                const char *tk = json_string_value(json_object_get(d, "tenant_key"));
                char *end = NULL;
                size_t idx = eid && strncmp(eid, prefix, (size_t)pl) == 0
                                 ? strtoull(eid + pl, &end, 10)
                                 : o->events;
                size_t tenant =
                    tk && strncmp(tk, "tenant-", 7) == 0 ? strtoull(tk + 7, NULL, 10) : o->tenants;
                char want[64];
                shard_name(want, sizeof(want), tenant % o->shards);
                bool pinned = tenant < o->pinned;
                if (idx >= o->events || !end || *end || !sid || !by ||
                    tenant != (idx % o->manifests) % o->tenants ||
                    strcmp(by, pinned ? "directory" : "ring") != 0 ||
                    (pinned && strcmp(sid, want) != 0) || strncmp(sid, "shard-", 6) != 0) {
                    if (bad++ < 5)
                        fprintf(stderr, "bench_ingest: unexpected command: %s\n",
                                (const char *)m[i].value);
                } else if (seen[idx]++) {
                    dup++;
                } else {
                    r->directory += pinned;
                    r->ring += !pinned;
                }
                json_decref(c);
            }
            from = m[n - 1].offset + 1;
            bus_messages_free(m, n);
        }
    }
    size_t missing = 0;
    for (size_t i = 0; i < o->events; i++)
        missing += !seen[i];
    free(seen);
    bus_topic_info dlq;
    errdetail e = {0};
    if (bus_topic_describe(s->b, EVENTS_TOPIC BUS_DLQ_SUFFIX, &dlq, &e) != 0)
        die("describing the dead letters", &e);
    if (total != o->events || bad || dup || missing || dlq.messages) {
        fprintf(stderr,
                "bench_ingest: round %d: %zu commands for %zu events: %zu unexpected, %zu "
                "duplicates, %zu events without a command, %lld dead-lettered\n",
                round, total, o->events, bad, dup, missing, (long long)dlq.messages);
        return -1;
    }
    return 0;
}

static int run_round(const opts *o, const char *root, int round, result *r)
{
    setup s;
    setup_open(o, root, round, &s);
    *r = (result){.round = round, .events = o->events};
    if (!o->live)
        publish_range(o, s.b, round, 0, o->events);
    timed_ctx tc = {.ic = {.rec = s.rec,
                           .topic = COMMANDS_TOPIC,
                           .max_event_bytes = 1024 * 1024,
                           .route = workers_ingest_route,
                           .route_ctx = s.reg}};
    worker_spec ws = {.name = "enrollment_ingest",
                      .topic = EVENTS_TOPIC,
                      .group = GROUP,
                      .bus = s.b,
                      .rec = s.rec,
                      .visibility_ms = 30000,
                      .batch = o->batch,
                      .max_event_bytes = 1024 * 1024,
                      .max_attempts = 5,
                      .threads = o->threads,
                      .handle = timed_handle,
                      .ctx = &tc};
    worker *w = NULL;
    errdetail e = {0};
    if (worker_new(&ws, &w, &e) != 0)
        die("worker", &e);
    publisher pub = {.o = o, .b = s.b, .round = round};
    pthread_t pth;
    int64_t commits0 = bus_sqlite_commits(s.b), syncs0 = bus_sqlite_syncs(s.b);
    double cpu0 = bench_self_cpu_s();
    if (worker_start(w, &e) != 0)
        die("starting the worker", &e);
    if (o->live && pthread_create(&pth, NULL, publisher_main, &pub) != 0)
        die("pthread_create", NULL);
    /* N commands on the topic, then every event committed (a until_ns of
     * a minute per 1000 events: a stuck worker fails the round) */
    uint64_t until_ns = bench_now_ns() + (uint64_t)(60e9 * (1.0 + (double)o->events / 1000.0));
    uint64_t t_cmds = 0, t_done = 0;
    int failed = 0;
    while (!t_done) {
        uint64_t now = bench_now_ns();
        if (now > until_ns) {
            fprintf(stderr, "bench_ingest: round %d: timed out\n", round);
            failed = 1;
            break;
        }
        if (!t_cmds) {
            int64_t c = commands_now(s.b);
            if (c >= (int64_t)o->events)
                t_cmds = bench_now_ns();
        } else {
            int64_t lag, in_flight;
            group_state(s.b, &lag, &in_flight);
            if (lag == 0 && in_flight == 0)
                t_done = bench_now_ns();
        }
        if (!t_done)
            bench_sleep_until_ns(now + POLL_NS);
    }
    double cpu = bench_self_cpu_s() - cpu0;
    int64_t commits = bus_sqlite_commits(s.b) - commits0;
    int64_t syncs = bus_sqlite_syncs(s.b) - syncs0;
    if (o->live)
        pthread_join(pth, NULL);
    worker_stop(w);
    uint64_t t0 = atomic_load(&tc.first_ns);
    if (!failed) {
        r->seconds = (double)(t_cmds - t0) / 1e9;
        r->commit_seconds = (double)(t_done - t0) / 1e9;
        r->per_s = (double)o->events / r->seconds;
        r->commit_per_s = (double)o->events / r->commit_seconds;
        r->publish_per_s = o->live ? (double)o->events / pub.seconds : 0;
        r->bus_commits = commits;
        r->bus_syncs = syncs;
        r->cpu_s = cpu;
        failed = verify(o, &s, round, r) != 0;
    }
    if (!failed) {
        printf("round %d  %-7s threads %d batch %zu: %8.0f events/s to the last command (%zu in "
               "%.2f s), %8.0f/s all committed; %.3f bus transactions and %.3f fsyncs per "
               "event, %.2f CPU s",
               round, o->live ? "live" : "backlog", o->threads, o->batch, r->per_s, o->events,
               r->seconds, r->commit_per_s, (double)commits / (double)o->events,
               (double)syncs / (double)o->events, cpu);
        if (o->live)
            printf(", published at %.0f/s", r->publish_per_s);
        printf("; %zu commands, one per event (%zu by the directory, %zu by the ring)\n", o->events,
               r->directory, r->ring);
        fflush(stdout);
    }
    setup_close(&s);
    return failed ? -1 : 0;
}

int main(int argc, char **argv)
{
    opts o = parse_args(argc, argv);
    log_set_level(LOG_WARN); /* the worker's started/stopped lines */
    char tmp[64] = "/tmp/citrus-bench-ingest-XXXXXX";
    const char *dir = o.dir;
    if (!dir) {
        if (!mkdtemp(tmp)) {
            perror("bench_ingest: mkdtemp");
            return 1;
        }
        dir = tmp;
    }
    printf("enrollment ingest, %zu events per round, %s, %d round(s); worker: %d thread(s), "
           "batch %zu; %d partitions, %zu shards, %zu tenants (%zu pinned), %zu manifests; "
           "SQLite %s in %s\n",
           o.events, o.live ? "published live" : "backlog published first", o.rounds, o.threads,
           o.batch, o.partitions, o.shards, o.tenants, o.pinned, o.manifests, sqlite3_libversion(),
           dir);
    fflush(stdout);
    result res[MAX_ROUNDS];
    int failed = 0, done = 0;
    for (int round = 1; round <= o.rounds && !failed; round++) {
        failed = run_round(&o, dir, round, &res[done]) != 0;
        done += !failed;
    }
    if (!o.dir && rmdir(tmp) != 0)
        fprintf(stderr, "bench_ingest: could not remove %s\n", tmp);
    if (failed) {
        printf("RESULT FAILED\n");
        return 3;
    }
    printf("{\"events\":%zu,\"mode\":\"%s\",\"threads\":%d,\"batch\":%zu,\"partitions\":%d,"
           "\"rounds\":[",
           o.events, o.live ? "live" : "backlog", o.threads, o.batch, o.partitions);
    for (int i = 0; i < done; i++) {
        printf("%s{\"round\":%d,\"seconds\":%.3f,\"events_per_s\":%.0f,"
               "\"committed_seconds\":%.3f,\"committed_per_s\":%.0f,\"bus_commits\":%lld,\"bus_"
               "syncs\":%lld,"
               "\"cpu_s\":%.2f,\"directory\":%zu,\"ring\":%zu",
               i ? "," : "", res[i].round, res[i].seconds, res[i].per_s, res[i].commit_seconds,
               res[i].commit_per_s, (long long)res[i].bus_commits, (long long)res[i].bus_syncs,
               res[i].cpu_s, res[i].directory, res[i].ring);
        if (o.live)
            printf(",\"published_per_s\":%.0f", res[i].publish_per_s);
        printf("}");
    }
    printf("]}\n");
    return 0;
}
