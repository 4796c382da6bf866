/* drvbench: one statement run N times through the shard driver on one connection, with
 * and without the statement cache (drv_set_statement_cache), in one process: what keeping
 * a prepared statement saves per run, without the router's HTTP hop around it.
 *
 *   drvbench --dsn DSN [--sql SQL] [--n N] [--rounds R] [--cache C]
 *
 * The statement (default: SELECT value FROM kv WHERE key = $1) takes one text parameter;
 * for the key it cycles through key-0..key-999, which --setup (SQLite only) creates in a
 * kv(key, value) table of a new file. Each round runs N statements uncached then N cached
 * (C statements kept, default 256) on a fresh connection each and prints ns per statement;
 * the medians come last. Every statement must return exactly one row. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "dbconn/driver.h"

static const char *dsn, *sql = "SELECT value FROM kv WHERE key = $1";
static long n = 200000, rounds = 5, cache = 256;

static double run(size_t keep)
{
    drv_conn *c = NULL;
    errdetail e;
    if (drv_open(dsn, NULL, &c, &e) != 0) {
        fprintf(stderr, "drvbench: %s: %s\n", dsn, e.message);
        exit(1);
    }
    drv_set_statement_cache(c, keep);
    char key[32];
    uint64_t t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "key-%ld", i % 1000);
        value p = val_text(key, strlen(key));
        result_set rs;
        rs_init(&rs);
        int rc = drv_exec(c, sql, &p, 1, 0, &rs, NULL, NULL, &e);
        if (rc != 0 || rs.nrows != 1) {
            fprintf(stderr, "drvbench: run %ld: rc %d, %zu rows: %s\n", i, rc, rs.nrows, e.message);
            exit(1);
        }
        rs_free(&rs);
        val_free(&p);
    }
    double ns = (double)(bench_now_ns() - t0) / (double)n;
    drv_close(c);
    return ns;
}

static void setup(void)
{
    drv_conn *c = NULL;
    errdetail e;
    if (drv_open(dsn, &(drv_options){.create = true}, &c, &e) != 0 ||
        drv_exec(c, "CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT)", NULL, 0, 0, NULL, NULL,
                 NULL, &e) != 0) {
        fprintf(stderr, "drvbench: setup: %s\n", e.message);
        exit(1);
    }
    for (int i = 0; i < 1000; i++) {
        char k[32], v[48];
        snprintf(k, sizeof(k), "key-%d", i);
        snprintf(v, sizeof(v), "value-of-key-%d", i);
        value p[2] = {val_text(k, strlen(k)), val_text(v, strlen(v))};
        if (drv_exec(c, "INSERT INTO kv VALUES ($1, $2)", p, 2, 0, NULL, NULL, NULL, &e) != 0) {
            fprintf(stderr, "drvbench: setup: %s\n", e.message);
            exit(1);
        }
        val_free(&p[0]);
        val_free(&p[1]);
    }
    drv_close(c);
}

int main(int argc, char **argv)
{
    bool do_setup = false;
    static const struct option opts[] = {{"dsn", required_argument, NULL, 'd'},
                                         {"sql", required_argument, NULL, 's'},
                                         {"n", required_argument, NULL, 'n'},
                                         {"rounds", required_argument, NULL, 'r'},
                                         {"cache", required_argument, NULL, 'c'},
                                         {"setup", no_argument, NULL, 'S'},
                                         {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'd':
            dsn = optarg;
            break;
        case 's':
            sql = optarg;
            break;
        case 'n':
            n = atol(optarg);
            break;
        case 'r':
            rounds = atol(optarg);
            break;
        case 'c':
            cache = atol(optarg);
            break;
        case 'S':
            do_setup = true;
            break;
        default:
            fprintf(stderr, "usage: drvbench --dsn DSN [--setup] [--sql SQL] [--n N] "
                            "[--rounds R] [--cache C]\n");
            return 2;
        }
    }
    if (!dsn || n < 1 || rounds < 1 || rounds > 99 || cache < 1) {
        fprintf(stderr, "drvbench: --dsn is required; n, rounds (<= 99), cache >= 1\n");
        return 2;
    }
    if (do_setup)
        setup();
    double off[99], on[99];
    for (long r = 0; r < rounds; r++) {
        off[r] = run(0);
        on[r] = run((size_t)cache);
        printf("round %ld  uncached %.0f ns/statement  cached %.0f ns/statement\n", r + 1, off[r],
               on[r]);
    }
    qsort(off, (size_t)rounds, sizeof(double), bench_cmp_double);
    qsort(on, (size_t)rounds, sizeof(double), bench_cmp_double);
    double mo = off[rounds / 2], mc = on[rounds / 2];
    printf("median  uncached %.0f ns  cached %.0f ns  saved %.0f ns per statement (%.0f %%)\n", mo,
           mc, mo - mc, 100.0 * (mo - mc) / mo);
    return 0;
}
