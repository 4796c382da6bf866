/* lib/handle.h — the citrus_client behind the public handle: its
 * connections, the current snapshot of the routing copy, and the state of
 * the watch that refreshes it (lib/feed.c). */
#ifndef CITRUS_LIB_HANDLE_H
#define CITRUS_LIB_HANDLE_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "citrus/citrus.h"
#include "lib/conns.h"
#include "lib/snap.h"

struct citrus_client {
    conns *conns;
    char *router; /* NULL: no router configured */
    long request_ms;
    unsigned replica_rr; /* atomic: round robin over replicas */

    pthread_mutex_t mu;
    pthread_cond_t cv; /* a new snapshot, or stop */
    snap *cur;         /* guarded by mu */

    /* The watch (lib/feed.c). build_mu serialises loads (the watch
     * thread's and citrus_refresh's) over builder and next_rev. */
    pthread_mutex_t build_mu;
    snap_builder builder;
    int64_t next_rev; /* the revision the watch continues from */
    bool loaded;      /* false: the builder is not a whole copy (load again) */
    bool watching;
    pthread_t thread;
    volatile sig_atomic_t stop; /* also the watch request's abort flag */
    struct client *watch;       /* the watch thread's HTTP client; guarded by mu */
};

/* A client with no copy loaded and no watch (citrus_connect loads and
 * starts them; benchmarks publish a snapshot of their own). NULL with err
 * filled for bad options. handle_free frees it (the watch stopped). */
citrus_client *handle_new(const citrus_options *o, citrus_error *err);
void handle_free(citrus_client *c);

/* Routing keys are 1..HANDLE_KEY_MAX bytes. The length of key, or 0 after
 * CITRUS_EINVAL in err when key is NULL or not of such a length. */
#define HANDLE_KEY_MAX 1024
size_t handle_key_len(const char *key, citrus_error *err);

/* The CLOCK_REALTIME time ms from now (for pthread_cond_timedwait). */
struct timespec handle_deadline(long ms);

/* The current snapshot: a new reference (snap_unref), never NULL after
 * citrus_connect. */
snap *handle_snap(citrus_client *c);
/* Makes s (a reference the caller gives up) the current snapshot and wakes
 * waiters. */
void handle_publish(citrus_client *c, snap *s);

#endif
