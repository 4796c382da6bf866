/* ringbench: lookup speed of the consistent-hash ring (core/ring.c).
 *
 * Builds a ring of --shards shards x --vnodes virtual nodes ("shard-0000"...,
 * tokens the candidates "<id>#<i>", i < vnodes, or with --alloc the tokens
 * ring_choose_tokens picks as the shards join one by one; docs/ring.md),
 * pre-generates --keys keys
 * "tenant-<n>" (n a random 32-bit number, so ~14-17 bytes), then times
 * ring_lookup (hash + binary search) over all of them, single-threaded, for
 * --runs runs. Prints each run, the median ns/key, the build time and the
 * ring's memory; the last line of stdout is one JSON object with the same.
 *
 * The numbers measure this machine's caches as much as the code: the token
 * array (8 bytes per vnode, 2 MiB at 1024 x 256) is searched with random
 * hashes, so most probes past the first levels miss L1.
 *
 * Needs citrus_internal. CITRUS_VERSION is defined by linking it (a PUBLIC
 * definition of that target), so without it this builds a stub that says
 * so instead of failing the whole build. By hand:
 *   gcc -O2 -DCITRUS_VERSION='"hand"' -I src -I include bench/ringbench.c \
 *       src/core/ring.c src/core/hash.c src/core/error.c -lmurmurhash -lxxhash -lm */
#include <stdio.h>
#include <stdlib.h>

#ifndef CITRUS_VERSION

int main(void)
{
    fprintf(stderr, "ringbench: built without citrus_internal (link it in CMakeLists.txt)\n");
    return 2;
}

#else

#include <getopt.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "citrus/errors.h"
#include "core/hash.h"
#include "core/ring.h"

typedef struct opts {
    size_t shards, vnodes, keys, runs;
    citrus_hash_fn fn;
    int alloc; /* --alloc: tokens chosen by ring_choose_tokens */
} opts;

/* Keys packed back to back; key i is buf[off[i] .. off[i + 1]). */
typedef struct keyset {
    char *buf;
    uint32_t *off;
    size_t n;
} keyset;

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s [--hash murmur3|xxhash64] [--shards N] [--vnodes V] [--keys K] "
            "[--runs R] [--alloc]\n",
            argv0);
    exit(2);
}

static size_t parse_size(const char *s, const char *argv0)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v == 0)
        usage(argv0);
    return (size_t)v;
}

static opts parse_args(int argc, char **argv)
{
    opts o = {1024, 256, 10000000, 5, CITRUS_HASH_MURMUR3, 0};
    static const struct option longopts[] = {{"hash", required_argument, NULL, 'h'},
                                             {"shards", required_argument, NULL, 's'},
                                             {"vnodes", required_argument, NULL, 'v'},
                                             {"keys", required_argument, NULL, 'k'},
                                             {"runs", required_argument, NULL, 'r'},
                                             {"alloc", no_argument, NULL, 'a'},
                                             {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            if (citrus_hash_parse(optarg, &o.fn) != 0)
                usage(argv[0]);
            break;
        case 's':
            o.shards = parse_size(optarg, argv[0]);
            break;
        case 'v':
            o.vnodes = parse_size(optarg, argv[0]);
            break;
        case 'k':
            o.keys = parse_size(optarg, argv[0]);
            break;
        case 'r':
            o.runs = parse_size(optarg, argv[0]);
            break;
        case 'a':
            o.alloc = 1;
            break;
        default:
            usage(argv[0]);
        }
    }
    if (o.keys > 200000000) /* key offsets are 32-bit */
        usage(argv[0]);
    return o;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "ringbench: out of memory\n");
        exit(1);
    }
    return p;
}

static keyset make_keys(size_t n)
{
    keyset k = {xmalloc(n * 18), xmalloc((n + 1) * sizeof(uint32_t)), n};
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        k.off[i] = (uint32_t)at;
        at += (size_t)sprintf(k.buf + at, "tenant-%u", (unsigned)(bench_xorshift(&seed) >> 32));
    }
    k.off[n] = (uint32_t)at;
    return k;
}

/* Shards "shard-0000".. with their vnode tokens; returns the build time.
 * With --alloc the shards join one at a time, each choosing its tokens with
 * ring_choose_tokens against the ring so far (as the registry does), which
 * takes a while for many shards (a ring_build per join). */
static double build_ring(const opts *o, ring **out)
{
    ring_owner *owners = xmalloc(o->shards * sizeof *owners);
    char(*ids)[32] = xmalloc(o->shards * sizeof *ids);
    uint64_t *tokens = xmalloc(o->shards * o->vnodes * sizeof *tokens);
    double t0 = bench_now_s();
    ring *cur = NULL;
    int rc = 0;
    for (size_t i = 0; i < o->shards && rc == 0; i++) {
        snprintf(ids[i], sizeof ids[i], "shard-%04zu", i);
        uint64_t *t = tokens + i * o->vnodes;
        if (o->alloc)
            rc = ring_choose_tokens(cur, NULL, o->fn, ids[i], 1.0, 0, o->vnodes, 0, t);
        else
            rc = ring_vnode_tokens(o->fn, ids[i], 0, o->vnodes, t);
        owners[i] = (ring_owner){ids[i], t, o->vnodes};
        if (rc == 0 && o->alloc && i + 1 < o->shards) {
            ring_free(cur);
            cur = NULL;
            rc = ring_build(o->fn, owners, i + 1, &cur);
        }
    }
    ring_free(cur);
    if (rc == 0)
        rc = ring_build(o->fn, owners, o->shards, out);
    double dt = bench_now_s() - t0;
    if (rc != 0) {
        fprintf(stderr, "ringbench: building the ring: %s\n", citrus_strerror(rc));
        exit(1);
    }
    free(tokens);
    free(ids);
    free(owners);
    return dt;
}

/* One pass over all keys; ns per key. sink keeps the work observable. */
static double run_lookups(const ring *r, const keyset *k, uint64_t *sink)
{
    ring_hit hit;
    uint64_t acc = 0;
    double t0 = bench_now_s();
    for (size_t i = 0; i < k->n; i++) {
        ring_lookup(r, k->buf + k->off[i], k->off[i + 1] - k->off[i], &hit);
        acc += hit.index;
    }
    double dt = bench_now_s() - t0;
    *sink += acc;
    return dt * 1e9 / (double)k->n;
}

/* Hashing alone, to split the lookup cost into hash and search. */
static double run_hashes(citrus_hash_fn fn, const keyset *k, uint64_t *sink)
{
    uint64_t acc = 0;
    double t0 = bench_now_s();
    for (size_t i = 0; i < k->n; i++)
        acc ^= citrus_hash(fn, k->buf + k->off[i], k->off[i + 1] - k->off[i]);
    double dt = bench_now_s() - t0;
    *sink += acc;
    return dt * 1e9 / (double)k->n;
}

static double median(const double *v, size_t n)
{
    double *s = xmalloc(n * sizeof *s);
    memcpy(s, v, n * sizeof *s);
    qsort(s, n, sizeof *s, bench_cmp_double);
    double m = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    free(s);
    return m;
}

int main(int argc, char **argv)
{
    opts o = parse_args(argc, argv);
    ring *r;
    double build_s = build_ring(&o, &r);
    keyset k = make_keys(o.keys);
    printf("ring: %zu shards x %zu vnodes = %zu tokens, %s, %s tokens, built in %.1f ms, %zu "
           "bytes\n",
           o.shards, o.vnodes, ring_size(r), citrus_hash_name(o.fn),
           o.alloc ? "allocated" : "candidate", build_s * 1e3, ring_memory(r));
    uint64_t sink = 0;
    run_lookups(r, &k, &sink); /* warm-up: page in the keys and the ring */
    double *ns = xmalloc(o.runs * sizeof *ns);
    for (size_t i = 0; i < o.runs; i++) {
        ns[i] = run_lookups(r, &k, &sink);
        printf("run %zu: %.1f ns/key (%zu keys)\n", i + 1, ns[i], o.keys);
    }
    double med = median(ns, o.runs);
    double hash_ns = run_hashes(o.fn, &k, &sink);
    printf("median: %.1f ns/key (hash alone: %.1f ns/key)\n", med, hash_ns);
    printf("{\"hash\":\"%s\",\"shards\":%zu,\"vnodes\":%zu,\"tokens\":%zu,\"allocated\":%s,"
           "\"keys\":%zu,\"runs_ns_per_key\":[",
           citrus_hash_name(o.fn), o.shards, o.vnodes, ring_size(r), o.alloc ? "true" : "false",
           o.keys);
    for (size_t i = 0; i < o.runs; i++)
        printf("%s%.2f", i ? "," : "", ns[i]);
    printf("],\"median_ns_per_key\":%.2f,\"hash_ns_per_key\":%.2f,\"build_ms\":%.2f,"
           "\"ring_bytes\":%zu,\"sink\":%llu}\n",
           med, hash_ns, build_s * 1e3, ring_memory(r), (unsigned long long)(sink & 1));
    free(ns);
    free(k.buf);
    free(k.off);
    ring_free(r);
    return 0;
}

#endif
