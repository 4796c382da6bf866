/* tests/fuzz/fuzz_route.c — route_find over the API route table, and
 * route_match_path over arbitrary patterns.
 *
 * First byte even: byte 1 picks a method, the rest is the (decoded) request
 * path, matched against api_routes. First byte odd: the rest is
 * "PATTERN\nPATH". Verdicts and captured parameters are compared with a
 * separate matcher written from the rules in http/route.h. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "check.h"
#include "citrus/errors.h"
#include "http/route.h"

typedef struct capture {
    size_t n;
    const char *name[ROUTE_MAX_PARAMS + 1];
    size_t name_len[ROUTE_MAX_PARAMS + 1];
    const char *value[ROUTE_MAX_PARAMS + 1];
    size_t value_len[ROUTE_MAX_PARAMS + 1];
    bool overflow; /* more than ROUTE_MAX_PARAMS captures were needed */
} capture;

static size_t seg_len(const char *s)
{
    const char *slash = strchr(s, '/');
    return slash ? (size_t)(slash - s) : strlen(s);
}

static void add(capture *c, const char *name, size_t nlen, const char *val, size_t vlen)
{
    if (c->n == ROUTE_MAX_PARAMS) {
        c->overflow = true;
        return;
    }
    c->name[c->n] = name;
    c->name_len[c->n] = nlen;
    c->value[c->n] = val;
    c->value_len[c->n] = vlen;
    c->n++;
}

/* The rules of route.h, one segment per call. */
static bool oracle_match(const char *pat, const char *path, capture *c)
{
    if (*pat == '\0')
        return *path == '\0';
    if (pat[0] != '/' || path[0] != '/')
        return false;
    pat++;
    path++;
    size_t pl = seg_len(pat), sl = seg_len(path);
    bool param = pl >= 2 && pat[0] == '{' && pat[pl - 1] == '}';
    if (param && pl >= 3 && pat[pl - 2] == '*') {
        add(c, pat + 1, pl - 3, path, strlen(path));
        return true; /* the rest of the path, whatever the pattern says after */
    }
    if (param) {
        if (sl == 0)
            return false;
        add(c, pat + 1, pl - 2, path, sl);
    } else if (pl != sl || memcmp(pat, path, pl) != 0) {
        return false;
    }
    return oracle_match(pat + pl, path + sl, c);
}

static void check_same_captures(const route_match *m, const capture *c)
{
    FUZZ_CHECK(m->nparams == c->n, "%zu parameters, oracle %zu", m->nparams, c->n);
    for (size_t i = 0; i < c->n; i++) {
        FUZZ_CHECK(strlen(m->names[i]) == c->name_len[i] &&
                       memcmp(m->names[i], c->name[i], c->name_len[i]) == 0,
                   "parameter %zu is named '%s'", i, m->names[i]);
        FUZZ_CHECK(strlen(m->values[i]) == c->value_len[i] &&
                       memcmp(m->values[i], c->value[i], c->value_len[i]) == 0,
                   "parameter %zu is '%s'", i, m->values[i]);
        FUZZ_CHECK(route_match_param(m, m->names[i]) != NULL, "parameter %zu not found by name", i);
    }
}

static void fuzz_table(const char *method, const char *path)
{
    const http_route *found = NULL;
    route_match m = {0};
    char allow[128];
    int rc = route_find(api_routes, api_nroutes, method, path, &found, &m, allow, sizeof(allow));

    size_t first = api_nroutes, matches = 0;
    capture want = {0};
    for (size_t i = 0; i < api_nroutes; i++) {
        capture c = {0};
        if (!oracle_match(api_routes[i].pattern, path, &c))
            continue;
        matches++;
        if (first == api_nroutes && strcmp(api_routes[i].method, method) == 0) {
            first = i;
            want = c;
        } else if (first == api_nroutes) {
            FUZZ_CHECK(strstr(allow, api_routes[i].method) != NULL, "Allow '%s' lacks %s", allow,
                       api_routes[i].method);
        }
    }
    if (first < api_nroutes) {
        FUZZ_CHECK(rc == 0, "route_find returned %d; route %zu matches", rc, first);
        FUZZ_CHECK(found == &api_routes[first], "route_find chose route %td, oracle %zu",
                   found - api_routes, first);
        check_same_captures(&m, &want);
    } else if (matches) {
        FUZZ_CHECK(rc == CITRUS_EMETHOD, "route_find returned %d, expected EMETHOD", rc);
        FUZZ_CHECK(allow[0] != '\0', "EMETHOD with an empty Allow");
        FUZZ_CHECK(m.nparams == 0, "EMETHOD left parameters behind");
    } else {
        FUZZ_CHECK(rc == CITRUS_ENOROUTE, "route_find returned %d, expected ENOROUTE", rc);
        FUZZ_CHECK(m.nparams == 0, "ENOROUTE left parameters behind");
    }
    route_match_clear(&m);
}

static void fuzz_pattern(const char *pattern, const char *path)
{
    route_match m = {0};
    capture want = {0};
    bool match = oracle_match(pattern, path, &want);
    int rc = route_match_path(pattern, path, &m);
    if (want.overflow) {
        /* Undefined beyond the limit; route_match_path must only not crash
         * or leak (the caller clears m). */
        route_match_clear(&m);
        return;
    }
    FUZZ_CHECK(rc == (match ? 1 : 0), "route_match_path returned %d, oracle %d", rc, match);
    if (match)
        check_same_captures(&m, &want);
    else
        FUZZ_CHECK(m.nparams == 0, "no match left parameters behind");
    FUZZ_CHECK(route_match_path(pattern, path, NULL) == rc, "result depends on m");
    route_match_clear(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const methods[] = {"GET", "PUT", "DELETE", "POST", "PATCH", "HEAD"};
    if (size < 2)
        return 0;
    /* The server hands route_find a NUL-terminated decoded path. */
    char *text = malloc(size - 1);
    if (!text)
        return 0;
    memcpy(text, data + 2, size - 2);
    text[size - 2] = '\0';
    if (data[0] % 2 == 0) {
        fuzz_table(methods[data[1] % (sizeof(methods) / sizeof(methods[0]))], text);
    } else {
        char *nl = strchr(text, '\n');
        if (nl) {
            *nl = '\0';
            fuzz_pattern(text, nl + 1);
        }
    }
    free(text);
    return 0;
}
