/* tests/unit/test_http_guard.c — http/guard.c: the request target, the
 * header fields and their layout in a header block as libmicrohttpd 0.9.75
 * leaves it (each case below is parsed the way it parses, by mhd_parse),
 * and the header deadline on real sockets. */
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "http/guard.h"

/* ---- the target ---- */

static void test_target(void **state)
{
    (void)state;
    assert_null(guard_target("/v1/kv/a%20b?prefix=true"));
    assert_null(guard_target("/"));
    assert_non_null(guard_target(NULL));
    assert_non_null(guard_target(""));
    assert_non_null(guard_target("/v1/kv/a b"));
    assert_non_null(guard_target("/v1/kv/a\tb"));
    assert_non_null(guard_target("/v1/kv/a\x01"));
    assert_non_null(guard_target("/v1/kv/a\x7f"));
    assert_non_null(guard_target("/a\r"));
}

/* ---- the fields ---- */

#define F(n, v)                                                                                    \
    {                                                                                              \
        n, sizeof(n) - 1, v, sizeof(v) - 1                                                         \
    }

static void test_fields(void **state)
{
    (void)state;
    guard_field ok[] = {F("Host", "x"), F("Content-Length", "12"), F("X-A", "a\tb c")};
    assert_null(guard_fields(ok, 3));
    guard_field te[] = {F("Host", "x"), F("transfer-encoding", "Chunked")};
    assert_null(guard_fields(te, 2));

    guard_field two_cl[] = {F("Content-Length", "2"), F("content-length", "60")};
    assert_string_equal(guard_fields(two_cl, 2), "more than one Content-Length");
    guard_field same_cl[] = {F("Content-Length", "2"), F("Content-Length", "2")};
    assert_non_null(guard_fields(same_cl, 2));
    guard_field cl_te[] = {F("Transfer-Encoding", "chunked"), F("Content-Length", "5")};
    assert_string_equal(guard_fields(cl_te, 2), "both Content-Length and Transfer-Encoding");
    guard_field two_te[] = {F("Transfer-Encoding", "chunked"), F("Transfer-Encoding", "chunked")};
    assert_non_null(guard_fields(two_te, 2));
    guard_field gzip[] = {F("Transfer-Encoding", "gzip, chunked")};
    assert_non_null(guard_fields(gzip, 1));
    guard_field bad_cl[] = {F("Content-Length", "+5")};
    assert_non_null(guard_fields(bad_cl, 1));
    guard_field list_cl[] = {F("Content-Length", "5, 5")};
    assert_non_null(guard_fields(list_cl, 1));
    guard_field ctl[] = {F("X-A", "a\x01")};
    assert_non_null(guard_fields(ctl, 1));
    guard_field del[] = {F("X-A", "a\x7f")};
    assert_non_null(guard_fields(del, 1));
    guard_field space_name[] = {F("X A", "b")};
    assert_non_null(guard_fields(space_name, 1));
    guard_field empty_name[] = {F("", "b")};
    assert_non_null(guard_fields(empty_name, 1));
}

/* ---- the layout ---- */

typedef struct parsed {
    char buf[512];
    char moved[256]; /* where a folded line's name goes (libmicrohttpd's pool) */
    guard_field f[16];
    size_t n;
    const char *line_end, *end;
} parsed;

/* The next line of buf from *pos: its NUL-terminated start (its CR LF or LF
 * made NULs, as libmicrohttpd does), or NULL at the end. */
static char *next_line(char *buf, size_t len, size_t *pos)
{
    for (size_t i = *pos; i < len; i++) {
        if (buf[i] == '\r' && i + 1 < len && buf[i + 1] == '\n') {
            char *line = buf + *pos;
            buf[i] = buf[i + 1] = '\0';
            *pos = i + 2;
            return line;
        }
        if (buf[i] == '\n') {
            char *line = buf + *pos;
            buf[i] = '\0';
            *pos = i + 1;
            return line;
        }
    }
    return NULL;
}

/* Parses raw (len bytes: request line, fields, empty line) as
 * libmicrohttpd 0.9.75 does: C strings, so a NUL cuts a name or value; a
 * folded line moves the previous name elsewhere with the line appended. */
static void mhd_parse(const char *raw, size_t len, parsed *p)
{
    memset(p, 0, sizeof(*p));
    memcpy(p->buf, raw, len);
    size_t pos = 0;
    char *line = next_line(p->buf, len, &pos);
    assert_non_null(line);
    char *version = strrchr(line, ' ');
    assert_non_null(version);
    *version++ = '\0';
    p->line_end = version + strlen(version);
    while ((line = next_line(p->buf, len, &pos)) != NULL && line[0]) {
        if (line[0] == ' ' || line[0] == '\t') {
            guard_field *last = &p->f[p->n - 1];
            snprintf(p->moved, sizeof(p->moved), "%s%s", last->name, line + 1);
            last->name = p->moved;
            last->name_len = strlen(p->moved);
            continue;
        }
        char *colon = strchr(line, ':');
        assert_non_null(colon);
        *colon++ = '\0';
        while (*colon == ' ' || *colon == '\t')
            colon++;
        p->f[p->n++] = (guard_field){line, strlen(line), colon, strlen(colon)};
    }
    assert_non_null(line); /* the empty line */
    p->end = p->buf + pos;
}

static const char *layout(const char *raw, size_t len)
{
    static parsed p;
    mhd_parse(raw, len, &p);
    return guard_layout(p.line_end, p.end, p.f, p.n);
}

#define LAYOUT(s) layout(s, sizeof(s) - 1)

static void test_layout(void **state)
{
    (void)state;
    assert_null(LAYOUT("GET / HTTP/1.1\r\nHost: x\r\nX-A: a b\r\n\r\n"));
    assert_null(LAYOUT("GET / HTTP/1.1\nHost: x\nX-A:\nX-B: \tc\n\n"));
    assert_null(LAYOUT("GET / HTTP/1.1\r\nHost: x\n\r\n"));
    assert_null(LAYOUT("GET / HTTP/1.1\r\n\r\n"));
    /* a NUL in a value, before another field */
    assert_non_null(LAYOUT("GET / HTTP/1.1\r\nX-A: a\0b\r\nHost: x\r\n\r\n"));
    /* ... in the last value, and at its end */
    assert_non_null(LAYOUT("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n"));
    assert_non_null(LAYOUT("GET / HTTP/1.1\r\nHost: x\r\nX-A: ab\0\r\n\r\n"));
    /* the one case that cannot be told (guard.h): NUL, bare LF, CR LF */
    assert_null(LAYOUT("GET / HTTP/1.1\r\nHost: x\r\nX-A: ab\0\n\r\n"));
    /* a NUL between the colon and the value */
    assert_non_null(LAYOUT("GET / HTTP/1.1\r\nX-A:\0 b\r\nHost: x\r\n\r\n"));
    /* obsolete line folding */
    assert_non_null(LAYOUT("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n"));
    assert_non_null(LAYOUT("GET / HTTP/1.1\r\nX-A: a\r\n\tb\r\nHost: x\r\n\r\n"));
    /* bounds */
    assert_non_null(guard_layout(NULL, NULL, NULL, 0));
}

/* ---- the deadline ---- */

/* Whether the peer of fd is shut down within ms (a read returns 0). */
static bool shut_within(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    char c;
    return poll(&p, 1, ms) == 1 && read(fd, &c, 1) == 0;
}

static void test_deadline(void **state)
{
    (void)state;
    guard_conns *g = guard_conns_new(200, "test");
    assert_non_null(g);
    int slow[2], done[2], again[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, slow), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, done), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, again), 0);
    guard_conn *cs = guard_conn_add(g, slow[0]);
    guard_conn *cd = guard_conn_add(g, done[0]);
    guard_conn *ca = guard_conn_add(g, again[0]);
    assert_non_null(cs);
    assert_non_null(cd);
    assert_non_null(ca);
    *guard_conn_data(cd) = cd;
    assert_ptr_equal(*guard_conn_data(cd), cd);
    guard_conn_headers_done(g, cd); /* its request runs: no deadline */
    guard_conn_headers_done(g, ca);
    guard_conn_request_done(g, ca); /* then ends: the next one's starts */
    assert_true(shut_within(slow[1], 2000));
    assert_true(shut_within(again[1], 2000));
    assert_false(shut_within(done[1], 400));
    assert_int_equal(guard_conns_cut(g), 2);
    guard_conn_remove(g, cs);
    guard_conn_remove(g, ca);
    guard_conn_remove(g, NULL);
    guard_conns_free(g); /* frees cd, still in the table */
    for (int i = 0; i < 2; i++) {
        close(slow[i]);
        close(done[i]);
        close(again[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_target),
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_deadline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
