/* kvbench: closed-loop HTTP/1.1 keep-alive load generator for the Citrus KV API and
 * etcd's v3 JSON gateway.
 *
 * Design: a few worker threads (default 1: the benchmark machine has 2 cores and the
 * server under test needs them), each with its own epoll loop driving its share of the
 * connections. Every connection has exactly one request in flight; the next one is sent
 * when the previous response has been read completely (Content-Length, chunked, or
 * read-until-close bodies). Latencies go to per-thread log-linear histograms (HDR style,
 * 1/64 relative precision) that are merged at the end. Raw sockets and hand-built
 * requests keep the client cost small and identical for both targets.
 *
 * Every non-2xx status (except a read miss), parse error, connection error and timeout is
 * an error; a run with any error is reported as FAILED and exits with status 3. The last
 * line of stdout is one JSON object with all results.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

/* ---------------------------------------------------------------- configuration */

enum target { TARGET_CITRUS, TARGET_ETCD, TARGET_ROUTE };
static const char *const target_names[] = {"citrus", "etcd", "route"};
enum op { OP_READ, OP_WRITE, OP_COUNT };
static const char *const op_names[OP_COUNT] = {"read", "write"};

struct config {
    enum target target;
    char url[512];
    char host[256]; /* for connect() */
    char port[16];  /* for connect() */
    /* The Host: header value, followed by "\r\n" and the --header line when
     * one is given (an Authorization header for the auth runs). */
    char host_hdr[300 + 8192];
    const char *extra_hdr; /* --header "Name: value", or NULL */
    int conns;
    int threads;
    double duration;   /* seconds; used when requests == 0 */
    uint64_t requests; /* measured requests; 0 = duration mode */
    double read_ratio;
    int keys;
    int value_size;
    const char *consistency;
    int preload;
    double warmup;
    double timeout; /* per request, seconds */
    uint64_t seed;
    const char *key_prefix;
    int quiet;
    int server_pid;  /* for CPU accounting; 0 = none */
    int route_batch; /* route: keys per POST /v1/route; 0 = GET /v1/route/{key} */
};

/* Precomputed request material shared read-only by all threads. */
struct material {
    char **key_b64;         /* etcd: base64 of "<prefix><i>" */
    char *value;            /* raw value bytes (citrus body) */
    char *value_b64;        /* etcd: base64 of value */
    const char *read_query; /* citrus: "?consistency=bounded|strong" */
    int etcd_serializable;
};

static struct config cfg;
static struct material mat;
static struct addrinfo *server_addr;

/* ---------------------------------------------------------------- histogram */

/* Log-linear buckets over nanoseconds: values below 128 are exact; above, each power of
 * two is split into 64 sub-buckets, so a bucket is at most 1/64 (1.6 %) wide relative to
 * its value. 64 magnitudes cover far beyond any plausible latency. */
#define HIST_SUB 128
#define HIST_HALF 64
#define HIST_BUCKETS (HIST_SUB + 58 * HIST_HALF)

struct hist {
    uint64_t count;
    uint64_t sum_ns;
    uint64_t max_ns;
    uint64_t min_ns;
    uint64_t b[HIST_BUCKETS];
};

static int hist_index(uint64_t v)
{
    if (v < HIST_SUB)
        return (int)v;
    int msb = 63 - __builtin_clzll(v);
    int shift = msb - 6;
    int top = (int)(v >> shift); /* in [64, 127] */
    int idx = HIST_SUB + (shift - 1) * HIST_HALF + (top - HIST_HALF);
    return idx < HIST_BUCKETS ? idx : HIST_BUCKETS - 1;
}

/* Midpoint of a bucket, the value reported for quantiles falling in it. */
static double hist_value(int idx)
{
    if (idx < HIST_SUB)
        return idx;
    int k = idx - HIST_SUB;
    int shift = k / HIST_HALF + 1;
    uint64_t top = (uint64_t)(k % HIST_HALF + HIST_HALF);
    uint64_t lo = top << shift;
    return (double)lo + (double)(1ull << shift) / 2.0;
}

static void hist_record(struct hist *h, uint64_t v)
{
    h->b[hist_index(v)]++;
    if (h->count == 0 || v < h->min_ns)
        h->min_ns = v;
    if (v > h->max_ns)
        h->max_ns = v;
    h->count++;
    h->sum_ns += v;
}

static void hist_merge(struct hist *dst, const struct hist *src)
{
    if (src->count == 0)
        return;
    if (dst->count == 0 || src->min_ns < dst->min_ns)
        dst->min_ns = src->min_ns;
    if (src->max_ns > dst->max_ns)
        dst->max_ns = src->max_ns;
    dst->count += src->count;
    dst->sum_ns += src->sum_ns;
    for (int i = 0; i < HIST_BUCKETS; i++)
        dst->b[i] += src->b[i];
}

/* Quantile q in [0,1], in microseconds. */
static double hist_quantile_us(const struct hist *h, double q)
{
    if (h->count == 0)
        return 0;
    uint64_t rank = (uint64_t)ceil(q * (double)h->count);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (int i = 0; i < HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank) {
            double v = hist_value(i);
            if (v > (double)h->max_ns)
                v = (double)h->max_ns;
            if (v < (double)h->min_ns)
                v = (double)h->min_ns;
            return v / 1000.0;
        }
    }
    return (double)h->max_ns / 1000.0;
}

/* ---------------------------------------------------------------- statistics */

enum err_kind { ERR_STATUS, ERR_PARSE, ERR_IO, ERR_TIMEOUT, ERR_CONNECT, ERR_BODY, ERR_COUNT };
static const char *const err_names[ERR_COUNT] = {"status",  "parse",   "io",
                                                 "timeout", "connect", "bad_body"};

struct opstats {
    uint64_t ok;     /* 2xx (and, for reads, a hit or a tolerated miss) */
    uint64_t misses; /* reads that found no value */
    uint64_t errors;
    struct hist lat; /* successful requests only */
};

struct stats {
    struct opstats op[OP_COUNT];
    uint64_t err_kind[ERR_COUNT];
    uint64_t status[600]; /* non-2xx responses by status code */
    uint64_t reconnects;
};

static void stats_merge(struct stats *dst, const struct stats *src)
{
    for (int o = 0; o < OP_COUNT; o++) {
        dst->op[o].ok += src->op[o].ok;
        dst->op[o].misses += src->op[o].misses;
        dst->op[o].errors += src->op[o].errors;
        hist_merge(&dst->op[o].lat, &src->op[o].lat);
    }
    for (int e = 0; e < ERR_COUNT; e++)
        dst->err_kind[e] += src->err_kind[e];
    for (int s = 0; s < 600; s++)
        dst->status[s] += src->status[s];
    dst->reconnects += src->reconnects;
}

/* ---------------------------------------------------------------- run control */

enum phase { PH_INIT, PH_WARMUP, PH_MEASURE, PH_DONE };
enum run_mode { MODE_PRELOAD, MODE_MAIN };

struct run {
    enum run_mode mode;
    uint64_t limit; /* requests to measure; 0 = until PH_DONE */
    _Atomic int phase;
    _Atomic uint64_t t0; /* start of measurement */
    _Atomic uint64_t tickets;
    _Atomic int workers_alive;
    pthread_barrier_t start;
};

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* ---------------------------------------------------------------- connection */

enum rstate {
    RS_HEADERS,
    RS_BODY_CL,
    RS_BODY_EOF,
    RS_CHUNK_SIZE,
    RS_CHUNK_DATA,
    RS_CHUNK_CRLF,
    RS_TRAILER,
};

struct conn {
    int fd;
    int id;
    uint32_t gen; /* bumped on every (re)connect; tags epoll events */
    int stopped;
    int want_out;
    int fails; /* consecutive connection-level failures */
    uint64_t rng;

    /* current request */
    int in_flight;
    enum op op;
    int key;
    uint64_t t_start;
    char *req;
    size_t req_cap, req_len, req_off;
    char *scratch; /* etcd JSON body */
    size_t scratch_cap;

    /* response */
    char *buf;
    size_t cap, len, pos;
    enum rstate state;
    int status;
    int close_after;
    int chunked;
    long long content_length;
    size_t body_start, body_len, remaining;
};

struct worker {
    int id;
    pthread_t tid;
    struct run *run;
    int epfd;
    struct conn *conns;
    int nconns;
    int active;
    struct stats st[2]; /* [0] warmup, [1] measured */
    uint64_t last_done_ns;
    char first_error[256];
};

#define MAX_RESPONSE (16u << 20)

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static void note_error(struct worker *w, const char *what, const char *detail)
{
    if (w->first_error[0] == '\0')
        snprintf(w->first_error, sizeof(w->first_error), "%s: %s", what, detail);
}

/* Stats bucket for a request finishing now: warmup, measured, or NULL (run is over). */
static struct stats *stats_for(struct worker *w, const struct conn *c)
{
    int ph = atomic_load_explicit(&w->run->phase, memory_order_acquire);
    if (ph == PH_DONE)
        return NULL;
    if (ph == PH_MEASURE && c->t_start >= atomic_load(&w->run->t0))
        return &w->st[1];
    return &w->st[0];
}

static void count_error(struct worker *w, struct conn *c, enum err_kind kind)
{
    struct stats *st = stats_for(w, c);
    if (!st)
        return;
    st->op[c->op].errors++;
    st->err_kind[kind]++;
    if (st == &w->st[1])
        w->last_done_ns = bench_now_ns();
}

static void conn_stop(struct worker *w, struct conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->in_flight = 0;
    if (!c->stopped) {
        c->stopped = 1;
        w->active--;
    }
}

static int conn_open(struct worker *w, struct conn *c)
{
    int fd = -1;
    int err = 0;
    for (struct addrinfo *ai = server_addr; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        err = errno;
        close(fd);
        fd = -1;
    }
    if (fd < 0) {
        note_error(w, "connect", strerror(err));
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->gen++;
    struct epoll_event ev = {.events = EPOLLIN,
                             .data.u64 = ((uint64_t)(uint32_t)c->id << 32) | c->gen};
    if (set_nonblock(fd) < 0 || epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        note_error(w, "socket setup", strerror(errno));
        close(fd);
        return -1;
    }
    c->fd = fd;
    c->want_out = 0;
    c->len = c->pos = 0;
    c->state = RS_HEADERS;
    return 0;
}

static void conn_next(struct worker *w, struct conn *c);

/* The in-flight request failed at the connection level: count it, reconnect, go on. */
static void conn_fail(struct worker *w, struct conn *c, enum err_kind kind, const char *detail)
{
    note_error(w, err_names[kind], detail);
    if (c->in_flight)
        count_error(w, c, kind);
    c->in_flight = 0;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    if (atomic_load(&w->run->phase) == PH_DONE || interrupted || ++c->fails > 100) {
        conn_stop(w, c);
        return;
    }
    w->st[1].reconnects++;
    if (conn_open(w, c) < 0) {
        count_error(w, c, ERR_CONNECT);
        conn_stop(w, c);
        return;
    }
    conn_next(w, c);
}

static void conn_set_out(struct worker *w, struct conn *c, int want)
{
    if (c->want_out == want)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0),
                             .data.u64 = ((uint64_t)(uint32_t)c->id << 32) | c->gen};
    epoll_ctl(w->epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = want;
}

static void conn_flush(struct worker *w, struct conn *c)
{
    while (c->req_off < c->req_len) {
        ssize_t n = send(c->fd, c->req + c->req_off, c->req_len - c->req_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->req_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            conn_set_out(w, c, 1);
            return;
        }
        conn_fail(w, c, ERR_IO, n < 0 ? strerror(errno) : "send returned 0");
        return;
    }
    conn_set_out(w, c, 0);
}

static void build_request(struct conn *c)
{
    const char *pfx = cfg.key_prefix;
    int n;
    if (cfg.target == TARGET_CITRUS) {
        if (c->op == OP_READ) {
            n = snprintf(c->req, c->req_cap, "GET /v1/kv/%s%d%s HTTP/1.1\r\nHost: %s\r\n\r\n", pfx,
                         c->key, mat.read_query, cfg.host_hdr);
        } else {
            n = snprintf(c->req, c->req_cap,
                         "PUT /v1/kv/%s%d HTTP/1.1\r\nHost: %s\r\n"
                         "Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n",
                         pfx, c->key, cfg.host_hdr, cfg.value_size);
            memcpy(c->req + n, mat.value, (size_t)cfg.value_size);
            n += cfg.value_size;
        }
    } else if (cfg.target == TARGET_ROUTE && cfg.route_batch == 0) {
        n = snprintf(c->req, c->req_cap, "GET /v1/route/%s%d HTTP/1.1\r\nHost: %s\r\n\r\n", pfx,
                     c->key, cfg.host_hdr);
    } else if (cfg.target == TARGET_ROUTE) { /* keys key, key+1, ... (mod keys) */
        int blen = snprintf(c->scratch, c->scratch_cap, "{\"keys\":[");
        for (int i = 0; i < cfg.route_batch; i++)
            blen += snprintf(c->scratch + blen, c->scratch_cap - (size_t)blen, "%s\"%s%d\"",
                             i ? "," : "", pfx, (c->key + i) % cfg.keys);
        blen += snprintf(c->scratch + blen, c->scratch_cap - (size_t)blen, "]}");
        n = snprintf(c->req, c->req_cap,
                     "POST /v1/route HTTP/1.1\r\nHost: %s\r\n"
                     "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n",
                     cfg.host_hdr, blen);
        memcpy(c->req + n, c->scratch, (size_t)blen);
        n += blen;
    } else {
        const char *path;
        int blen;
        if (c->op == OP_READ) {
            path = "/v3/kv/range";
            blen = snprintf(c->scratch, c->scratch_cap, "{\"key\":\"%s\"%s}", mat.key_b64[c->key],
                            mat.etcd_serializable ? ",\"serializable\":true" : "");
        } else {
            path = "/v3/kv/put";
            blen = snprintf(c->scratch, c->scratch_cap, "{\"key\":\"%s\",\"value\":\"%s\"}",
                            mat.key_b64[c->key], mat.value_b64);
        }
        n = snprintf(c->req, c->req_cap,
                     "POST %s HTTP/1.1\r\nHost: %s\r\n"
                     "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n",
                     path, cfg.host_hdr, blen);
        memcpy(c->req + n, c->scratch, (size_t)blen);
        n += blen;
    }
    c->req_len = (size_t)n;
    c->req_off = 0;
}

/* Sends the connection's next request, or stops it when the run or its quota is over. */
static void conn_next(struct worker *w, struct conn *c)
{
    struct run *r = w->run;
    int ph = atomic_load_explicit(&r->phase, memory_order_acquire);
    if (ph == PH_DONE || interrupted) {
        conn_stop(w, c);
        return;
    }
    uint64_t ticket = 0;
    if (r->limit && ph == PH_MEASURE) {
        ticket = atomic_fetch_add(&r->tickets, 1);
        if (ticket >= r->limit) {
            conn_stop(w, c);
            return;
        }
    }
    if (r->mode == MODE_PRELOAD) {
        c->op = OP_WRITE;
        c->key = (int)ticket;
    } else {
        uint64_t x = bench_xorshift(&c->rng);
        c->op = (double)(x >> 11) * 0x1.0p-53 < cfg.read_ratio ? OP_READ : OP_WRITE;
        c->key = (int)(bench_xorshift(&c->rng) % (uint64_t)cfg.keys);
    }
    build_request(c);
    c->in_flight = 1;
    c->len = c->pos = 0;
    c->state = RS_HEADERS;
    c->t_start = bench_now_ns();
    conn_flush(w, c);
}

static int header_is(const char *line, size_t ll, const char *name, const char **val, size_t *vlen)
{
    size_t nl = strlen(name);
    if (ll <= nl || line[nl] != ':' || strncasecmp(line, name, nl) != 0)
        return 0;
    const char *v = line + nl + 1;
    const char *end = line + ll;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    *val = v;
    *vlen = (size_t)(end - v);
    return 1;
}

static int contains_token(const char *v, size_t vlen, const char *tok)
{
    size_t tl = strlen(tok);
    for (size_t i = 0; i + tl <= vlen; i++)
        if (strncasecmp(v + i, tok, tl) == 0)
            return 1;
    return 0;
}

/* Parses the response headers in buf[0..hdr_end). Returns 0 or -1 with *err set. */
static int parse_headers(struct conn *c, size_t hdr_end, const char **err)
{
    char *b = c->buf;
    if (hdr_end < 16 || memcmp(b, "HTTP/1.", 7) != 0 || b[8] != ' ' || !isdigit((uint8_t)b[9]) ||
        !isdigit((uint8_t)b[10]) || !isdigit((uint8_t)b[11])) {
        *err = "bad status line";
        return -1;
    }
    c->status = (b[9] - '0') * 100 + (b[10] - '0') * 10 + (b[11] - '0');
    int http10 = b[7] == '0';
    c->close_after = http10;
    c->chunked = 0;
    c->content_length = -1;
    char *line = memchr(b, '\n', hdr_end) + 1;
    char *end = b + hdr_end;
    while (line < end) {
        char *eol = memchr(line, '\n', (size_t)(end - line));
        size_t ll = (size_t)(eol - line);
        if (ll && line[ll - 1] == '\r')
            ll--;
        const char *v;
        size_t vlen;
        if (ll == 0) {
            break;
        } else if (header_is(line, ll, "content-length", &v, &vlen)) {
            long long n = 0;
            if (vlen == 0 || vlen > 12) {
                *err = "bad content-length";
                return -1;
            }
            for (size_t i = 0; i < vlen; i++) {
                if (!isdigit((uint8_t)v[i])) {
                    *err = "bad content-length";
                    return -1;
                }
                n = n * 10 + (v[i] - '0');
            }
            c->content_length = n;
        } else if (header_is(line, ll, "transfer-encoding", &v, &vlen)) {
            if (contains_token(v, vlen, "chunked"))
                c->chunked = 1;
        } else if (header_is(line, ll, "connection", &v, &vlen)) {
            if (contains_token(v, vlen, "close"))
                c->close_after = 1;
            else if (http10 && contains_token(v, vlen, "keep-alive"))
                c->close_after = 0;
        }
        line = eol + 1;
    }
    return 0;
}

/* Advances the response parser over new bytes: 1 complete, 0 needs more, -1 error. */
static int parse_response(struct conn *c, const char **err)
{
    for (;;) {
        switch (c->state) {
        case RS_HEADERS: {
            size_t from = c->pos >= 3 ? c->pos - 3 : 0;
            char *e = memmem(c->buf + from, c->len - from, "\r\n\r\n", 4);
            if (!e) {
                c->pos = c->len;
                if (c->len > 65536) {
                    *err = "response headers too large";
                    return -1;
                }
                return 0;
            }
            size_t hdr_end = (size_t)(e - c->buf) + 4;
            if (parse_headers(c, hdr_end, err) < 0)
                return -1;
            if (c->status < 200) { /* interim response: drop it, parse the next */
                memmove(c->buf, c->buf + hdr_end, c->len - hdr_end);
                c->len -= hdr_end;
                c->pos = 0;
                continue;
            }
            c->pos = c->body_start = hdr_end;
            c->body_len = 0;
            if (c->status == 204 || c->status == 304)
                return 1;
            if (c->chunked) {
                c->state = RS_CHUNK_SIZE;
            } else if (c->content_length >= 0) {
                if (c->content_length > (long long)MAX_RESPONSE) {
                    *err = "response body too large";
                    return -1;
                }
                c->remaining = (size_t)c->content_length;
                c->state = RS_BODY_CL;
            } else {
                c->close_after = 1;
                c->state = RS_BODY_EOF;
            }
            continue;
        }
        case RS_BODY_CL: {
            size_t take = c->len - c->pos;
            if (take > c->remaining)
                take = c->remaining;
            c->pos += take;
            c->body_len += take;
            c->remaining -= take;
            return c->remaining == 0;
        }
        case RS_BODY_EOF:
            c->pos = c->len;
            c->body_len = c->len - c->body_start;
            return 0; /* completed by the peer closing */
        case RS_CHUNK_SIZE: {
            char *nl = memchr(c->buf + c->pos, '\n', c->len - c->pos);
            if (!nl) {
                if (c->len - c->pos > 1024) {
                    *err = "chunk size line too long";
                    return -1;
                }
                return 0;
            }
            const char *p = c->buf + c->pos;
            size_t size = 0;
            int digits = 0;
            for (; isxdigit((uint8_t)*p); p++, digits++) {
                int d = isdigit((uint8_t)*p) ? *p - '0' : (tolower((uint8_t)*p) - 'a' + 10);
                size = size * 16 + (size_t)d;
                if (size > MAX_RESPONSE) {
                    *err = "chunk too large";
                    return -1;
                }
            }
            if (digits == 0 || (*p != '\r' && *p != '\n' && *p != ';' && *p != ' ')) {
                *err = "bad chunk size";
                return -1;
            }
            c->pos = (size_t)(nl - c->buf) + 1;
            if (size == 0) {
                c->state = RS_TRAILER;
            } else {
                if (c->body_len + size > MAX_RESPONSE) {
                    *err = "chunked body too large";
                    return -1;
                }
                c->remaining = size;
                c->state = RS_CHUNK_DATA;
            }
            continue;
        }
        case RS_CHUNK_DATA: {
            size_t take = c->len - c->pos;
            if (take > c->remaining)
                take = c->remaining;
            /* De-chunk in place: the body stays contiguous after the headers. */
            memmove(c->buf + c->body_start + c->body_len, c->buf + c->pos, take);
            c->body_len += take;
            c->pos += take;
            c->remaining -= take;
            if (c->remaining)
                return 0;
            c->state = RS_CHUNK_CRLF;
            continue;
        }
        case RS_CHUNK_CRLF: {
            size_t avail = c->len - c->pos;
            if (avail < 1)
                return 0;
            if (c->buf[c->pos] == '\n') {
                c->pos += 1;
            } else if (c->buf[c->pos] == '\r') {
                if (avail < 2)
                    return 0;
                if (c->buf[c->pos + 1] != '\n') {
                    *err = "missing CRLF after chunk";
                    return -1;
                }
                c->pos += 2;
            } else {
                *err = "missing CRLF after chunk";
                return -1;
            }
            c->state = RS_CHUNK_SIZE;
            continue;
        }
        case RS_TRAILER: {
            char *nl = memchr(c->buf + c->pos, '\n', c->len - c->pos);
            if (!nl) {
                if (c->len - c->pos > 65536) {
                    *err = "trailer too large";
                    return -1;
                }
                return 0;
            }
            size_t ll = (size_t)(nl - (c->buf + c->pos));
            int empty = ll == 0 || (ll == 1 && c->buf[c->pos] == '\r');
            c->pos = (size_t)(nl - c->buf) + 1;
            if (empty)
                return 1;
            continue;
        }
        }
    }
}

/* A whole response is in: classify it, record it, and send the next request. */
static void conn_complete(struct worker *w, struct conn *c)
{
    uint64_t t = bench_now_ns();
    struct stats *st = stats_for(w, c);
    const char *body = c->buf + c->body_start;
    int ok = 0, miss = 0;
    enum err_kind kind = ERR_STATUS;
    char detail[160];
    detail[0] = '\0';

    if (c->req_off < c->req_len)
        c->close_after = 1; /* answered before the request was sent in full */
    if (c->len > c->pos) {
        kind = ERR_PARSE;
        snprintf(detail, sizeof(detail), "%zu unexpected bytes after response", c->len - c->pos);
        c->close_after = 1;
    } else if (c->status >= 200 && c->status < 300) {
        ok = 1;
        if (c->op == OP_READ && cfg.target == TARGET_ETCD)
            miss = memmem(body, c->body_len, "\"kvs\"", 5) == NULL;
        if (cfg.preload && c->op == OP_READ) {
            if (miss) {
                ok = 0;
                kind = ERR_BODY;
                snprintf(detail, sizeof(detail), "preloaded key %s%d not found", cfg.key_prefix,
                         c->key);
            } else if (cfg.target == TARGET_CITRUS && c->body_len != (size_t)cfg.value_size) {
                ok = 0;
                kind = ERR_BODY;
                snprintf(detail, sizeof(detail), "GET body is %zu bytes, wrote %d", c->body_len,
                         cfg.value_size);
            }
        }
    } else if (c->op == OP_READ && c->status == 404 && cfg.target == TARGET_CITRUS &&
               !cfg.preload) {
        ok = 1;
        miss = 1;
    }
    if (!ok && detail[0] == '\0') {
        int bl = c->body_len > 120 ? 120 : (int)c->body_len;
        snprintf(detail, sizeof(detail), "%s %s%d -> HTTP %d %.*s", op_names[c->op], cfg.key_prefix,
                 c->key, c->status, bl, body);
    }

    if (st) {
        struct opstats *os = &st->op[c->op];
        if (ok) {
            os->ok++;
            os->misses += (uint64_t)miss;
            hist_record(&os->lat, t - c->t_start);
            c->fails = 0;
        } else {
            os->errors++;
            st->err_kind[kind]++;
            if (kind == ERR_STATUS && c->status < 600)
                st->status[c->status]++;
        }
        if (st == &w->st[1])
            w->last_done_ns = t;
    }
    if (!ok)
        note_error(w, err_names[kind], detail);
    c->in_flight = 0;
    if (c->close_after) {
        close(c->fd);
        c->fd = -1;
        w->st[1].reconnects++;
        if (atomic_load(&w->run->phase) == PH_DONE || interrupted) {
            conn_stop(w, c);
            return;
        }
        if (conn_open(w, c) < 0) {
            count_error(w, c, ERR_CONNECT);
            conn_stop(w, c);
            return;
        }
    }
    conn_next(w, c);
}

static void conn_readable(struct worker *w, struct conn *c)
{
    if (c->cap - c->len < 4096) {
        size_t ncap = c->cap * 2;
        if (ncap > MAX_RESPONSE + 65536 + 4096) {
            conn_fail(w, c, ERR_PARSE, "response too large");
            return;
        }
        char *nb = realloc(c->buf, ncap);
        if (!nb) {
            conn_fail(w, c, ERR_PARSE, "out of memory");
            return;
        }
        c->buf = nb;
        c->cap = ncap;
    }
    ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return;
        conn_fail(w, c, ERR_IO, strerror(errno));
        return;
    }
    if (n == 0) {
        if (c->in_flight && c->state == RS_BODY_EOF) {
            c->close_after = 1;
            conn_complete(w, c);
        } else {
            conn_fail(w, c, ERR_IO,
                      c->len ? "connection closed mid-response" : "connection closed by server");
        }
        return;
    }
    if (!c->in_flight) {
        conn_fail(w, c, ERR_PARSE, "data received with no request in flight");
        return;
    }
    c->len += (size_t)n;
    const char *err = NULL;
    int r = parse_response(c, &err);
    if (r < 0)
        conn_fail(w, c, ERR_PARSE, err);
    else if (r > 0)
        conn_complete(w, c);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct run *r = w->run;
    w->active = w->nconns;
    for (int i = 0; i < w->nconns; i++) {
        struct conn *c = &w->conns[i];
        if (conn_open(w, c) < 0) {
            count_error(w, c, ERR_CONNECT);
            conn_stop(w, c);
        }
    }
    pthread_barrier_wait(&r->start);
    while (atomic_load_explicit(&r->phase, memory_order_acquire) == PH_INIT)
        sched_yield();
    for (int i = 0; i < w->nconns; i++)
        if (!w->conns[i].stopped)
            conn_next(w, &w->conns[i]);

    uint64_t timeout_ns = (uint64_t)(cfg.timeout * 1e9);
    uint64_t last_scan = bench_now_ns();
    struct epoll_event evs[64];
    while (w->active > 0) {
        int n = epoll_wait(w->epfd, evs, 64, 50);
        if (n < 0 && errno != EINTR) {
            perror("epoll_wait");
            break;
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = &w->conns[evs[i].data.u64 >> 32];
            if (c->fd < 0 || c->gen != (uint32_t)evs[i].data.u64)
                continue; /* stale event for a connection closed in this batch */
            if (evs[i].events & EPOLLOUT)
                conn_flush(w, c);
            if (c->fd >= 0 && c->gen == (uint32_t)evs[i].data.u64 &&
                (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                conn_readable(w, c);
        }
        if (atomic_load(&r->phase) == PH_DONE || interrupted) {
            for (int i = 0; i < w->nconns; i++)
                conn_stop(w, &w->conns[i]);
            break;
        }
        uint64_t t = bench_now_ns();
        if (t - last_scan > 50000000ull) {
            last_scan = t;
            for (int i = 0; i < w->nconns; i++) {
                struct conn *c = &w->conns[i];
                if (c->in_flight && t - c->t_start > timeout_ns)
                    conn_fail(w, c, ERR_TIMEOUT, "request timed out");
            }
        }
    }
    for (int i = 0; i < w->nconns; i++)
        conn_stop(w, &w->conns[i]);
    atomic_fetch_sub(&r->workers_alive, 1);
    return NULL;
}

/* ---------------------------------------------------------------- CPU accounting */

/* Where the CPU went during the measured window, in seconds: the whole machine (from
 * /proc/stat), this process, and the server process when --server-pid is given. On a
 * shared 2-core machine this tells a slow run from a noisy one. */
struct cpu_sample {
    double machine_busy; /* user+nice+system+irq+softirq, all CPUs */
    double machine_steal;
    double client;
    double server; /* -1 when unknown */
};

static void cpu_sample_take(struct cpu_sample *cs)
{
    memset(cs, 0, sizeof(*cs));
    cs->server = -1;
    unsigned long long v[8];
    if (bench_proc_stat(v) == 0) {
        cs->machine_busy = (double)(v[0] + v[1] + v[2] + v[5] + v[6]) / bench_clk_tck();
        cs->machine_steal = (double)v[7] / bench_clk_tck();
    }
    cs->client = bench_self_cpu_s();
    long long ticks = cfg.server_pid > 0 ? bench_proc_ticks(cfg.server_pid, NULL) : -1;
    if (ticks >= 0)
        cs->server = (double)ticks / bench_clk_tck();
}

static void cpu_sample_diff(struct cpu_sample *d, const struct cpu_sample *a,
                            const struct cpu_sample *b)
{
    d->machine_busy = b->machine_busy - a->machine_busy;
    d->machine_steal = b->machine_steal - a->machine_steal;
    d->client = b->client - a->client;
    d->server = a->server >= 0 && b->server >= 0 ? b->server - a->server : -1;
}

/* ---------------------------------------------------------------- engine */

struct result {
    struct stats measured;
    struct stats warmup;
    double elapsed_s;
    struct cpu_sample cpu; /* over the measured window */
    char first_error[256];
};

/* Runs one closed-loop phase: `limit` measured requests, or `duration` seconds when
 * limit is 0, after `warmup` seconds. Fills *res; returns 0, or -1 on setup failure. */
static int run_engine(enum run_mode mode, uint64_t limit, double warmup, double duration,
                      struct result *res)
{
    int nthreads = cfg.threads < cfg.conns ? cfg.threads : cfg.conns;
    struct run r = {.mode = mode, .limit = limit};
    atomic_init(&r.phase, PH_INIT);
    atomic_init(&r.t0, 0);
    atomic_init(&r.tickets, 0);
    atomic_init(&r.workers_alive, nthreads);
    pthread_barrier_init(&r.start, NULL, (unsigned)nthreads + 1);

    struct worker *ws = calloc((size_t)nthreads, sizeof(*ws));
    if (!ws)
        return -1;
    /* Room for headers (key prefix, Host) plus the body, base64-inflated for etcd. */
    size_t req_cap = 2 * (size_t)cfg.value_size + 4096 + strlen(cfg.host_hdr) +
                     2 * (size_t)cfg.route_batch * (strlen(cfg.key_prefix) + 16);
    for (int t = 0; t < nthreads; t++) {
        struct worker *w = &ws[t];
        w->id = t;
        w->run = &r;
        w->nconns = cfg.conns / nthreads + (t < cfg.conns % nthreads);
        w->conns = calloc((size_t)w->nconns, sizeof(*w->conns));
        w->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (!w->conns || w->epfd < 0) {
            perror("kvbench: worker setup");
            exit(1);
        }
        for (int i = 0; i < w->nconns; i++) {
            struct conn *c = &w->conns[i];
            c->fd = -1;
            c->id = i;
            c->rng = cfg.seed * 0x9E3779B97F4A7C15ull + (uint64_t)(t * 100003 + i) * 7919 + 1;
            c->req_cap = req_cap;
            c->req = malloc(req_cap);
            c->scratch_cap = req_cap;
            c->scratch = malloc(req_cap);
            c->cap = 16384;
            c->buf = malloc(c->cap);
            if (!c->req || !c->scratch || !c->buf) {
                perror("kvbench: malloc");
                exit(1);
            }
        }
    }
    for (int t = 0; t < nthreads; t++) {
        if (pthread_create(&ws[t].tid, NULL, worker_main, &ws[t]) != 0) {
            perror("kvbench: pthread_create");
            exit(1);
        }
    }
    pthread_barrier_wait(&r.start);
    uint64_t start = bench_now_ns();
    if (warmup > 0) {
        atomic_store_explicit(&r.phase, PH_WARMUP, memory_order_release);
        uint64_t until = start + (uint64_t)(warmup * 1e9);
        while (bench_now_ns() < until && !interrupted && atomic_load(&r.workers_alive) > 0) {
            uint64_t step = bench_now_ns() + 20000000ull;
            bench_sleep_until_ns(step < until ? step : until);
        }
    }
    struct cpu_sample cpu0, cpu1;
    cpu_sample_take(&cpu0);
    uint64_t t0 = bench_now_ns();
    atomic_store(&r.t0, t0);
    atomic_store_explicit(&r.phase, PH_MEASURE, memory_order_release);
    uint64_t t1 = 0;
    if (limit == 0) {
        uint64_t until = t0 + (uint64_t)(duration * 1e9);
        while (bench_now_ns() < until && !interrupted && atomic_load(&r.workers_alive) > 0) {
            uint64_t step = bench_now_ns() + 20000000ull;
            bench_sleep_until_ns(step < until ? step : until);
        }
        t1 = bench_now_ns();
        cpu_sample_take(&cpu1);
        atomic_store_explicit(&r.phase, PH_DONE, memory_order_release);
    }
    memset(res, 0, sizeof(*res));
    for (int t = 0; t < nthreads; t++) {
        struct worker *w = &ws[t];
        pthread_join(w->tid, NULL);
        stats_merge(&res->measured, &w->st[1]);
        stats_merge(&res->warmup, &w->st[0]);
        if (limit && w->last_done_ns > t1)
            t1 = w->last_done_ns;
        if (res->first_error[0] == '\0' && w->first_error[0])
            memcpy(res->first_error, w->first_error, sizeof(res->first_error));
        for (int i = 0; i < w->nconns; i++) {
            free(w->conns[i].req);
            free(w->conns[i].scratch);
            free(w->conns[i].buf);
        }
        free(w->conns);
        close(w->epfd);
    }
    if (limit)
        cpu_sample_take(&cpu1);
    cpu_sample_diff(&res->cpu, &cpu0, &cpu1);
    atomic_store(&r.phase, PH_DONE);
    if (t1 < t0)
        t1 = t0;
    res->elapsed_s = (double)(t1 - t0) / 1e9;
    free(ws);
    pthread_barrier_destroy(&r.start);
    return 0;
}

/* ---------------------------------------------------------------- reporting */

static uint64_t op_total(const struct opstats *o)
{
    return o->ok + o->errors;
}

static void total_of(const struct stats *st, struct opstats *all)
{
    memset(all, 0, sizeof(*all));
    for (int o = 0; o < OP_COUNT; o++) {
        all->ok += st->op[o].ok;
        all->misses += st->op[o].misses;
        all->errors += st->op[o].errors;
        hist_merge(&all->lat, &st->op[o].lat);
    }
}

static void print_row(const char *name, const struct opstats *o, double secs)
{
    double rps = secs > 0 ? (double)op_total(o) / secs : 0;
    printf("%-6s %10llu %8llu %8llu %11.1f %9.1f %9.1f %9.1f %9.1f %9.1f\n", name,
           (unsigned long long)op_total(o), (unsigned long long)o->errors,
           (unsigned long long)o->misses, rps,
           o->lat.count ? (double)o->lat.sum_ns / 1e3 / (double)o->lat.count : 0,
           hist_quantile_us(&o->lat, 0.50), hist_quantile_us(&o->lat, 0.99),
           hist_quantile_us(&o->lat, 0.999), (double)o->lat.max_ns / 1e3);
}

static void print_errors(const char *label, const struct stats *st)
{
    printf("%s errors:", label);
    for (int e = 0; e < ERR_COUNT; e++)
        if (st->err_kind[e])
            printf(" %s=%llu", err_names[e], (unsigned long long)st->err_kind[e]);
    for (int s = 0; s < 600; s++)
        if (st->status[s])
            printf(" [HTTP %d x%llu]", s, (unsigned long long)st->status[s]);
    printf("\n");
}

static void json_op(const char *name, const struct opstats *o, double secs, int comma)
{
    double rps = secs > 0 ? (double)op_total(o) / secs : 0;
    printf("\"%s\":{\"requests\":%llu,\"ok\":%llu,\"errors\":%llu,\"misses\":%llu,\"rps\":%.1f,"
           "\"lat_us\":{\"mean\":%.1f,\"p50\":%.1f,\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f}}%s",
           name, (unsigned long long)op_total(o), (unsigned long long)o->ok,
           (unsigned long long)o->errors, (unsigned long long)o->misses, rps,
           o->lat.count ? (double)o->lat.sum_ns / 1e3 / (double)o->lat.count : 0,
           hist_quantile_us(&o->lat, 0.50), hist_quantile_us(&o->lat, 0.99),
           hist_quantile_us(&o->lat, 0.999), (double)o->lat.max_ns / 1e3, comma ? "," : "");
}

/* CPU use over the window in cores (CPU seconds per second); server < 0 when unknown. */
static void cpu_cores(const struct result *res, double *machine, double *steal, double *client,
                      double *server, double *other)
{
    double w = res->elapsed_s > 0 ? res->elapsed_s : 1;
    *machine = res->cpu.machine_busy / w;
    *steal = res->cpu.machine_steal / w;
    *client = res->cpu.client / w;
    *server = res->cpu.server >= 0 ? res->cpu.server / w : -1;
    *other = *machine - *client - (*server > 0 ? *server : 0);
    if (*other < 0)
        *other = 0;
}

static void json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20 || ch >= 0x7f)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

/* ---------------------------------------------------------------- setup */

static char *base64(const unsigned char *in, size_t n)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = tbl[(v >> 18) & 63];
        out[o++] = tbl[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? tbl[v & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

static int parse_url(const char *url)
{
    if (strlen(url) >= sizeof(cfg.url) || strncmp(url, "http://", 7) != 0)
        return -1;
    snprintf(cfg.url, sizeof(cfg.url), "%s", url);
    const char *h = url + 7;
    const char *end = h + strcspn(h, "/?#");
    const char *colon;
    size_t hl;
    if (*h == '[') {
        const char *rb = memchr(h, ']', (size_t)(end - h));
        if (!rb)
            return -1;
        hl = (size_t)(rb - h - 1);
        if (hl >= sizeof(cfg.host))
            return -1;
        memcpy(cfg.host, h + 1, hl);
        colon = rb[1] == ':' ? rb + 1 : NULL;
    } else {
        colon = memchr(h, ':', (size_t)(end - h));
        hl = (size_t)((colon ? colon : end) - h);
        if (hl == 0 || hl >= sizeof(cfg.host))
            return -1;
        memcpy(cfg.host, h, hl);
    }
    cfg.host[hl] = '\0';
    if (colon) {
        size_t pl = (size_t)(end - colon - 1);
        if (pl == 0 || pl >= sizeof(cfg.port))
            return -1;
        memcpy(cfg.port, colon + 1, pl);
        cfg.port[pl] = '\0';
    } else {
        snprintf(cfg.port, sizeof(cfg.port), "80");
    }
    size_t hh = (size_t)(end - h);
    if (hh >= sizeof(cfg.host_hdr))
        return -1;
    memcpy(cfg.host_hdr, h, hh);
    cfg.host_hdr[hh] = '\0';
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: kvbench [options]\n"
               "  --target citrus|etcd|route  API to drive (default citrus); route: GET\n"
               "                           /v1/route/{key} (read-only)\n"
               "  --route-batch N          route: POST /v1/route with N keys per request\n"
               "  --url http://HOST:PORT   server base URL (default http://127.0.0.1:8081)\n"
               "  --conns N                keep-alive connections, one request in flight each "
               "(16)\n"
               "  --threads N              epoll worker threads (1)\n"
               "  --duration S             measured seconds (10), or\n"
               "  --requests N             measured request count\n"
               "  --warmup S               unmeasured seconds before measuring (2)\n"
               "  --read-ratio R           fraction of reads, 0..1 (1)\n"
               "  --keys K                 key space bench/k0..k{K-1} (1000)\n"
               "  --value-size B           value bytes (64)\n"
               "  --consistency C          citrus: bounded|strong; etcd: "
               "serializable|linearizable\n"
               "  --preload                write every key once before measuring (then reads\n"
               "                           must find their key and value, or count as errors)\n"
               "  --timeout S              per-request timeout, counted as an error (10)\n"
               "  --seed N                 key/op random seed (1)\n"
               "  --key-prefix P           key prefix (bench/k)\n"
               "  --server-pid PID         also report that process's CPU use\n"
               "  --header 'Name: value'   one more request header (e.g. Authorization)\n"
               "  --quiet                  print only the JSON line\n"
               "Exit status: 0 ok, 1 setup failure, 2 usage, 3 the run had errors.\n");
}

static double parse_double(const char *s, const char *opt)
{
    char *end;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || !isfinite(v) || v < 0) {
        fprintf(stderr, "kvbench: bad value for %s: %s\n", opt, s);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    cfg = (struct config){.target = TARGET_CITRUS,
                          .conns = 16,
                          .threads = 1,
                          .duration = 10,
                          .read_ratio = 1.0,
                          .keys = 1000,
                          .value_size = 64,
                          .warmup = 2,
                          .timeout = 10,
                          .seed = 1,
                          .key_prefix = "bench/k"};
    const char *url = "http://127.0.0.1:8081";
    static const struct option opts[] = {{"target", required_argument, NULL, 't'},
                                         {"url", required_argument, NULL, 'u'},
                                         {"conns", required_argument, NULL, 'c'},
                                         {"threads", required_argument, NULL, 'T'},
                                         {"duration", required_argument, NULL, 'd'},
                                         {"requests", required_argument, NULL, 'n'},
                                         {"read-ratio", required_argument, NULL, 'r'},
                                         {"keys", required_argument, NULL, 'k'},
                                         {"value-size", required_argument, NULL, 'v'},
                                         {"consistency", required_argument, NULL, 'C'},
                                         {"preload", no_argument, NULL, 'p'},
                                         {"warmup", required_argument, NULL, 'w'},
                                         {"timeout", required_argument, NULL, 'o'},
                                         {"seed", required_argument, NULL, 's'},
                                         {"key-prefix", required_argument, NULL, 'K'},
                                         {"quiet", no_argument, NULL, 'q'},
                                         {"server-pid", required_argument, NULL, 'P'},
                                         {"header", required_argument, NULL, 'H'},
                                         {"route-batch", required_argument, NULL, 'B'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 't':
            if (strcmp(optarg, "citrus") == 0)
                cfg.target = TARGET_CITRUS;
            else if (strcmp(optarg, "etcd") == 0)
                cfg.target = TARGET_ETCD;
            else if (strcmp(optarg, "route") == 0)
                cfg.target = TARGET_ROUTE;
            else {
                fprintf(stderr, "kvbench: --target must be citrus, etcd or route\n");
                return 2;
            }
            break;
        case 'u':
            url = optarg;
            break;
        case 'c':
            cfg.conns = (int)parse_double(optarg, "--conns");
            break;
        case 'T':
            cfg.threads = (int)parse_double(optarg, "--threads");
            break;
        case 'd':
            cfg.duration = parse_double(optarg, "--duration");
            break;
        case 'n':
            cfg.requests = (uint64_t)parse_double(optarg, "--requests");
            break;
        case 'r':
            cfg.read_ratio = parse_double(optarg, "--read-ratio");
            break;
        case 'k':
            cfg.keys = (int)parse_double(optarg, "--keys");
            break;
        case 'v':
            cfg.value_size = (int)parse_double(optarg, "--value-size");
            break;
        case 'C':
            cfg.consistency = optarg;
            break;
        case 'p':
            cfg.preload = 1;
            break;
        case 'w':
            cfg.warmup = parse_double(optarg, "--warmup");
            break;
        case 'o':
            cfg.timeout = parse_double(optarg, "--timeout");
            break;
        case 's':
            cfg.seed = (uint64_t)parse_double(optarg, "--seed");
            break;
        case 'K':
            cfg.key_prefix = optarg;
            break;
        case 'q':
            cfg.quiet = 1;
            break;
        case 'P':
            cfg.server_pid = (int)parse_double(optarg, "--server-pid");
            break;
        case 'H':
            cfg.extra_hdr = optarg;
            break;
        case 'B':
            cfg.route_batch = (int)parse_double(optarg, "--route-batch");
            if (cfg.route_batch < 0 || cfg.route_batch > 10000) {
                fprintf(stderr, "kvbench: --route-batch is 0..10000\n");
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc || cfg.conns < 1 || cfg.conns > 100000 || cfg.threads < 1 ||
        cfg.threads > 256 || cfg.keys < 1 || cfg.value_size < 0 || cfg.value_size > (1 << 24) ||
        cfg.read_ratio > 1 || cfg.timeout <= 0 || (cfg.requests == 0 && cfg.duration <= 0) ||
        strlen(cfg.key_prefix) > 200) {
        fprintf(stderr, "kvbench: bad arguments\n");
        usage(stderr);
        return 2;
    }
    if (parse_url(url) < 0) {
        fprintf(stderr, "kvbench: --url must look like http://HOST:PORT\n");
        return 2;
    }
    if (cfg.extra_hdr) {
        size_t used = strlen(cfg.host_hdr);
        if (!strchr(cfg.extra_hdr, ':') || strpbrk(cfg.extra_hdr, "\r\n") ||
            used + 2 + strlen(cfg.extra_hdr) >= sizeof(cfg.host_hdr)) {
            fprintf(stderr, "kvbench: --header must be one 'Name: value' line (< 8 KiB)\n");
            return 2;
        }
        snprintf(cfg.host_hdr + used, sizeof(cfg.host_hdr) - used, "\r\n%s", cfg.extra_hdr);
    }
    if (cfg.target == TARGET_ROUTE && (cfg.read_ratio != 1.0 || cfg.preload)) {
        fprintf(stderr, "kvbench: --target route is read-only (no --read-ratio, --preload)\n");
        return 2;
    }
    if (!cfg.consistency)
        cfg.consistency = cfg.target == TARGET_ETCD ? "serializable" : "bounded";
    mat.read_query = "";
    if (cfg.target == TARGET_ROUTE) {
        /* nothing to set up: routes are served from the node's copy */
    } else if (cfg.target == TARGET_CITRUS) {
        /* Explicit either way: the server's default level is not ours to assume. */
        if (strcmp(cfg.consistency, "strong") == 0)
            mat.read_query = "?consistency=strong";
        else if (strcmp(cfg.consistency, "bounded") == 0)
            mat.read_query = "?consistency=bounded";
        else {
            fprintf(stderr, "kvbench: citrus --consistency is bounded or strong\n");
            return 2;
        }
    } else {
        if (strcmp(cfg.consistency, "serializable") == 0)
            mat.etcd_serializable = 1;
        else if (strcmp(cfg.consistency, "linearizable") != 0) {
            fprintf(stderr, "kvbench: etcd --consistency is serializable or linearizable\n");
            return 2;
        }
    }

    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int gai = getaddrinfo(cfg.host, cfg.port, &hints, &server_addr);
    if (gai != 0) {
        fprintf(stderr, "kvbench: cannot resolve %s:%s: %s\n", cfg.host, cfg.port,
                gai_strerror(gai));
        return 1;
    }

    /* Request material: one value for every write, base64 keys for etcd. */
    uint64_t vr = cfg.seed ^ 0xA5A5A5A5DEADBEEFull;
    mat.value = malloc((size_t)cfg.value_size + 1);
    if (!mat.value)
        return 1;
    for (int i = 0; i < cfg.value_size; i++)
        mat.value[i] = (char)('a' + bench_xorshift(&vr) % 26);
    mat.value[cfg.value_size] = '\0';
    if (cfg.target == TARGET_ETCD) {
        mat.value_b64 = base64((const unsigned char *)mat.value, (size_t)cfg.value_size);
        mat.key_b64 = calloc((size_t)cfg.keys, sizeof(char *));
        if (!mat.value_b64 || !mat.key_b64)
            return 1;
        char kb[256];
        for (int i = 0; i < cfg.keys; i++) {
            int kl = snprintf(kb, sizeof(kb), "%s%d", cfg.key_prefix, i);
            mat.key_b64[i] = base64((const unsigned char *)kb, (size_t)kl);
            if (!mat.key_b64[i])
                return 1;
        }
    }

    struct sigaction sa = {.sa_handler = on_sigint};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (!cfg.quiet) {
        printf("kvbench target=%s url=%s conns=%d threads=%d read_ratio=%g keys=%d "
               "value_size=%d consistency=%s preload=%s warmup=%gs ",
               target_names[cfg.target], cfg.url, cfg.conns,
               cfg.threads < cfg.conns ? cfg.threads : cfg.conns, cfg.read_ratio, cfg.keys,
               cfg.value_size, cfg.consistency, cfg.preload ? "yes" : "no", cfg.warmup);
        if (cfg.requests)
            printf("requests=%llu\n", (unsigned long long)cfg.requests);
        else
            printf("duration=%gs\n", cfg.duration);
        fflush(stdout);
    }

    struct result pre;
    memset(&pre, 0, sizeof(pre));
    struct opstats pre_all;
    memset(&pre_all, 0, sizeof(pre_all));
    if (cfg.preload) {
        run_engine(MODE_PRELOAD, (uint64_t)cfg.keys, 0, 0, &pre);
        /* Connection failures before the first request land in the warmup bucket. */
        stats_merge(&pre.measured, &pre.warmup);
        total_of(&pre.measured, &pre_all);
        /* Every key must have been written successfully; a shortfall is an error too. */
        uint64_t missing = (uint64_t)cfg.keys > pre_all.ok ? (uint64_t)cfg.keys - pre_all.ok : 0;
        if (missing > pre_all.errors)
            pre_all.errors = missing;
        if (!cfg.quiet) {
            printf("preload: %llu of %d keys written in %.2f s, %llu errors\n",
                   (unsigned long long)pre_all.ok, cfg.keys, pre.elapsed_s,
                   (unsigned long long)pre_all.errors);
            if (pre_all.errors)
                print_errors("preload", &pre.measured);
        }
        if (pre_all.errors && pre.first_error[0])
            fprintf(stderr, "kvbench: preload: first error: %s\n", pre.first_error);
    }

    struct result res;
    if (interrupted)
        memset(&res, 0, sizeof(res));
    else
        run_engine(MODE_MAIN, cfg.requests, cfg.warmup, cfg.duration, &res);
    struct opstats all;
    total_of(&res.measured, &all);
    struct opstats wall;
    total_of(&res.warmup, &wall);
    uint64_t errors = all.errors + wall.errors + pre_all.errors;
    double cm, cst, cc, cs, co;
    cpu_cores(&res, &cm, &cst, &cc, &cs, &co);
    int failed = errors > 0 || interrupted || op_total(&all) == 0;

    if (!cfg.quiet) {
        printf("measured %.2f s, %llu reconnects\n", res.elapsed_s,
               (unsigned long long)res.measured.reconnects);
        printf("cpu (cores, of %ld): machine %.2f = client %.2f + ", sysconf(_SC_NPROCESSORS_ONLN),
               cm, cc);
        if (cs >= 0)
            printf("server %.2f + ", cs);
        printf("other %.2f%s; steal %.2f\n", co, cs >= 0 ? "" : " (incl. server)", cst);
        printf("%-6s %10s %8s %8s %11s %9s %9s %9s %9s %9s\n", "op", "requests", "errors", "misses",
               "req/s", "mean_us", "p50_us", "p99_us", "p999_us", "max_us");
        print_row("all", &all, res.elapsed_s);
        for (int o = 0; o < OP_COUNT; o++)
            if (op_total(&res.measured.op[o]))
                print_row(op_names[o], &res.measured.op[o], res.elapsed_s);
        if (all.errors)
            print_errors("measured", &res.measured);
        if (all.misses)
            printf("note: %llu reads found no value (use --preload to write every key first)\n",
                   (unsigned long long)all.misses);
        if (wall.errors)
            print_errors("warmup/setup", &res.warmup);
        if (failed) {
            printf("RESULT FAILED: %llu errors (preload %llu, warmup %llu, measured %llu)%s%s\n",
                   (unsigned long long)errors, (unsigned long long)pre_all.errors,
                   (unsigned long long)wall.errors, (unsigned long long)all.errors,
                   interrupted ? ", interrupted" : "",
                   op_total(&all) == 0 ? ", no requests completed" : "");
        } else {
            printf("RESULT OK: 0 errors\n");
        }
    }
    if ((all.errors || wall.errors) && res.first_error[0])
        fprintf(stderr, "kvbench: first error: %s\n", res.first_error);

    printf("{\"tool\":\"kvbench\",\"target\":\"%s\",\"url\":", target_names[cfg.target]);
    json_string(cfg.url);
    printf(",\"conns\":%d,\"threads\":%d,\"read_ratio\":%g,\"keys\":%d,\"value_size\":%d,"
           "\"consistency\":\"%s\",\"preload\":%s,\"warmup_s\":%g,\"duration_s\":%.3f,",
           cfg.conns, cfg.threads < cfg.conns ? cfg.threads : cfg.conns, cfg.read_ratio, cfg.keys,
           cfg.value_size, cfg.consistency, cfg.preload ? "true" : "false", cfg.warmup,
           res.elapsed_s);
    printf("\"requests\":%llu,\"errors\":%llu,\"preload_errors\":%llu,\"warmup_errors\":%llu,"
           "\"misses\":%llu,\"reconnects\":%llu,\"rps\":%.1f,",
           (unsigned long long)op_total(&all), (unsigned long long)all.errors,
           (unsigned long long)pre_all.errors, (unsigned long long)wall.errors,
           (unsigned long long)all.misses, (unsigned long long)res.measured.reconnects,
           res.elapsed_s > 0 ? (double)op_total(&all) / res.elapsed_s : 0);
    printf("\"cpu_cores\":{\"online\":%ld,\"machine\":%.3f,\"steal\":%.3f,\"client\":%.3f,"
           "\"server\":",
           sysconf(_SC_NPROCESSORS_ONLN), cm, cst, cc);
    if (cs >= 0)
        printf("%.3f", cs);
    else
        printf("null");
    printf(",\"other\":%.3f},", co);
    printf("\"error_kinds\":{");
    for (int e = 0; e < ERR_COUNT; e++)
        printf("\"%s\":%llu%s", err_names[e],
               (unsigned long long)(res.measured.err_kind[e] + res.warmup.err_kind[e] +
                                    pre.measured.err_kind[e]),
               e + 1 < ERR_COUNT ? "," : "");
    printf("},");
    json_op("all", &all, res.elapsed_s, 1);
    json_op("read", &res.measured.op[OP_READ], res.elapsed_s, 1);
    json_op("write", &res.measured.op[OP_WRITE], res.elapsed_s, 1);
    printf("\"first_error\":");
    json_string(res.first_error[0] ? res.first_error : pre.first_error);
    printf(",\"ok\":%s}\n", failed ? "false" : "true");
    fflush(stdout);
    freeaddrinfo(server_addr);
    return failed ? 3 : 0;
}
