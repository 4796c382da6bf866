/* http/route.h — matching a method and path against the route table.
 *
 * Patterns are '/'-separated; a segment "{name}" captures one non-empty path
 * segment, a final "{name*}" captures the rest of the path (possibly empty,
 * slashes included). Literal segments match exactly. */
#ifndef CITRUS_HTTP_ROUTE_H
#define CITRUS_HTTP_ROUTE_H

#include <stddef.h>

#include "http/server.h"

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
