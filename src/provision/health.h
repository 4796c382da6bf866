/* provision/health.h — the shard health monitor: probes every shard in the
 * background, on an interval (config shards.probe_interval_ms), and keeps
 * each one's last result in memory (one entry per shard in the catalog),
 * so GET /api/shards/health, GET /api/shard/{key} and /v1/shards answer
 * from it and never wait for a shard that hangs.
 *
 * A probe is drv_probe (a connection and SELECT 1) bounded by the probe
 * timeout. The state of a shard:
 *   unknown      no probe has finished yet (a new shard, or before the
 *                first round: the thread starts with a round at once);
 *   reachable    its last probe succeeded;
 *   unreachable  its last HEALTH_FAILS_UNREACHABLE probes (1: the first
 *                failure counts, so a shard that stops answering is shown
 *                within one interval plus one probe timeout) failed, or a
 *                probe has been running for longer than the probe timeout
 *                plus HEALTH_GRACE_MS (a driver that does not keep its
 *                timeout). One good probe makes it reachable again.
 * Retired shards are out of service: not probed, always unknown. A shard
 * deleted from the catalog loses its entry at the next round.
 * Kept per shard: latency of the last good probe, the last error (passed
 * through dsn_redact_text: no password), the wall time of the last good
 * probe and of the last one, and the consecutive failures. Each probe
 * also sets the gauge citrus_shard_reachable{shard="<id>"} (1 or 0).
 *
 * Time is read from the injected clock (sys/clock.h): a test moves it and
 * calls shard_health_tick without the thread.
 *
 * Threads: every call is safe from any thread; the lock is never held
 * while a shard is probed. */
#ifndef CITRUS_PROVISION_HEALTH_H
#define CITRUS_PROVISION_HEALTH_H

#include <stdbool.h>
#include <stdint.h>

#include "core/errdetail.h"
#include "registry/registry.h"
#include "sys/clock.h"

#define HEALTH_FAILS_UNREACHABLE 1
#define HEALTH_GRACE_MS 500
/* A probe's bound: the lesser of shards.db_timeout_ms and this. */
#define HEALTH_PROBE_TIMEOUT_MAX_MS 2000

typedef enum { HEALTH_UNKNOWN, HEALTH_REACHABLE, HEALTH_UNREACHABLE } health_status;

/* "unknown", "reachable", "unreachable". */
const char *health_status_name(health_status s);

/* What the monitor knows of one shard. */
typedef struct shard_health_view {
    health_status status;
    int64_t latency_ms;    /* of the last good probe */
    char error[256];       /* why the last probe failed; "" */
    int64_t last_ok_ms;    /* wall time of the last good probe; 0: never */
    int64_t last_probe_ms; /* wall time the last probe finished; 0: none yet */
    uint32_t failures;     /* consecutive failed probes */
    int64_t epoch;         /* of the shard record the last probe was of */
} shard_health_view;

/* How one shard is probed (the default is drv_probe of its DSN; a test
 * gives its own): 0 when reachable, with *latency_ms; else a CITRUS_E*
 * code and e. */
typedef int (*health_probe_fn)(void *ctx, const shard *s, int64_t timeout_ms, int64_t *latency_ms,
                               errdetail *e);

typedef struct shard_health shard_health;

/* A monitor of the shards of reg (borrowed; it must outlive the monitor)
 * probing every interval_ms, each probe bounded by timeout_ms; clock NULL:
 * the real one. NULL when out of memory. */
shard_health *shard_health_new(registry *reg, int64_t interval_ms, int64_t timeout_ms,
                               const sysclock *clock);
/* Stops the thread and frees everything. NULL: nothing. */
void shard_health_free(shard_health *h);
/* Replaces the probe (before the thread starts). */
void shard_health_set_probe(shard_health *h, health_probe_fn fn, void *ctx);

/* Starts the thread: a round at once, then one every interval_ms after
 * the previous one ended. */
int shard_health_start(shard_health *h);
/* Stops and joins the thread (waits for a round under way). */
void shard_health_stop(shard_health *h);
/* Asks for a round now (a shard was added). */
void shard_health_kick(shard_health *h);

/* One round when one is due by the clock (the first is due at once):
 * lists the shards, probes those not retired (16 at a time) and records
 * the results. true when a round ran. What the thread does. */
bool shard_health_tick(shard_health *h);

/* What the monitor knows of shard id now; unknown when it has no entry.
 * epoch >= 0: the record's epoch the caller has; a result about another
 * version of the record (a DSN or lifecycle change since: a shard just
 * activated, re-pointed) reads as unknown, its times kept, until the next
 * probe. epoch < 0: any. */
void shard_health_get(shard_health *h, const char *id, int64_t epoch, shard_health_view *out);

#endif
