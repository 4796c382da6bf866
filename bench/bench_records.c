/* bench_records: audit append throughput of the records store on SQLite
 * (src/records/records_sqlite.c), the write the API server makes for every
 * mutation request before applying it.
 *
 *   bench_records [--seconds T] [--threads 1,4,16,64] [--dir DIR] [--no-finish]
 *
 * For each thread count, a fresh database <dir>/bench-<threads>.db (dir: a
 * new mkdtemp under /tmp unless given; removed at the end) and that many
 * threads, each looping records_audit_append then records_audit_finish
 * (as a request does: the row first, its status when it completed) for T
 * seconds (default 3). Prints appends/s per thread count and the median
 * append latency; the last line of stdout is one JSON object with the
 * same. Any failed call fails the run (exit status 3): a fail-closed caller
 * would have refused that mutation.
 *
 * The numbers measure this machine's fsync as much as the code: every
 * commit is synced (synchronous=FULL). */
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"
#include "records/records.h"

#define MAX_RUNS 16
#define MAX_THREADS 1024
#define LAT_SAMPLES 4096 /* per thread: the first ones, enough for a median */

typedef struct opts {
    double seconds;
    size_t threads[MAX_RUNS];
    size_t nruns;
    const char *dir;
    int finish;
} opts;

typedef struct worker {
    records *r;
    int id;
    const atomic_int *stop;
    uint64_t appends;
    int failed;
    double *lat_us; /* LAT_SAMPLES */
    size_t nlat;
} worker;

static void usage(const char *argv0)
{
    fprintf(stderr, "usage: %s [--seconds T] [--threads N,N,...] [--dir DIR] [--no-finish]\n",
            argv0);
    exit(2);
}

static opts parse_args(int argc, char **argv)
{
    opts o = {.seconds = 3, .threads = {1, 4, 16, 64}, .nruns = 4, .finish = 1};
    static const struct option longopts[] = {{"seconds", required_argument, NULL, 's'},
                                             {"threads", required_argument, NULL, 't'},
                                             {"dir", required_argument, NULL, 'd'},
                                             {"no-finish", no_argument, NULL, 'n'},
                                             {NULL, 0, NULL, 0}};
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
                char *end;
                unsigned long v = strtoul(tok, &end, 10);
                if (*end != '\0' || v == 0 || v > MAX_THREADS || o.nruns == MAX_RUNS)
                    usage(argv[0]);
                o.threads[o.nruns++] = v;
            }
            if (o.nruns == 0)
                usage(argv[0]);
            break;
        }
        case 'd':
            o.dir = optarg;
            break;
        case 'n':
            o.finish = 0;
            break;
        default:
            usage(argv[0]);
        }
    }
    return o;
}

static int finish_too = 1;

static void *worker_main(void *arg)
{
    worker *w = arg;
    char principal[32], target[32];
    snprintf(principal, sizeof(principal), "bench-%d", w->id);
    while (!atomic_load_explicit(w->stop, memory_order_relaxed)) {
        snprintf(target, sizeof(target), "app/%llu", (unsigned long long)w->appends);
        audit_row row = {.time_ms = (int64_t)(bench_now_ns() / 1000000),
                         .principal = principal,
                         .roles = "sm-admin",
                         .auth_method = "api_key",
                         .peer = "127.0.0.1:40000",
                         .method = "PUT",
                         .route = "/v1/kv/{key*}",
                         .action = "kv.put",
                         .target = target,
                         .correlation_id = "bench"};
        int64_t id = 0;
        errdetail e = {0};
        uint64_t t0 = bench_now_ns();
        int rc = records_audit_append(w->r, &row, &id, &e);
        uint64_t t1 = bench_now_ns();
        if (rc == 0 && finish_too)
            rc = records_audit_finish(w->r, id, 200, &e);
        if (rc != 0) {
            fprintf(stderr, "bench_records: thread %d: %s\n", w->id, e.message);
            w->failed = 1;
            return NULL;
        }
        if (w->nlat < LAT_SAMPLES)
            w->lat_us[w->nlat++] = (double)(t1 - t0) / 1e3;
        w->appends++;
    }
    return NULL;
}

typedef struct result {
    size_t threads;
    double appends_per_s, median_us;
} result;

/* One run: n threads on a fresh database in dir for o->seconds. */
static int run_one(const opts *o, const char *dir, size_t n, result *out)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/bench-%zu.db", dir, n);
    records *r = NULL;
    errdetail e = {0};
    if (records_open_sqlite(path, &r, &e) != 0) {
        fprintf(stderr, "bench_records: %s\n", e.message);
        return -1;
    }
    worker *w = calloc(n, sizeof(*w));
    pthread_t *th = calloc(n, sizeof(*th));
    double *lat = calloc(n * LAT_SAMPLES, sizeof(*lat));
    if (!w || !th || !lat) {
        fprintf(stderr, "bench_records: out of memory\n");
        exit(1);
    }
    atomic_int stop = 0;
    uint64_t t0 = bench_now_ns();
    for (size_t i = 0; i < n; i++) {
        w[i] = (worker){.r = r, .id = (int)i, .stop = &stop, .lat_us = lat + i * LAT_SAMPLES};
        if (pthread_create(&th[i], NULL, worker_main, &w[i]) != 0) {
            fprintf(stderr, "bench_records: pthread_create failed\n");
            exit(1);
        }
    }
    bench_sleep_until_ns(t0 + (uint64_t)(o->seconds * 1e9));
    atomic_store(&stop, 1);
    uint64_t total = 0;
    int failed = 0;
    size_t nlat = 0;
    for (size_t i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        total += w[i].appends;
        failed |= w[i].failed;
        memmove(lat + nlat, w[i].lat_us, w[i].nlat * sizeof(*lat));
        nlat += w[i].nlat;
    }
    double dt = (double)(bench_now_ns() - t0) / 1e9;
    records_close(r);
    qsort(lat, nlat, sizeof(*lat), bench_cmp_double);
    *out = (result){
        .threads = n, .appends_per_s = (double)total / dt, .median_us = nlat ? lat[nlat / 2] : 0};
    printf("threads %3zu: %9.0f appends/s  (%llu in %.2f s, median append %.0f us)\n", n,
           out->appends_per_s, (unsigned long long)total, dt, out->median_us);
    fflush(stdout);
    free(lat);
    free(th);
    free(w);
    return failed ? -1 : 0;
}

int main(int argc, char **argv)
{
    opts o = parse_args(argc, argv);
    finish_too = o.finish;
    char tmp[64] = "/tmp/citrus-bench-records-XXXXXX";
    const char *dir = o.dir;
    if (!dir) {
        if (!mkdtemp(tmp)) {
            perror("bench_records: mkdtemp");
            return 1;
        }
        dir = tmp;
    }
    printf("records store (sqlite) in %s: append%s, %.1f s per run\n", dir,
           o.finish ? " + finish" : "", o.seconds);
    result res[MAX_RUNS];
    int failed = 0;
    for (size_t i = 0; i < o.nruns && !failed; i++)
        failed = run_one(&o, dir, o.threads[i], &res[i]) != 0;
    if (!o.dir) { /* the files run_one made, then the dir */
        for (size_t i = 0; i < o.nruns; i++) {
            static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
            for (size_t k = 0; k < sizeof(suffix) / sizeof(suffix[0]); k++) {
                char path[128];
                snprintf(path, sizeof(path), "%s/bench-%zu.db%s", tmp, o.threads[i], suffix[k]);
                unlink(path);
            }
        }
        if (rmdir(tmp) != 0)
            fprintf(stderr, "bench_records: could not remove %s\n", tmp);
    }
    if (failed) {
        printf("RESULT FAILED\n");
        return 3;
    }
    printf("{\"backend\":\"sqlite\",\"finish\":%s,\"seconds\":%.1f,\"runs\":[",
           o.finish ? "true" : "false", o.seconds);
    for (size_t i = 0; i < o.nruns; i++)
        printf("%s{\"threads\":%zu,\"appends_per_s\":%.0f,\"median_append_us\":%.0f}", i ? "," : "",
               res[i].threads, res[i].appends_per_s, res[i].median_us);
    printf("]}\n");
    return 0;
}
