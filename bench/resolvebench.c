/* resolvebench: libcitrus's local resolution, citrus_resolve (pin lookup,
 * else ring lookup, plus the shard record) and citrus_route_free, in ns per
 * key.
 *
 * Builds a client's routing snapshot in memory, without a server, from the
 * catalog values the server writes: --shards shards ("shard-0000"...) of
 * --vnodes tokens each (the candidates "<id>#<i>"), their records, and
 * --pins tenant pins ("tenant-<n>" for n < pins). Then times --keys
 * lookups of keys "tenant-<n>" (n random in [0, 2 x pins) when there are
 * pins, so about half are pinned; else random 32-bit n) on --threads
 * threads (default 1), for --runs runs. Prints each run and the median;
 * the last line of stdout is one JSON object with the same.
 *
 *   ./build/resolvebench --shards 1024 --vnodes 256 --pins 100000 --threads 2 */
#include <stdio.h>
#include <stdlib.h>

#ifndef CITRUS_VERSION

int main(void)
{
    fprintf(stderr, "resolvebench: built without citrus_internal (link it in CMakeLists.txt)\n");
    return 2;
}

#else

#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "citrus/citrus.h"
#include "core/ring.h"
#include "lib/handle.h"

typedef struct job {
    citrus_client *c;
    char **keys;
    size_t n;
    size_t misses;
} job;

static void *lookups(void *arg)
{
    job *j = arg;
    for (size_t i = 0; i < j->n; i++) {
        citrus_route *r;
        if (citrus_resolve(j->c, j->keys[i], &r, NULL) < 0)
            j->misses++;
        citrus_route_free(r);
    }
    return NULL;
}

static void put(snap_builder *b, const char *key, const char *value, int64_t rev)
{
    if (snap_builder_apply(b, key, value, strlen(value), rev, false) < 0) {
        fprintf(stderr, "resolvebench: applying %s failed\n", key);
        exit(1);
    }
}

/* The catalog values of the ring, shards and pins, into the builder. */
static void fill(snap_builder *b, size_t shards, size_t vnodes, size_t pins)
{
    int64_t rev = 1;
    put(b, "citrus/ring/meta", "{\"hash\":\"murmur3\",\"vnodes\":256}", rev++);
    uint64_t *tok = malloc(vnodes * sizeof(*tok));
    size_t cap = vnodes * 24 + 64;
    char *text = malloc(cap), key[128], id[32];
    for (size_t s = 0; s < shards; s++) {
        snprintf(id, sizeof(id), "shard-%04zu", s);
        ring_vnode_tokens(CITRUS_HASH_MURMUR3, id, 0, vnodes, tok);
        size_t n = (size_t)snprintf(text, cap, "{\"tokens\":[");
        for (size_t i = 0; i < vnodes; i++)
            n += (size_t)snprintf(text + n, cap - n, "%s\"%" PRIu64 "\"", i ? "," : "", tok[i]);
        snprintf(text + n, cap - n, "]}");
        snprintf(key, sizeof(key), "citrus/ring/tokens/%s", id);
        put(b, key, text, rev++);
        snprintf(text, cap,
                 "{\"id\":\"%s\",\"state\":\"active\",\"dsn\":\"sqlite:///tmp/%s.db\","
                 "\"epoch\":1,\"created_at\":\"2026-01-01T00:00:00.000Z\","
                 "\"updated_at\":\"2026-01-01T00:00:00.000Z\"}",
                 id, id);
        snprintf(key, sizeof(key), "citrus/shards/%s", id);
        put(b, key, text, rev++);
    }
    for (size_t p = 0; p < pins; p++) {
        snprintf(key, sizeof(key), "citrus/tenants/tenant-%zu", p);
        snprintf(text, cap, "{\"shard_id\":\"shard-%04zu\",\"token\":\"1\"}", p % shards);
        put(b, key, text, rev++);
    }
    free(tok);
    free(text);
}

int main(int argc, char **argv)
{
    size_t shards = 1024, vnodes = 256, pins = 10000, nkeys = 1000000, threads = 1, runs = 5;
    static const struct option opts[] = {{"shards", required_argument, NULL, 's'},
                                         {"vnodes", required_argument, NULL, 'v'},
                                         {"pins", required_argument, NULL, 'p'},
                                         {"keys", required_argument, NULL, 'k'},
                                         {"threads", required_argument, NULL, 't'},
                                         {"runs", required_argument, NULL, 'r'},
                                         {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        size_t v = optarg ? strtoul(optarg, NULL, 10) : 0;
        switch (o) {
        case 's':
            shards = v;
            break;
        case 'v':
            vnodes = v;
            break;
        case 'p':
            pins = v;
            break;
        case 'k':
            nkeys = v;
            break;
        case 't':
            threads = v;
            break;
        case 'r':
            runs = v;
            break;
        default:
            fprintf(stderr, "usage: resolvebench [--shards N] [--vnodes N] [--pins N] [--keys N] "
                            "[--threads N] [--runs N]\n");
            return 2;
        }
    }
    if (!shards || !vnodes || !nkeys || !threads || !runs || threads > 64) {
        fprintf(stderr, "resolvebench: counts must be positive (threads at most 64)\n");
        return 2;
    }
    const char *ep[] = {"http://127.0.0.1:1"};
    citrus_options opt = {.endpoints = ep, .nendpoints = 1, .no_watch = 1};
    citrus_client *c = handle_new(&opt, NULL);
    if (!c)
        return 1;
    double t0 = bench_now_s();
    snap_builder b;
    snap_builder_init(&b);
    fill(&b, shards, vnodes, pins);
    snap *s = snap_builder_publish(&b, 1);
    snap_builder_clear(&b);
    if (!s) {
        fprintf(stderr, "resolvebench: out of memory\n");
        return 1;
    }
    handle_publish(c, s);
    double build_s = bench_now_s() - t0;
    char **keys = malloc(nkeys * sizeof(*keys));
    srand(42);
    for (size_t i = 0; i < nkeys; i++) {
        unsigned n = pins ? (unsigned)rand() % (unsigned)(2 * pins) : (unsigned)rand();
        if (asprintf(&keys[i], "tenant-%u", n) < 0)
            return 1;
    }
    double *ns = calloc(runs, sizeof(*ns));
    size_t misses = 0;
    for (size_t r = 0; r < runs; r++) {
        job jobs[64];
        pthread_t th[64];
        double start = bench_now_s();
        for (size_t t = 0; t < threads; t++) {
            jobs[t] = (job){.c = c, .keys = keys, .n = nkeys};
            pthread_create(&th[t], NULL, lookups, &jobs[t]);
        }
        for (size_t t = 0; t < threads; t++) {
            pthread_join(th[t], NULL);
            misses += jobs[t].misses;
        }
        /* wall time per key per thread: the latency one caller sees */
        ns[r] = (bench_now_s() - start) * 1e9 / (double)nkeys;
        printf("run %zu: %.1f ns/key (%zu threads)\n", r + 1, ns[r], threads);
    }
    qsort(ns, runs, sizeof(*ns), bench_cmp_double);
    printf("{\"bench\":\"resolve\",\"shards\":%zu,\"vnodes\":%zu,\"pins\":%zu,\"keys\":%zu,"
           "\"threads\":%zu,\"median_ns_per_key\":%.1f,\"build_ms\":%.1f,\"misses\":%zu}\n",
           shards, vnodes, pins, nkeys, threads, ns[runs / 2], build_s * 1e3, misses);
    for (size_t i = 0; i < nkeys; i++)
        free(keys[i]);
    free(keys);
    free(ns);
    handle_free(c);
    return misses ? 1 : 0;
}

#endif
