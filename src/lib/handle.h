/* lib/handle.h — the citrus_client behind the public handle: its
 * connections, the current snapshot of the routing copy, and the feed that
 * refreshes it (lib/feed.h). */
#ifndef CITRUS_LIB_HANDLE_H
#define CITRUS_LIB_HANDLE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "citrus/citrus.h"
#include "lib/conns.h"
#include "lib/feed.h"
#include "lib/snap.h"

struct citrus_client {
    conns *conns;
    char *router; /* NULL: no router configured */
    long request_ms;
    atomic_uint replica_rr; /* round robin over replicas, from any thread */

    pthread_mutex_t mu;
    pthread_cond_t cv; /* a new snapshot */
    snap *cur;         /* guarded by mu */

    feed *feed; /* publishes to cur through handle_publish */
};

/* A client with no copy loaded and no watch (citrus_connect loads and
 * starts them; benchmarks publish a snapshot of their own). NULL with err
 * filled for bad options. handle_free stops the watch and frees it. */
citrus_client *handle_new(const citrus_options *o, citrus_error *err);
void handle_free(citrus_client *c);

/* Routing keys are 1..HANDLE_KEY_MAX bytes. The length of key, or 0 after
 * CITRUS_EINVAL in err when key is NULL or not of such a length. */
#define HANDLE_KEY_MAX 1024
size_t handle_key_len(const char *key, citrus_error *err);

/* Makes s (a reference the caller gives up) the current snapshot and wakes
 * waiters. */
void handle_publish(citrus_client *c, snap *s);

#endif
