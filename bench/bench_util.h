/* bench/bench_util.h — what the benchmark programs share: the clock, a
 * fixed pseudo-random sequence, sorting doubles, and CPU accounting read
 * from /proc. Header-only (static functions): each bench program stays a
 * single source file. */
#ifndef CITRUS_BENCH_UTIL_H
#define CITRUS_BENCH_UTIL_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* CLOCK_MONOTONIC in nanoseconds, and in seconds. */
static inline uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline double bench_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Sleeps until the CLOCK_MONOTONIC time deadline (ns), through signals. */
static inline void bench_sleep_until_ns(uint64_t deadline)
{
    struct timespec ts = {.tv_sec = (time_t)(deadline / 1000000000ull),
                          .tv_nsec = (long)(deadline % 1000000000ull)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

/* xorshift64*: a fixed, fast sequence from the state *s (not 0). */
static inline uint64_t bench_xorshift(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1dull;
}

/* qsort comparison of doubles, ascending. */
static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Clock ticks per second, the unit of /proc's CPU times. */
static inline double bench_clk_tck(void)
{
    long t = sysconf(_SC_CLK_TCK);
    return t > 0 ? (double)t : 100.0;
}

/* The first eight fields of /proc/stat's "cpu" line (user, nice, system,
 * idle, iowait, irq, softirq, steal), in ticks; -1 when unreadable. */
static inline int bench_proc_stat(unsigned long long v[8])
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return -1;
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    return n == 8 ? 0 : -1;
}

/* utime+stime (ticks) and, when ppid is not NULL, the parent of process
 * pid; -1 when it is gone. */
static inline long long bench_proc_ticks(int pid, int *ppid)
{
    char path[64], line[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long long out = -1;
    if (fgets(line, sizeof(line), f)) {
        /* Fields after the parenthesised command name: ppid is the 2nd,
         * utime the 12th, stime the 13th. */
        char *p = strrchr(line, ')');
        unsigned long long ut, st;
        int pp;
        if (p && sscanf(p + 2, "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &pp, &ut,
                        &st) == 3) {
            out = (long long)(ut + st);
            if (ppid)
                *ppid = pp;
        }
    }
    fclose(f);
    return out;
}

/* CPU seconds (user + system) this process has used. */
static inline double bench_self_cpu_s(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

#endif
