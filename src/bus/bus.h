/* bus/bus.h — the event bus: topics split into partitions, durable publish,
 * consumer groups with leases, retries with backoff, dead letters.
 *
 * Semantics (docs/events.md, "Bus"):
 *  - a topic has N partitions (fixed at creation); a message goes to the
 *    partition bus_partition_for(key) picks (murmur3 of the key modulo N),
 *    so every message of one key is in one partition, in publish order;
 *  - bus_publish returns (partition, offset) only once the message is
 *    durable; offsets of a partition are dense, from 0;
 *  - a consumer group reads each partition in offset order. bus_poll leases
 *    messages for visibility_ms; bus_commit after the handler succeeded marks
 *    one done, and the group's committed offset moves past every done message
 *    at the head of the partition. A message neither committed nor nacked
 *    before its lease ends is delivered again with attempt + 1;
 *  - a partition is blocked while any of its leased messages is neither
 *    committed nor past its lease (or retry time): messages of one key are
 *    never handed out of order or by two consumers at once (Kafka's
 *    per-partition order, SQS FIFO's message groups). A message being
 *    retried holds back the rest of its partition until it succeeds or goes
 *    to the dead-letter topic;
 *  - bus_nack schedules a retry after bus_backoff_ms(attempt); the nack of
 *    attempt max_attempts (or a lease that ends after attempt max_attempts)
 *    moves the message to `<topic>.dlq` with the last error and the attempts
 *    made, and the group moves past it;
 *  - retention: bus_trim deletes, per partition, the oldest messages older
 *    than the topic's retention_ms and those past its retention_bytes (per
 *    partition, as Kafka's retention.bytes). A group behind the oldest
 *    message left starts at it.
 *
 * Implementations: bus_sqlite.c (the embedded log). Each one fills a bus_ops
 * table; callers use only the bus_* functions, which check the arguments
 * before the backend sees them. Every implementation is thread-safe and
 * passes the one conformance suite (tests/unit/support_bus_conformance.c).
 *
 * Time: lease ends, retry times and message times are wall-clock readings
 * of the injected clock (they outlive the process, so a monotonic reading
 * would not do). */
#ifndef CITRUS_BUS_BUS_H
#define CITRUS_BUS_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/errdetail.h"
#include "sys/clock.h"

#define BUS_NAME_MAX 200   /* topic and group names: [A-Za-z0-9._-], 1..200 bytes */
#define BUS_KEY_MAX 1024   /* bytes of a key */
#define BUS_ERROR_MAX 1024 /* bytes of a nack's error kept (cut to fit) */
#define BUS_DLQ_SUFFIX ".dlq"
#define BUS_VISIBILITY_MAX_MS (12LL * 3600 * 1000) /* a poll's lease: at most 12 h, as SQS */
#define BUS_BACKOFF_MAX_MS (24LL * 3600 * 1000)    /* backoff_cap_ms: at most a day */

typedef struct bus_config {
    const sysclock *clock;    /* NULL: the real clock */
    size_t max_message_bytes; /* key + value; default 1 MiB */
    int max_topics;           /* not counting dead-letter topics; default 256 */
    int max_partitions;       /* per topic; default 64 */
    size_t poll_max;          /* messages one poll may ask for; default 1000 */
    int max_attempts;         /* deliveries before the dead-letter topic; default 5 */
    int64_t backoff_base_ms;  /* default 1000 */
    int64_t backoff_cap_ms;   /* default 300000 */
    /* The jitter's random source; NULL: getrandom(2). Called from any
     * thread that nacks. */
    uint64_t (*random)(void *ctx);
    void *random_ctx;
} bus_config;

typedef struct bus_topic_opts {
    int partitions;          /* 1..max_partitions */
    int64_t retention_ms;    /* 0: no age limit */
    int64_t retention_bytes; /* per partition, keys + values; 0: no size limit */
} bus_topic_opts;

typedef struct bus_topic_info {
    int partitions;
    int64_t retention_ms, retention_bytes;
    int64_t messages; /* retained, all partitions */
} bus_topic_info;

/* One message as delivered or read. Free arrays with bus_messages_free. */
typedef struct bus_message {
    char topic[BUS_NAME_MAX + 1];
    int partition;
    int64_t offset;
    int64_t time_ms; /* when it was published (wall clock) */
    int attempt;     /* poll: the delivery attempt, 1 first; bus_read: 0 */
    uint8_t *key;    /* key_len bytes, then a NUL */
    size_t key_len;
    uint8_t *value; /* value_len bytes, then a NUL */
    size_t value_len;
    /* In a dead-letter topic: the last error, the attempts made and where
     * the message was (NULL, 0, -1, -1 elsewhere). */
    char *error;
    int attempts;
    int src_partition;
    int64_t src_offset;
} bus_message;

void bus_messages_free(bus_message *m, size_t n);

/* A partition's retained range: low is its oldest retained offset (high
 * when it holds none), high its next offset; offsets are dense and trimmed
 * only from the front, so it holds high - low messages. */
typedef struct bus_partition_range {
    int64_t low, high;
} bus_partition_range;

/* One topic as bus_topics_list shows it. Free arrays with
 * bus_topics_free. */
typedef struct bus_topic_entry {
    char name[BUS_NAME_MAX + 1];
    bool dlq;                   /* a dead-letter topic (<topic>.dlq) */
    bus_topic_info info;        /* messages: retained, all partitions */
    bus_partition_range *parts; /* info.partitions entries, by partition */
} bus_topic_entry;

void bus_topics_free(bus_topic_entry *t, size_t n);

/* One partition a consumer group has read (polled at least once). */
typedef struct bus_group_entry {
    char group[BUS_NAME_MAX + 1];
    char topic[BUS_NAME_MAX + 1];
    int partition;
    int64_t committed; /* the group's committed offset: every message below it is done */
    int64_t end;       /* the partition's next offset */
    int64_t lag;       /* end - max(committed, the oldest retained offset): not yet done */
    int64_t in_flight; /* delivered at or past committed and neither committed nor
                        * dead-lettered yet (leased, or waiting for a retry) */
} bus_group_entry;

/* One message to publish (bus_publish_batch). */
typedef struct bus_record {
    const void *key; /* may be NULL when key_len is 0 */
    size_t key_len;
    const void *value;
    size_t value_len;
} bus_record;

typedef struct bus bus;

typedef struct bus_ops {
    const char *name;
    /* Creates name and name.dlq (same partitions and retention). */
    int (*topic_create)(bus *b, const char *name, const bus_topic_opts *o, errdetail *e);
    int (*topic_describe)(bus *b, const char *name, bus_topic_info *out, errdetail *e);
    int (*publish)(bus *b, const char *topic, const void *key, size_t key_len, const void *value,
                   size_t value_len, int *partition, int64_t *offset, errdetail *e);
    int (*poll)(bus *b, const char *group, const char *topic, size_t max, int64_t visibility_ms,
                bus_message **out, size_t *n, errdetail *e);
    int (*commit)(bus *b, const char *group, const bus_message *m, errdetail *e);
    /* retry_at_ms: when the message may be delivered again; dead: move it to
     * the dead-letter topic instead (bus.c decided both). */
    int (*nack)(bus *b, const char *group, const bus_message *m, const char *error,
                int64_t retry_at_ms, bool dead, errdetail *e);
    int (*read)(bus *b, const char *topic, int partition, int64_t from_offset, size_t limit,
                bus_message **out, size_t *n, errdetail *e);
    int (*trim)(bus *b, int64_t *deleted, errdetail *e);
    void (*close)(bus *b);
    /* Optional (NULL: the bus_* call answers CITRUS_EUNSUPPORTED); see
     * bus_topics_list and bus_groups_describe for the contract. bus.c has
     * checked the arguments and zeroed the outputs; on error the backend
     * may leave partial output, which bus.c frees. */
    int (*topics_list)(bus *b, bus_topic_entry **out, size_t *n, errdetail *e);
    int (*groups_describe)(bus *b, const char *group, size_t max, bus_group_entry **out, size_t *n,
                           bool *more, errdetail *e);
    /* Optional (NULL: bus.c publishes one after another): all n records
     * or none, durable together; partitions and offsets have n slots. */
    int (*publish_batch)(bus *b, const char *topic, const bus_record *recs, size_t n,
                         int *partitions, int64_t *offsets, errdetail *e);
    /* Optional (NULL: bus.c calls commit for each, one after another):
     * commits msgs[0..n) of group, each as commit does, rcs[i] its outcome
     * (0 or an error; e the first error's), in one request. */
    int (*commit_batch)(bus *b, const char *group, const bus_message *const *msgs, size_t n,
                        int *rcs, errdetail *e);
} bus_ops;

/* Every implementation's handle begins with this; cfg is complete (the
 * defaults filled in) and never changes. */
struct bus {
    const bus_ops *ops;
    bus_config cfg;
};

/* ---- for implementations ---- */

/* The partition of key among n (murmur3, docs/ring.md's hash). */
int bus_partition_for(const void *key, size_t key_len, int n);
/* c with every unset (0 / NULL) field set to its default; CITRUS_EINVAL when
 * a field is out of range (negative, cap below base, ...). */
int bus_config_complete(const bus_config *c, bus_config *out, errdetail *e);

/* ---- for callers: each checks its arguments (CITRUS_EINVAL for a bad
 * name, a NULL, a partition or offset out of range; CITRUS_ENOTFOUND for an
 * unknown topic; CITRUS_ETOOBIGVAL for an oversize key or message;
 * CITRUS_ETOOMANY past max_topics or poll_max) ---- */

/* CITRUS_EEXISTS when it exists; a name ending in .dlq is CITRUS_EINVAL. */
int bus_topic_create(bus *b, const char *name, const bus_topic_opts *o, errdetail *e);
int bus_topic_describe(bus *b, const char *name, bus_topic_info *out, errdetail *e);
/* Whether name is a dead-letter topic's (it ends in BUS_DLQ_SUFFIX: a
 * topic created with bus_topic_create never does). */
bool bus_topic_is_dlq(const char *name);
/* Returns once durable. key may be NULL when key_len is 0. */
int bus_publish(bus *b, const char *topic, const void *key, size_t key_len, const void *value,
                size_t value_len, int *partition, int64_t *offset, errdetail *e);
/* Leases up to max (1..poll_max) messages of topic for group, in offset
 * order per partition; *out NULL when *n is 0. visibility_ms: 1 ..
 * BUS_VISIBILITY_MAX_MS. */
int bus_poll(bus *b, const char *group, const char *topic, size_t max, int64_t visibility_ms,
             bus_message **out, size_t *n, errdetail *e);
/* The handler succeeded. Also after the lease ended (at least once: a later
 * delivery may still come if it was already handed out again). 0 for a
 * message already committed; CITRUS_ENOTFOUND for one never delivered to
 * group. */
int bus_commit(bus *b, const char *group, const bus_message *m, errdetail *e);
/* bus_commit of each of msgs[0..n) (1..poll_max); rcs (may be NULL) gets
 * each one's outcome (every slot the error when the call is refused before
 * any commit: a bad group or message). 0 when every one committed, else
 * the first error (e its message; the others were still committed). With the
 * backend's commit_batch op one request (the embedded log: one transaction,
 * one fsync); without it, one commit after another. For a consumer that
 * commits a batch after processing it. */
int bus_commit_batch(bus *b, const char *group, const bus_message *const *msgs, size_t n, int *rcs,
                     errdetail *e);
/* The handler failed with error: a retry after bus_backoff_ms(m->attempt),
 * or the dead-letter topic when m->attempt >= max_attempts (a message of a
 * dead-letter topic is retried with the capped backoff, never dead-lettered
 * again). CITRUS_ECONFLICT when the lease is no longer m's (it ended and the
 * message was delivered again, or it was committed). */
int bus_nack(bus *b, const char *group, const bus_message *m, const char *error, errdetail *e);
/* A permanent failure (a message no attempt can handle: a malformed
 * event): straight to the dead-letter topic with error, whatever its
 * attempt, and the group moves past it, as the nack of the last attempt
 * does. A message of a dead-letter topic is not dead-lettered again: this
 * is then bus_nack. Errors as bus_nack's. */
int bus_dead_letter(bus *b, const char *group, const bus_message *m, const char *error,
                    errdetail *e);
/* Publishes n records (1..poll_max) on topic in their order, each checked
 * as bus_publish checks it before any is written; partitions[i] and
 * offsets[i] (each may be NULL) say where record i went. With the
 * backend's publish_batch op all are published or none, durable together
 * (one commit on the embedded log); without it they are published one
 * after another, and a failure leaves the earlier ones published. *done
 * (may be NULL): how many were published. */
int bus_publish_batch(bus *b, const char *topic, const bus_record *recs, size_t n, int *partitions,
                      int64_t *offsets, size_t *done, errdetail *e);
/* Up to limit (1..poll_max) messages of one partition from from_offset,
 * without leasing: CITRUS_ECOMPACTED when from_offset was trimmed away,
 * CITRUS_EINVAL past the partition's next offset (equal: none yet). */
int bus_read(bus *b, const char *topic, int partition, int64_t from_offset, size_t limit,
             bus_message **out, size_t *n, errdetail *e);
/* Every topic, dead-letter topics too, in name order (bytewise), each with
 * its partitions' retained ranges; *out NULL when *n is 0. A consistent
 * view: no publish or trim lands between two topics' readings.
 * CITRUS_EUNSUPPORTED when the backend cannot list. */
int bus_topics_list(bus *b, bus_topic_entry **out, size_t *n, errdetail *e);
/* The consumer groups' positions: one row per (group, topic, partition)
 * the group has polled, ordered by group, topic, partition (bytewise);
 * group NULL: every group, else only that one (an unknown group: no rows,
 * not an error). At most max rows (1..poll_max); *more (may be NULL) says
 * whether there were more. CITRUS_EUNSUPPORTED when the backend cannot
 * describe groups. */
int bus_groups_describe(bus *b, const char *group, size_t max, bus_group_entry **out, size_t *n,
                        bool *more, errdetail *e);
/* Applies every topic's retention; *deleted (may be NULL): messages removed. */
int bus_trim(bus *b, int64_t *deleted, errdetail *e);
void bus_close(bus *b);

/* The delay before the retry after failed attempt a (1, 2, ...): d =
 * min(cap, base * 2^(a-1)), then "equal jitter": d - d/2 + r % (d/2 + 1)
 * (integer division) with r from cfg's random source; so between d/2 and d. */
int64_t bus_backoff_ms(const bus_config *cfg, int attempt);

#endif
