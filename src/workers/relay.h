/* workers/relay.h — the lifecycle relay: every change of a shard record or
 * a tenant pin in the catalog becomes events on the lifecycle topic
 * (bus.topics.sm_events), whoever made it (API, worker, provisioner, later
 * the resharder and the health controller).
 *
 * It follows the catalog's watch from the revision it last published
 * (kept in the catalog at RELAY_CHECKPOINT_KEY), so it never skips a
 * change: a transition without its event is impossible while the
 * catalog's history reaches back to the checkpoint, and every event is
 * made from a committed change, so there is no event without its
 * transition. Event ids come from the catalog revision (`sm-<rev>-<n>`, n
 * counting the events of that revision in the watch's order) and are the
 * same when a revision is gone through again: after a crash between
 * publishing and recording the checkpoint (or a failed publish), the
 * relay reads the topic's tail before it goes on and publishes only the
 * events whose ids are not there yet, so each id is on the topic once
 * (bounded read: past its bounds an event may be published again, with
 * the same id; never lost).
 *
 * What one change publishes (docs/events.md, "Lifecycle events"):
 *   shard record created      citrus.shard.created
 *   each lifecycle transition citrus.shard.state_changed (one per history
 *                             entry above the record's base_epoch)
 *   any other change          citrus.shard.updated
 *   shard record deleted      citrus.shard.deleted
 *   tenant pin created        citrus.tenant.registered
 *   tenant pin changed        citrus.tenant.updated
 *   tenant pin deleted        citrus.tenant.removed
 * No event carries a DSN or any other credential.
 *
 * Only the controller leader publishes (session_is_leader); the checkpoint
 * is written with the leader's fencing token, so a deposed leader cannot
 * move it. */
#ifndef CITRUS_WORKERS_RELAY_H
#define CITRUS_WORKERS_RELAY_H

#include <stdint.h>

#include "bus/bus.h"
#include "catalog/store.h"
#include "controller/session.h"
#include "sys/clock.h"

#define RELAY_CHECKPOINT_KEY "citrus/relay/sm-events"
#define RELAY_EVENT_SOURCE "/citrus/controller"

typedef struct relay relay;

typedef struct relay_options {
    store *st;             /* borrowed; outlives the relay */
    bus *b;                /* borrowed; outlives the relay */
    const char *topic;     /* copied: the lifecycle topic (must exist) */
    session *sess;         /* borrowed: publish only while it leads; NULL: always (tests) */
    const sysclock *clock; /* NULL: the real clock */
    /* How often the checkpoint is written while events flow (0: 1000 ms);
     * it is also written when the relay stops. */
    int64_t checkpoint_every_ms;
} relay_options;

/* Starts the relay's thread. 0, CITRUS_EINVAL, CITRUS_ENOMEM. */
int relay_start(const relay_options *o, relay **out);
/* The last revision whose events are all published (0: none yet). */
int64_t relay_published(relay *r);
/* Stops the thread, writes the checkpoint (when leading) and frees r.
 * NULL is a no-op. */
void relay_stop(relay *r);
/* As relay_stop without writing the checkpoint: what a crash leaves (for
 * tests). */
void relay_abandon(relay *r);

#endif
