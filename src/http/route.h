/* http/route.h — the route table (a method, a path pattern, a handler, its
 * body and role) and matching a request against it.
 *
 * Patterns are '/'-separated; a segment "{name}" captures one non-empty path
 * segment, a final "{name*}" captures the rest of the path (possibly empty,
 * slashes included). Literal segments match exactly. */
#ifndef CITRUS_HTTP_ROUTE_H
#define CITRUS_HTTP_ROUTE_H

#include <stddef.h>

typedef struct http_req http_req;

typedef int (*http_handler)(http_req *req, void *app);

/* Body expectations of a route. */
enum {
    ROUTE_BODY_NONE = 0, /* a body is ignored */
    ROUTE_BODY_RAW = 1,  /* any content type, kept as bytes */
    ROUTE_BODY_JSON = 2, /* application/json required (415 otherwise) */
};

typedef struct http_route {
    const char *method;
    /* Segments; "{name}" matches one segment, "{name*}" the rest of the path
     * (possibly empty). Example: "/v1/leases/{id}/keepalive". */
    const char *pattern;
    http_handler handler;
    int body; /* ROUTE_BODY_* */
    /* Who may call it, for the gate (http_server_options.gate) to enforce:
     * the role ("reader", "sm-operator", "sm-admin"; NULL: anyone) and what
     * else decides ("kv", "tenant", "tenant-body", "kv-body", "metrics";
     * NULL: the role alone). auth/authn.h says what each means; the server
     * itself does not read them. */
    const char *role;
    const char *scope;
} http_route;

#define ROUTE_MAX_PARAMS 4

typedef struct route_match {
    size_t nparams;
    char *names[ROUTE_MAX_PARAMS];  /* owned copies */
    char *values[ROUTE_MAX_PARAMS]; /* owned copies */
} route_match;

/* Finds the first route whose pattern and method match. Returns 0 with
 * *found and *m filled; CITRUS_EMETHOD when the path matches only other
 * methods (allow gets "GET, PUT"); CITRUS_ENOROUTE when nothing matches. */
int route_find(const http_route *routes, size_t n, const char *method, const char *path,
               const http_route **found, route_match *m, char *allow, size_t allow_len);

/* True when path matches pattern; fills m when non-NULL. */
int route_match_path(const char *pattern, const char *path, route_match *m);

const char *route_match_param(const route_match *m, const char *name);
void route_match_clear(route_match *m);

#endif
