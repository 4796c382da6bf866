/* api/app.h — what request handlers share: the catalog store and limits. */
#ifndef CITRUS_API_APP_H
#define CITRUS_API_APP_H

#include <stddef.h>
#include <stdint.h>

#include "catalog/store.h"
#include "controller/session.h"
#include "http/server.h"

typedef struct app {
    store *st;              /* borrowed */
    size_t max_value_bytes; /* values over this are refused with value_too_large */
    const char *node_id;
    int64_t max_watch_timeout_ms; /* cap on a long poll's ?timeout */
    session *sess;                /* this node's session; NULL until started */
} app;

/* The route table served by citrus server / citrus dev. */
extern const http_route api_routes[];
extern const size_t api_nroutes;

#endif
