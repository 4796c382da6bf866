/* http/route.c — route table matching (pure string work, no I/O). */
#include "http/route.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"

void route_match_clear(route_match *m)
{
    for (size_t i = 0; i < m->nparams; i++) {
        free(m->names[i]);
        free(m->values[i]);
    }
    m->nparams = 0;
}

const char *route_match_param(const route_match *m, const char *name)
{
    for (size_t i = 0; i < m->nparams; i++)
        if (strcmp(m->names[i], name) == 0)
            return m->values[i];
    return NULL;
}

static int add_param(route_match *m, const char *name, size_t nlen, const char *val, size_t vlen)
{
    if (!m)
        return 0;
    if (m->nparams == ROUTE_MAX_PARAMS)
        return CITRUS_EINTERNAL;
    m->names[m->nparams] = strndup(name, nlen);
    m->values[m->nparams] = strndup(val, vlen);
    if (!m->names[m->nparams] || !m->values[m->nparams]) {
        free(m->names[m->nparams]);
        free(m->values[m->nparams]);
        return CITRUS_ENOMEM;
    }
    m->nparams++;
    return 0;
}

/* Returns 1 on match, 0 on no match, negative on error. */
int route_match_path(const char *pattern, const char *path, route_match *m)
{
    const char *p = pattern, *s = path;
    while (*p) {
        if (*p != '/' || *s != '/')
            goto nomatch;
        p++;
        s++;
        const char *pend = strchr(p, '/');
        size_t plen = pend ? (size_t)(pend - p) : strlen(p);
        const char *send = strchr(s, '/');
        size_t slen = send ? (size_t)(send - s) : strlen(s);
        if (plen >= 2 && p[0] == '{' && p[plen - 1] == '}') {
            if (p[plen - 2] == '*') { /* rest of the path */
                int rc = add_param(m, p + 1, plen - 3, s, strlen(s));
                return rc < 0 ? rc : 1;
            }
            if (slen == 0)
                goto nomatch;
            int rc = add_param(m, p + 1, plen - 2, s, slen);
            if (rc < 0)
                return rc;
        } else if (plen != slen || strncmp(p, s, plen) != 0) {
            goto nomatch;
        }
        p += plen;
        s += slen;
    }
    if (*s == '\0')
        return 1;
nomatch:
    if (m)
        route_match_clear(m);
    return 0;
}

int route_find(const http_route *routes, size_t n, const char *method, const char *path,
               const http_route **found, route_match *m, char *allow, size_t allow_len)
{
    size_t used = 0;
    allow[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        int rc = route_match_path(routes[i].pattern, path, NULL);
        if (rc < 0)
            return rc;
        if (rc == 0)
            continue;
        if (strcmp(routes[i].method, method) == 0) {
            rc = route_match_path(routes[i].pattern, path, m);
            if (rc < 0)
                return rc;
            *found = &routes[i];
            return 0;
        }
        if (!strstr(allow, routes[i].method) && used + strlen(routes[i].method) + 3 < allow_len) {
            used += (size_t)snprintf(allow + used, allow_len - used, "%s%s", used ? ", " : "",
                                     routes[i].method);
        }
    }
    return used ? CITRUS_EMETHOD : CITRUS_ENOROUTE;
}
