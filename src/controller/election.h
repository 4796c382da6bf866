/* controller/election.h — leader election over the catalog store.
 *
 * The leader key holds the leader's node id, attached to the leader's
 * session lease, so it disappears when the leader dies (lease expiry) or
 * resigns (revoke). Campaigning is one txn: "if the key does not exist, put
 * it with my lease, else read it". The key's create_revision is the fencing
 * token: a leader's writes compare it (election_fence), so once the key has
 * been re-created by another node, a deposed leader's writes fail. */
#ifndef CITRUS_CONTROLLER_ELECTION_H
#define CITRUS_CONTROLLER_ELECTION_H

#include <stdbool.h>
#include <stdint.h>

#include "catalog/store.h"

#define ELECTION_KEY "citrus/controller/leader"

typedef struct election_view {
    bool held;       /* someone holds the key */
    char leader[64]; /* their node id */
    int64_t token;   /* the key's create_revision (0 when free) */
    int64_t lease;   /* the lease it is attached to */
} election_view;

/* One campaign step. On success *won tells whether this node now holds the
 * key (with *view describing the holder either way). A node that already
 * holds the key under this lease keeps it (won = true, same token). */
int election_campaign(store *st, const char *key, const char *node_id, int64_t lease, bool *won,
                      election_view *view);

/* The holder as a read of the key shows it (no item: not held). */
void election_view_from(const kv_range_res *r, election_view *v);

/* Reads who holds the key. */
int election_observe(store *st, const char *key, election_view *view);

/* The compare a leader adds to its writes: create_revision(key) == token. */
kv_compare election_fence(const char *key, int64_t token);

#endif
