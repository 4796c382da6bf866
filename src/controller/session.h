/* controller/session.h — this node's membership in the cluster.
 *
 * A session holds one catalog lease, kept alive by its own thread. Under it
 * the node registers itself (citrus/nodes/<id>, so a dead node disappears
 * when its lease expires) and, when asked to, campaigns for the controller
 * leader key (controller/election.h). A lost lease (the catalog was
 * unreachable for longer than the TTL) is replaced by a new one, and the
 * registration and candidacy are renewed under it. Leadership is reported
 * only while the lease is known to be alive: until the send time of the
 * last successful keepalive plus the TTL. */
#ifndef CITRUS_CONTROLLER_SESSION_H
#define CITRUS_CONTROLLER_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include "catalog/store.h"
#include "sys/clock.h"

#define SESSION_NODES_PREFIX "citrus/nodes/"

typedef struct session session;

typedef struct session_options {
    store *st;              /* borrowed; outlives the session */
    const char *node_id;    /* copied */
    const char *api_url;    /* copied; advertised in the registration */
    int64_t ttl_s;          /* lease TTL; 0 = 5 */
    bool campaign;          /* run for controller leader */
    const char *leader_key; /* NULL = ELECTION_KEY */
    const sysclock *clock;  /* borrowed, outlives the session; NULL = real */
} session_options;

/* Starts the session's thread: a round (session_run_once) every TTL/3, or
 * at once when the leader key changes. */
int session_start(const session_options *opts, session **out);
/* The same without the thread: nothing happens until session_run_once (for
 * tests that drive it round by round). */
int session_new(const session_options *opts, session **out);
/* One round: keeps the lease alive (or grants a new one and registers
 * under it), then campaigns when asked to. From one thread at a time. */
void session_run_once(session *s);
/* Stops the thread (if started) and revokes the lease: the registration
 * and any leadership end at once rather than at expiry. NULL is a no-op. */
void session_stop(session *s);

/* True while this node holds the leader key under a live lease; *token is
 * the fencing token (the key's create_revision). */
bool session_is_leader(session *s, int64_t *token);
/* True once this node is registered (and, when campaigning, has run for
 * leader once) under a lease that is still known to be alive. */
bool session_ready(session *s);
/* The current lease id (0 while there is none). */
int64_t session_lease(session *s);

#endif
