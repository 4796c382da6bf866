/* core/shard.h — the shard: its record and its lifecycle (pure: no I/O).
 *
 * Lifecycle (an explicit table, checked on every change):
 *   pending -> provisioning -> initializing -> active
 *   active <-> read_only
 *   active -> draining -> drained -> retired
 *   draining -> active (cancel a drain)
 *   any state -> failed (not failed itself);  failed -> provisioning (retry)
 * A registered (not provisioned) database goes pending -> initializing ->
 * active. Every change is recorded with its reason, actor and time. */
#ifndef CITRUS_CORE_SHARD_H
#define CITRUS_CORE_SHARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    SHARD_PENDING,
    SHARD_PROVISIONING,
    SHARD_INITIALIZING,
    SHARD_ACTIVE,
    SHARD_READ_ONLY,
    SHARD_DRAINING,
    SHARD_DRAINED,
    SHARD_RETIRED,
    SHARD_FAILED,
} shard_state;
#define SHARD_NSTATES 9

#define SHARD_ID_MAX 63 /* [a-z0-9_-], 1..63 chars, starts with [a-z0-9] */
#define SHARD_MAX_REPLICAS 16
#define SHARD_MAX_TAGS 32
#define SHARD_WEIGHT_MAX 100.0

/* "pending", "provisioning", ..., "read_only", ...; "unknown" out of range. */
const char *shard_state_name(shard_state s);
/* 0, or CITRUS_EINVAL for an unknown name. */
int shard_state_parse(const char *name, shard_state *out);

/* Whether the table allows from -> to. */
bool shard_transition_ok(shard_state from, shard_state to);
/* The states reachable from `from` in one step, in enum order; returns how
 * many (out has room for SHARD_NSTATES; NULL only counts). */
size_t shard_transitions_from(shard_state from, shard_state *out);

/* Whether queries may be routed to a shard in this state (active,
 * read_only and draining for reads; active and draining for writes) — used
 * by the router. */
bool shard_state_serves_reads(shard_state s);
bool shard_state_serves_writes(shard_state s);

bool shard_id_valid(const char *id);
/* A weight a shard may have: finite, > 0 and <= SHARD_WEIGHT_MAX. */
bool shard_weight_valid(double w);

typedef struct shard_tag {
    char *key;
    char *value;
} shard_tag;

/* One recorded change. */
typedef struct shard_event {
    int64_t at_ms; /* wall clock, ms since the epoch */
    shard_state from, to;
    int64_t epoch; /* the record's epoch this change gave it; 0: not known (older records) */
    char *reason;  /* may be "" */
    char *actor;   /* who asked: "api", "provisioner", a node id, ... */
} shard_event;

typedef struct shard {
    char id[SHARD_ID_MAX + 1];
    shard_state state;
    char *dsn;       /* primary; NULL while not yet provisioned */
    char **replicas; /* nreplicas DSNs */
    size_t nreplicas;
    char *zone;    /* may be NULL */
    double weight; /* > 0; 1.0 by default */
    shard_tag *tags;
    size_t ntags;
    int64_t epoch; /* +1 on every change of the record */
    /* The epoch of the stored record this one was written over (0: none,
     * a new shard): the history entries with a larger epoch are the
     * changes one write made (the lifecycle relay publishes each). */
    int64_t base_epoch;
    int64_t created_ms, updated_ms;
    char *template_name;  /* schema template (business type); may be NULL */
    char *error;          /* why it failed; NULL unless failed */
    shard_event *history; /* oldest first */
    size_t nhistory;
} shard;

void shard_init(shard *s); /* zeroed, pending, weight 1 */
void shard_clear(shard *s);

/* Copies of the record's lists (replicas, tags): an array of n malloc'd
 * copies (at least one slot, so n == 0 gives a non-NULL empty array), or
 * NULL when out of memory (nothing left allocated). Freed with the
 * matching _free, which takes NULL. */
char **shard_strings_copy(char *const *v, size_t n);
void shard_strings_free(char **v, size_t n);
shard_tag *shard_tags_copy(const shard_tag *t, size_t n);
void shard_tags_free(shard_tag *t, size_t n);

/* Moves s to `to` if the table allows it, appending the event and bumping
 * epoch and updated_ms. error becomes reason when `to` is failed and NULL
 * otherwise. reason and actor may be NULL (recorded as ""). CITRUS_ECONFLICT
 * (nothing changed) when the table does not allow it; CITRUS_ENOMEM
 * (nothing changed). The history keeps the newest SHARD_HISTORY_MAX. */
#define SHARD_HISTORY_MAX 100
int shard_transition(shard *s, shard_state to, const char *reason, const char *actor,
                     int64_t now_ms);

#endif
