/* workers/smcmd.h — the shard management worker (seed 000): shard
 * lifecycle commands from bus.topics.sm_commands, run as the API runs them
 * (the shard service: provision/service.h), each outcome published on
 * bus.topics.sm_events (docs/events.md, "Shard management commands").
 *
 * A command is an envelope whose type names the operation and whose data
 * says on what:
 *   citrus.sm.provision   {"shardId", "template"?, "params"?, "zone"?, "weight"?}
 *   citrus.sm.drain | citrus.sm.activate | citrus.sm.read_only |
 *   citrus.sm.retire | citrus.sm.retry    {"shardId", "force"?}
 *   citrus.sm.delete      {"shardId", "force"?}
 *   citrus.sm.register_location {"businessId", "locationId", "businessType"}
 *                         (POST /api/register: the location pinned to a
 *                         shard, the type's schema template applied there)
 * (read-only is accepted for read_only, as the API's action is named).
 *
 * Fenced: when leader is set, every catalog write of a command carries the
 * controller's fencing compare (the leader key's create_revision, as the
 * controller's own writes: controller/election.h), and a node that is not
 * the leader applies nothing (the runner's ready gate keeps it from
 * polling; a command it holds when it is deposed fails its compare, is
 * nacked and retried, by the new leader's worker).
 *
 * Idempotent by command id: the runner's ledger skips a command it has
 * applied; a command that finds its shard already where it would move it
 * (drain of a draining shard, provision of a shard that exists with the
 * same template, delete of a shard that is gone) succeeds without a
 * change, so a command delivered again after a crash changes nothing.
 *
 * Outcome: one event on the lifecycle topic, `citrus.sm.command.completed`
 * (data: commandId, command, shardId, state, changed) or
 * `citrus.sm.command.failed` (commandId, command, shardId, error), with
 * id `smcmd-<command id>` (-failed for a failure), the command's
 * correlation id, keyed by the shard. The transitions themselves are
 * published by the lifecycle relay, like any other. A command that no
 * attempt can carry out (unknown type, bad data, unknown shard, a
 * transition the lifecycle table forbids) is failed at once and
 * dead-lettered; any other failure is retried by the bus. */
#ifndef CITRUS_WORKERS_SMCMD_H
#define CITRUS_WORKERS_SMCMD_H

#include "bus/bus.h"
#include "provision/service.h"
#include "workers/runner.h"

#define SMCMD_TYPE_PREFIX "citrus.sm."

typedef struct smcmd_ctx {
    shard_service *svc;
    bus *bus;
    char events_topic[BUS_NAME_MAX + 1]; /* the outcomes' topic */
    int64_t attempt_ms; /* register_location: the template's deadline per attempt; 0: none */
    /* Leadership: true with the fencing token while this node is the
     * controller leader (session_is_leader); NULL: unfenced, always runs
     * (a node without a controller session, unit tests). */
    bool (*leader)(void *ctx, int64_t *token);
    void *leader_ctx;
    const char *fence_key; /* the leader key (NULL: ELECTION_KEY) */
} smcmd_ctx;

/* The runner's ready gate (worker_spec.ready): ctx is a smcmd_ctx; true
 * when unfenced or while this node leads. */
bool smcmd_ready(void *ctx);

/* The worker's handler: ctx is a smcmd_ctx. */
int smcmd_handle(void *ctx, const envelope *ev, const bus_message *m, worker_effect *fx,
                 errdetail *e);

#endif
