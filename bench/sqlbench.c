/* sqlbench: closed-loop select-by-key load generator for the router benchmark (issue 5,
 * DESIGN §8): the same statement on the same shard databases, either directly over libpq
 * (to PostgreSQL itself, or to PgBouncer in front of it) or through the Citrus router's
 * POST /v1/query.
 *
 *   sqlbench --target pq     --keys-file F --dsn SHARD=DSN ... [--conns N] [--duration S]
 *   sqlbench --target router --keys-file F --url http://HOST:PORT [--conns N] ...
 *
 * The keys file has one line per key: "key<TAB>shard_id<TAB>value", the row the key's
 * shard database holds in table kv(key text primary key, value text). Every request picks a
 * key uniformly at random (fixed seed per connection) and runs
 *     SELECT value FROM kv WHERE key = $1
 * with the key bound as $1: in pq mode with PQexecParams (unnamed statement, text
 * parameter of unspecified type: parsed and planned by the server every time) on the
 * connection to the key's shard database, or with --prepared as a named statement
 * prepared once per connection (PQprepare, then PQexecPrepared: what the router's driver
 * does with its statement cache, see src/dbconn/driver_pg.c); in router mode as
 * {"key": K, "sql": ..., "params": [K]} over an HTTP/1.1 keep-alive connection (raw
 * socket, blocking I/O). Every answer is checked: exactly one row with the key's value
 * (router: status 200, row_count 1, the key's shard_id and value in the body). Anything
 * else is an error; a run with any error (warm-up included) prints RESULT FAILED and
 * exits with status 3.
 *
 * One thread per connection; in pq mode each thread holds one connection per shard
 * database (as an application that talks to its shards directly would), and each request
 * uses one of them. Only requests started inside the measured window (after the warm-up)
 * count. Latency is send-to-last-byte per request (CLOCK_MONOTONIC), kept exactly (sorted
 * at the end). CPU over the window: the machine (/proc/stat), this client (getrusage),
 * and processes named with --cpu NAME=PID (the process) or --cpu-tree NAME=PID (the
 * process and its direct children: a postmaster and its backends).
 *
 * The last line of stdout is one JSON object with the results.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <libpq-fe.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

#define MAX_SHARDS 64
#define MAX_CPU 8
#define MAX_FIELD 256
#define RESP_MAX (1 << 20)
#define SQL_DEFAULT "SELECT value FROM kv WHERE key = $1"

enum target { TARGET_PQ, TARGET_ROUTER };

struct key {
    char *key;
    char *value;
    int shard; /* index into shard_ids */
    char *req; /* router: the whole HTTP request */
    size_t req_len;
    char *want_shard; /* router: "\"shard_id\":\"<id>\"" */
    char *want_value; /* router: "[\"<value>\"]" */
};

struct cpu_watch {
    char name[32];
    int pid;
    int tree; /* also its direct children */
};

static struct {
    enum target target;
    const char *label;
    int conns;
    double duration, warmup, timeout;
    uint64_t seed;
    const char *keys_file;
    const char *sql;
    char host[256], port[16], host_hdr[300];
    char *shard_ids[MAX_SHARDS];
    char *shard_dsn[MAX_SHARDS];
    int nshards;
    struct cpu_watch cpu[MAX_CPU];
    int ncpu;
    int quiet;
    int prepared; /* pq mode: PQprepare once per connection, then PQexecPrepared */
} cfg = {.conns = 1, .duration = 10, .warmup = 2, .timeout = 10, .seed = 42, .sql = SQL_DEFAULT};

static struct key *keys;
static size_t nkeys;
static struct addrinfo *router_addr;

static uint64_t rng_next(uint64_t *s)
{
    /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* ---------------------------------------------------------------- workers */

struct worker {
    int id;
    pthread_t th;
    uint64_t rng;
    /* pq */
    PGconn *pg[MAX_SHARDS];
    /* router */
    int fd;
    char *buf;
    size_t cap;
    /* results */
    uint64_t *lat; /* measured latencies, ns */
    size_t nlat, latcap;
    uint64_t errors, warm_ops, warm_errors;
    char first_error[256];
    int setup_failed;
};

static struct worker *workers;
static pthread_barrier_t ready;
static _Atomic uint64_t t_start, t_end; /* measured window */

static void worker_error(struct worker *w, const char *fmt, const char *detail)
{
    if (!w->first_error[0])
        snprintf(w->first_error, sizeof(w->first_error), "%s%s", fmt, detail ? detail : "");
}

static int router_connect(struct worker *w)
{
    if (w->fd >= 0)
        close(w->fd);
    w->fd = socket(router_addr->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (w->fd < 0)
        return -1;
    int one = 1;
    setsockopt(w->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct timeval tv = {.tv_sec = (time_t)cfg.timeout,
                         .tv_usec =
                             (suseconds_t)((cfg.timeout - (double)(time_t)cfg.timeout) * 1e6)};
    setsockopt(w->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(w->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(w->fd, router_addr->ai_addr, router_addr->ai_addrlen) < 0) {
        close(w->fd);
        w->fd = -1;
        return -1;
    }
    return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Finds a header's value in the header block [h, end). */
static const char *header_value(const char *h, const char *end, const char *name, size_t *len)
{
    size_t nl = strlen(name);
    for (const char *line = h; line < end;) {
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol)
            eol = end;
        if ((size_t)(eol - line) > nl && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            const char *ve = eol;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' '))
                ve--;
            *len = (size_t)(ve - v);
            return v;
        }
        line = eol + 1;
    }
    return NULL;
}

/* Reads more into w->buf (at *have). 0, or -1 on EOF, error or timeout. */
static int read_more(struct worker *w, size_t *have)
{
    if (*have + 4096 > w->cap) {
        if (w->cap >= RESP_MAX)
            return -1;
        w->cap *= 2;
        char *nb = realloc(w->buf, w->cap);
        if (!nb)
            return -1;
        w->buf = nb;
    }
    for (;;) {
        ssize_t k = recv(w->fd, w->buf + *have, w->cap - *have - 1, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        *have += (size_t)k;
        w->buf[*have] = '\0';
        return 0;
    }
}

/* One POST /v1/query on the keep-alive connection; checks the answer. 0 or -1. */
static int router_request(struct worker *w, const struct key *k)
{
    if (w->fd < 0 && router_connect(w) < 0) {
        worker_error(w, "connect: ", strerror(errno));
        return -1;
    }
    w->buf[0] = '\0';
    if (write_all(w->fd, k->req, k->req_len) < 0) {
        worker_error(w, "send: ", strerror(errno));
        goto broken;
    }
    size_t have = 0;
    char *hend = NULL;
    while (!(hend = strstr(w->buf, "\r\n\r\n"))) {
        if (read_more(w, &have) < 0) {
            worker_error(w, "reading the response headers: ", have ? "short" : "EOF/timeout");
            goto broken;
        }
    }
    if (have < 12 || strncmp(w->buf, "HTTP/1.1 ", 9) != 0) {
        worker_error(w, "not an HTTP/1.1 response", NULL);
        goto broken;
    }
    int status = atoi(w->buf + 9);
    size_t hlen = (size_t)(hend - w->buf) + 4, vlen = 0;
    const char *cl = header_value(w->buf, hend, "Content-Length", &vlen);
    size_t te_len = 0;
    const char *te = header_value(w->buf, hend, "Transfer-Encoding", &te_len);
    size_t conn_len = 0;
    const char *connh = header_value(w->buf, hend, "Connection", &conn_len);
    bool close_after = connh && conn_len == 5 && strncasecmp(connh, "close", 5) == 0;
    const char *body;
    size_t blen;
    if (cl) {
        blen = (size_t)strtoull(cl, NULL, 10);
        while (have < hlen + blen)
            if (read_more(w, &have) < 0) {
                worker_error(w, "reading the response body: ", "short");
                goto broken;
            }
        body = w->buf + hlen;
    } else if (te && te_len >= 7 && strncasecmp(te, "chunked", 7) == 0) {
        /* decode in place after the headers */
        size_t rd = hlen, wr = hlen;
        for (;;) {
            char *eol;
            while (!(eol = strstr(w->buf + rd, "\r\n")))
                if (read_more(w, &have) < 0)
                    goto short_chunk;
            size_t n = (size_t)strtoull(w->buf + rd, NULL, 16);
            size_t data = (size_t)(eol - w->buf) + 2;
            while (have < data + n + 2)
                if (read_more(w, &have) < 0)
                    goto short_chunk;
            if (n == 0) {
                /* trailers: up to the empty line */
                while (!strstr(w->buf + data, "\r\n") || (strncmp(w->buf + data, "\r\n", 2) != 0 &&
                                                          !strstr(w->buf + data, "\r\n\r\n")))
                    if (read_more(w, &have) < 0)
                        goto short_chunk;
                break;
            }
            memmove(w->buf + wr, w->buf + data, n);
            wr += n;
            rd = data + n + 2;
        }
        w->buf[wr] = '\0';
        body = w->buf + hlen;
        blen = wr - hlen;
    } else {
        worker_error(w, "response without Content-Length or chunked body", NULL);
        goto broken;
    }
    /* a NUL-terminated copy of the body is not needed: checks are bounded by blen */
    char save = w->buf[hlen + blen];
    w->buf[hlen + blen] = '\0';
    int ok = status == 200 && strstr(body, "\"row_count\":1") && strstr(body, k->want_shard) &&
             strstr(body, k->want_value);
    if (!ok) {
        char detail[200];
        snprintf(detail, sizeof(detail), "status %d, key %s: %.150s", status, k->key, body);
        worker_error(w, "wrong answer: ", detail);
    }
    w->buf[hlen + blen] = save;
    if (close_after) {
        close(w->fd);
        w->fd = -1;
    }
    return ok ? 0 : -1;
short_chunk:
    worker_error(w, "reading a chunked body: ", "short");
broken:
    close(w->fd);
    w->fd = -1;
    return -1;
}

/* One PQexecParams (or PQexecPrepared) on the key's shard; checks the answer. 0 or -1. */
static int pq_request(struct worker *w, const struct key *k)
{
    PGconn *c = w->pg[k->shard];
    const char *params[1] = {k->key};
    PGresult *r = cfg.prepared ? PQexecPrepared(c, "q", 1, params, NULL, NULL, 0)
                               : PQexecParams(c, cfg.sql, 1, NULL, params, NULL, NULL, 0);
    int ok = r && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && PQnfields(r) == 1 &&
             strcmp(PQgetvalue(r, 0, 0), k->value) == 0;
    if (!ok) {
        char detail[200];
        snprintf(detail, sizeof(detail), "key %s: %s %s", k->key,
                 r ? PQresStatus(PQresultStatus(r)) : "no result",
                 r && PQresultStatus(r) == PGRES_TUPLES_OK ? "(wrong rows)" : PQerrorMessage(c));
        worker_error(w, "wrong answer: ", detail);
        if (PQstatus(c) != CONNECTION_OK)
            PQreset(c);
    }
    PQclear(r);
    return ok ? 0 : -1;
}

static int worker_setup(struct worker *w)
{
    if (cfg.target == TARGET_ROUTER) {
        w->cap = 16384;
        w->buf = malloc(w->cap);
        if (!w->buf)
            return -1;
        w->buf[0] = '\0';
        if (router_connect(w) < 0) {
            worker_error(w, "connect to the router: ", strerror(errno));
            return -1;
        }
        return 0;
    }
    for (int i = 0; i < cfg.nshards; i++) {
        w->pg[i] = PQconnectdb(cfg.shard_dsn[i]);
        if (PQstatus(w->pg[i]) != CONNECTION_OK) {
            worker_error(w, "connect: ", PQerrorMessage(w->pg[i]));
            return -1;
        }
        if (cfg.prepared) {
            PGresult *r = PQprepare(w->pg[i], "q", cfg.sql, 1, NULL);
            int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
            PQclear(r);
            if (!ok) {
                worker_error(w, "prepare: ", PQerrorMessage(w->pg[i]));
                return -1;
            }
        }
    }
    return 0;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    w->setup_failed = worker_setup(w) < 0;
    pthread_barrier_wait(&ready); /* main sets the window */
    pthread_barrier_wait(&ready);
    if (w->setup_failed)
        return NULL;
    uint64_t start = atomic_load(&t_start), end = atomic_load(&t_end);
    for (;;) {
        uint64_t t0 = bench_now_ns();
        if (t0 >= end)
            break;
        const struct key *k = &keys[rng_next(&w->rng) % nkeys];
        int rc = cfg.target == TARGET_PQ ? pq_request(w, k) : router_request(w, k);
        uint64_t t1 = bench_now_ns();
        if (t0 < start) {
            w->warm_ops++;
            w->warm_errors += rc != 0;
            continue;
        }
        if (rc != 0) {
            w->errors++;
            continue;
        }
        if (w->nlat == w->latcap) {
            size_t cap = w->latcap ? w->latcap * 2 : 65536;
            uint64_t *v = realloc(w->lat, cap * sizeof(*v));
            if (!v) {
                w->errors++;
                continue;
            }
            w->lat = v;
            w->latcap = cap;
        }
        w->lat[w->nlat++] = t1 - t0;
    }
    return NULL;
}

/* ---------------------------------------------------------------- CPU */

#define MAX_TRACKED 4096

struct proc_tick {
    int pid;
    long long ticks;
};

struct cpu_sample {
    double machine_busy, machine_total, client;
    struct proc_tick procs[MAX_CPU][MAX_TRACKED]; /* per watch: the process (and children) */
    int nprocs[MAX_CPU];
};

static void cpu_take(struct cpu_sample *s)
{
    unsigned long long v[8];
    s->machine_busy = s->machine_total = 0;
    if (bench_proc_stat(v) == 0) {
        s->machine_busy = (double)(v[0] + v[1] + v[2] + v[5] + v[6]) / bench_clk_tck();
        s->machine_total =
            (double)(v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7]) / bench_clk_tck();
    }
    s->client = bench_self_cpu_s();
    for (int i = 0; i < cfg.ncpu; i++) {
        s->nprocs[i] = 0;
        long long t = bench_proc_ticks(cfg.cpu[i].pid, NULL);
        if (t >= 0)
            s->procs[i][s->nprocs[i]++] = (struct proc_tick){cfg.cpu[i].pid, t};
    }
    int any_tree = 0;
    for (int i = 0; i < cfg.ncpu; i++)
        any_tree |= cfg.cpu[i].tree;
    if (!any_tree)
        return;
    DIR *d = opendir("/proc");
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        if (!isdigit((unsigned char)de->d_name[0]))
            continue;
        int pid = atoi(de->d_name), ppid = 0;
        long long t = bench_proc_ticks(pid, &ppid);
        if (t < 0)
            continue;
        for (int i = 0; i < cfg.ncpu; i++)
            if (cfg.cpu[i].tree && ppid == cfg.cpu[i].pid && s->nprocs[i] < MAX_TRACKED)
                s->procs[i][s->nprocs[i]++] = (struct proc_tick){pid, t};
    }
    if (d)
        closedir(d);
}

/* CPU seconds of watch i between a and b (processes new in b count from 0). */
static double cpu_watch_diff(const struct cpu_sample *a, const struct cpu_sample *b, int i)
{
    long long sum = 0;
    for (int j = 0; j < b->nprocs[i]; j++) {
        long long before = 0;
        for (int k = 0; k < a->nprocs[i]; k++)
            if (a->procs[i][k].pid == b->procs[i][j].pid)
                before = a->procs[i][k].ticks;
        if (b->procs[i][j].ticks > before)
            sum += b->procs[i][j].ticks - before;
    }
    return (double)sum / bench_clk_tck();
}

/* ---------------------------------------------------------------- setup */

static char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (!p) {
        fprintf(stderr, "sqlbench: out of memory\n");
        exit(2);
    }
    return p;
}

/* JSON string body of s (keys and values are plain here, but escape anyway). */
static void json_escape(const char *s, char *out, size_t cap)
{
    size_t o = 0;
    for (; *s && o + 7 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            out[o++] = '\\';
            out[o++] = (char)ch;
        } else if (ch < 0x20) {
            o += (size_t)snprintf(out + o, cap - o, "\\u%04x", ch);
        } else {
            out[o++] = (char)ch;
        }
    }
    out[o] = '\0';
}

static int shard_index(const char *id, int add)
{
    for (int i = 0; i < cfg.nshards; i++)
        if (strcmp(cfg.shard_ids[i], id) == 0)
            return i;
    if (!add || cfg.nshards == MAX_SHARDS)
        return -1;
    cfg.shard_ids[cfg.nshards] = xstrdup(id);
    cfg.shard_dsn[cfg.nshards] = NULL;
    return cfg.nshards++;
}

static void build_router_request(struct key *k)
{
    char ek[2 * MAX_FIELD], ev[2 * MAX_FIELD], es[2 * MAX_FIELD], esql[1024], body[4096];
    json_escape(k->key, ek, sizeof(ek));
    json_escape(k->value, ev, sizeof(ev));
    json_escape(cfg.shard_ids[k->shard], es, sizeof(es));
    json_escape(cfg.sql, esql, sizeof(esql));
    int bl = snprintf(body, sizeof(body), "{\"key\":\"%s\",\"sql\":\"%s\",\"params\":[\"%s\"]}", ek,
                      esql, ek);
    char req[8192];
    int rl = snprintf(req, sizeof(req),
                      "POST /v1/query HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                      "Content-Length: %d\r\n\r\n%s",
                      cfg.host_hdr, bl, body);
    k->req = xstrdup(req);
    k->req_len = (size_t)rl;
    char tmp[3 * MAX_FIELD];
    snprintf(tmp, sizeof(tmp), "\"shard_id\":\"%s\"", es);
    k->want_shard = xstrdup(tmp);
    snprintf(tmp, sizeof(tmp), "[\"%s\"]", ev);
    k->want_value = xstrdup(tmp);
}

static int load_keys(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "sqlbench: %s: %s\n", path, strerror(errno));
        return -1;
    }
    char line[3 * MAX_FIELD + 8];
    size_t cap = 0;
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (!line[0])
            continue;
        char *t1 = strchr(line, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
        if (!t2 || t1 - line >= MAX_FIELD || t2 - t1 > MAX_FIELD || strlen(t2 + 1) >= MAX_FIELD) {
            fprintf(stderr, "sqlbench: %s: want key<TAB>shard_id<TAB>value: %.80s\n", path, line);
            fclose(f);
            return -1;
        }
        *t1 = *t2 = '\0';
        if (nkeys == cap) {
            cap = cap ? cap * 2 : 1024;
            struct key *v = realloc(keys, cap * sizeof(*v));
            if (!v) {
                fclose(f);
                return -1;
            }
            keys = v;
        }
        int s = shard_index(t1 + 1, 1);
        if (s < 0) {
            fprintf(stderr, "sqlbench: more than %d shards\n", MAX_SHARDS);
            fclose(f);
            return -1;
        }
        keys[nkeys++] = (struct key){.key = xstrdup(line), .value = xstrdup(t2 + 1), .shard = s};
    }
    fclose(f);
    if (nkeys == 0) {
        fprintf(stderr, "sqlbench: %s: no keys\n", path);
        return -1;
    }
    return 0;
}

static int parse_url(const char *url)
{
    if (strncmp(url, "http://", 7) != 0)
        return -1;
    const char *h = url + 7;
    size_t hl = strcspn(h, "/");
    if (hl == 0 || hl >= sizeof(cfg.host_hdr))
        return -1;
    memcpy(cfg.host_hdr, h, hl);
    cfg.host_hdr[hl] = '\0';
    const char *colon = strrchr(cfg.host_hdr, ':');
    size_t nl = colon ? (size_t)(colon - cfg.host_hdr) : hl;
    if (nl == 0 || nl >= sizeof(cfg.host))
        return -1;
    memcpy(cfg.host, cfg.host_hdr, nl);
    cfg.host[nl] = '\0';
    snprintf(cfg.port, sizeof(cfg.port), "%s", colon ? colon + 1 : "80");
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int rc = getaddrinfo(cfg.host, cfg.port, &hints, &router_addr);
    if (rc != 0) {
        fprintf(stderr, "sqlbench: %s: %s\n", url, gai_strerror(rc));
        return -1;
    }
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: sqlbench --target pq|router --keys-file FILE [options]\n"
            "  --keys-file FILE     lines key<TAB>shard_id<TAB>value (the row of the key)\n"
            "  --dsn SHARD=DSN      pq: libpq connection string of a shard (repeat per shard)\n"
            "  --url URL            router: http://HOST:PORT of the router\n"
            "  --conns N            connections, one thread each (default 1)\n"
            "  --duration S         measured seconds (default 10)\n"
            "  --warmup S           seconds before the measured window (default 2)\n"
            "  --timeout S          per request, router mode (default 10)\n"
            "  --sql SQL            statement, $1 = key (default \"%s\")\n"
            "  --seed N             key choice seed (default 42; connection i uses seed+i)\n"
            "  --cpu NAME=PID       report the CPU of a process over the window\n"
            "  --cpu-tree NAME=PID  the same, with its direct children (postmaster)\n"
            "  --label L            name of the run in the output\n"
            "  --prepared           pq mode: a named statement prepared once per connection\n"
            "  --quiet              only the JSON line\n",
            SQL_DEFAULT);
}

static int add_cpu(const char *arg, int tree)
{
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg || (size_t)(eq - arg) >= sizeof(cfg.cpu[0].name) || cfg.ncpu == MAX_CPU ||
        atoi(eq + 1) <= 0)
        return -1;
    struct cpu_watch *c = &cfg.cpu[cfg.ncpu++];
    memcpy(c->name, arg, (size_t)(eq - arg));
    c->name[eq - arg] = '\0';
    c->pid = atoi(eq + 1);
    c->tree = tree;
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct_us(const uint64_t *v, size_t n, double q)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return (double)v[i] / 1000.0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"target", required_argument, NULL, 't'},
                                         {"keys-file", required_argument, NULL, 'k'},
                                         {"dsn", required_argument, NULL, 'D'},
                                         {"url", required_argument, NULL, 'u'},
                                         {"conns", required_argument, NULL, 'c'},
                                         {"duration", required_argument, NULL, 'd'},
                                         {"warmup", required_argument, NULL, 'w'},
                                         {"timeout", required_argument, NULL, 'T'},
                                         {"sql", required_argument, NULL, 's'},
                                         {"seed", required_argument, NULL, 'S'},
                                         {"cpu", required_argument, NULL, 'p'},
                                         {"cpu-tree", required_argument, NULL, 'P'},
                                         {"label", required_argument, NULL, 'l'},
                                         {"quiet", no_argument, NULL, 'q'},
                                         {"prepared", no_argument, NULL, 'R'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *url = NULL, *target = NULL;
    const char *dsn_args[MAX_SHARDS];
    int ndsn = 0, o;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 't':
            target = optarg;
            break;
        case 'k':
            cfg.keys_file = optarg;
            break;
        case 'D':
            if (ndsn == MAX_SHARDS || !strchr(optarg, '=')) {
                fprintf(stderr, "sqlbench: --dsn SHARD=DSN\n");
                return 2;
            }
            dsn_args[ndsn++] = optarg;
            break;
        case 'u':
            url = optarg;
            break;
        case 'c':
            cfg.conns = atoi(optarg);
            break;
        case 'd':
            cfg.duration = atof(optarg);
            break;
        case 'w':
            cfg.warmup = atof(optarg);
            break;
        case 'T':
            cfg.timeout = atof(optarg);
            break;
        case 's':
            cfg.sql = optarg;
            break;
        case 'S':
            cfg.seed = strtoull(optarg, NULL, 10);
            break;
        case 'p':
        case 'P':
            if (add_cpu(optarg, o == 'P') < 0) {
                fprintf(stderr, "sqlbench: --cpu%s NAME=PID (at most %d)\n",
                        o == 'P' ? "-tree" : "", MAX_CPU);
                return 2;
            }
            break;
        case 'l':
            cfg.label = optarg;
            break;
        case 'q':
            cfg.quiet = 1;
            break;
        case 'R':
            cfg.prepared = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!target || (strcmp(target, "pq") != 0 && strcmp(target, "router") != 0) || !cfg.keys_file ||
        cfg.conns < 1 || cfg.conns > 1024 || cfg.duration <= 0 || cfg.warmup < 0 ||
        cfg.timeout <= 0) {
        usage(stderr);
        return 2;
    }
    cfg.target = strcmp(target, "pq") == 0 ? TARGET_PQ : TARGET_ROUTER;
    if (!cfg.label)
        cfg.label = target;
    if (load_keys(cfg.keys_file) < 0)
        return 2;
    if (cfg.target == TARGET_PQ) {
        for (int i = 0; i < ndsn; i++) {
            char id[MAX_FIELD];
            const char *eq = strchr(dsn_args[i], '=');
            snprintf(id, sizeof(id), "%.*s", (int)(eq - dsn_args[i]), dsn_args[i]);
            int s = shard_index(id, 0);
            if (s >= 0)
                cfg.shard_dsn[s] = xstrdup(eq + 1);
        }
        for (int i = 0; i < cfg.nshards; i++)
            if (!cfg.shard_dsn[i]) {
                fprintf(stderr, "sqlbench: no --dsn for shard %s\n", cfg.shard_ids[i]);
                return 2;
            }
    } else {
        if (!url || parse_url(url) < 0) {
            fprintf(stderr, "sqlbench: router mode needs --url http://HOST:PORT\n");
            return 2;
        }
        for (size_t i = 0; i < nkeys; i++)
            build_router_request(&keys[i]);
    }

    workers = calloc((size_t)cfg.conns, sizeof(*workers));
    struct cpu_sample *ca = calloc(1, sizeof(*ca)), *cb = calloc(1, sizeof(*cb));
    if (!workers || !ca || !cb) {
        fprintf(stderr, "sqlbench: out of memory\n");
        return 2;
    }
    pthread_barrier_init(&ready, NULL, (unsigned)cfg.conns + 1);
    for (int i = 0; i < cfg.conns; i++) {
        workers[i].id = i;
        workers[i].fd = -1;
        workers[i].rng = cfg.seed + (uint64_t)i * 7919;
        if (pthread_create(&workers[i].th, NULL, worker_main, &workers[i]) != 0) {
            fprintf(stderr, "sqlbench: cannot start thread %d\n", i);
            return 2;
        }
    }
    pthread_barrier_wait(&ready); /* all connected (or failed) */
    uint64_t t0 = bench_now_ns();
    atomic_store(&t_start, t0 + (uint64_t)(cfg.warmup * 1e9));
    atomic_store(&t_end, t0 + (uint64_t)((cfg.warmup + cfg.duration) * 1e9));
    int setup_failed = 0;
    for (int i = 0; i < cfg.conns; i++)
        setup_failed |= workers[i].setup_failed;
    if (setup_failed) /* nobody runs: the window is already over for the workers */
        atomic_store(&t_end, 0);
    pthread_barrier_wait(&ready);
    if (!setup_failed) {
        bench_sleep_until_ns(atomic_load(&t_start));
        cpu_take(ca);
        bench_sleep_until_ns(atomic_load(&t_end));
        cpu_take(cb);
    }
    for (int i = 0; i < cfg.conns; i++)
        pthread_join(workers[i].th, NULL);

    size_t n = 0;
    uint64_t errors = 0, warm_ops = 0, warm_errors = 0;
    const char *first_error = NULL;
    for (int i = 0; i < cfg.conns; i++) {
        n += workers[i].nlat;
        errors += workers[i].errors;
        warm_ops += workers[i].warm_ops;
        warm_errors += workers[i].warm_errors;
        if (!first_error && workers[i].first_error[0])
            first_error = workers[i].first_error;
    }
    uint64_t *all = malloc((n ? n : 1) * sizeof(*all));
    if (!all) {
        fprintf(stderr, "sqlbench: out of memory\n");
        return 2;
    }
    size_t at = 0;
    double sum = 0;
    for (int i = 0; i < cfg.conns; i++) {
        memcpy(all + at, workers[i].lat, workers[i].nlat * sizeof(*all));
        at += workers[i].nlat;
    }
    for (size_t i = 0; i < n; i++)
        sum += (double)all[i];
    qsort(all, n, sizeof(*all), cmp_u64);
    double ops = (double)n / cfg.duration;
    double p50 = pct_us(all, n, 0.50), p90 = pct_us(all, n, 0.90), p99 = pct_us(all, n, 0.99),
           p999 = pct_us(all, n, 0.999), mx = n ? (double)all[n - 1] / 1000.0 : 0,
           mean = n ? sum / (double)n / 1000.0 : 0;
    double win = cfg.duration;
    double machine = setup_failed ? 0 : (cb->machine_busy - ca->machine_busy) / win;
    double client = setup_failed ? 0 : (cb->client - ca->client) / win;
    int failed = setup_failed || errors || warm_errors || n == 0;
    if (!cfg.quiet) {
        printf("%-16s conns %3d  %9.0f ops/s  p50 %7.0f  p90 %7.0f  p99 %7.0f us  errors %llu  "
               "cpu machine %.2f client %.2f",
               cfg.label, cfg.conns, ops, p50, p90, p99, (unsigned long long)(errors + warm_errors),
               machine, client);
        for (int i = 0; i < cfg.ncpu; i++)
            printf(" %s %.2f", cfg.cpu[i].name, setup_failed ? 0 : cpu_watch_diff(ca, cb, i) / win);
        printf("\n");
        if (first_error)
            printf("first error: %s\n", first_error);
        printf("RESULT %s\n", failed ? "FAILED" : "OK");
    }
    printf("{\"label\":\"%s\",\"target\":\"%s\",\"conns\":%d,\"duration_s\":%.3f,\"keys\":%zu,"
           "\"shards\":%d,\"ops\":%zu,\"ops_per_s\":%.1f,\"errors\":%llu,\"warmup_ops\":%llu,"
           "\"lat_us\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f,"
           "\"mean\":%.1f},\"cpu_cores\":{\"machine\":%.3f,\"client\":%.3f",
           cfg.label, target, cfg.conns, cfg.duration, nkeys, cfg.nshards, n, ops,
           (unsigned long long)(errors + warm_errors), (unsigned long long)warm_ops, p50, p90, p99,
           p999, mx, mean, machine, client);
    for (int i = 0; i < cfg.ncpu; i++)
        printf(",\"%s\":%.3f", cfg.cpu[i].name, setup_failed ? 0 : cpu_watch_diff(ca, cb, i) / win);
    printf("},\"ok\":%s", failed ? "false" : "true");
    if (first_error) {
        char esc[600];
        json_escape(first_error, esc, sizeof(esc));
        printf(",\"first_error\":\"%s\"", esc);
    }
    printf("}\n");
    for (int i = 0; i < cfg.conns; i++) {
        for (int s = 0; s < cfg.nshards; s++)
            if (workers[i].pg[s])
                PQfinish(workers[i].pg[s]);
        if (workers[i].fd >= 0)
            close(workers[i].fd);
        free(workers[i].buf);
        free(workers[i].lat);
    }
    free(all);
    free(ca);
    free(cb);
    free(workers);
    return failed ? 3 : 0;
}
