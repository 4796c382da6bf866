/* provision/ctlconns.h — the control plane's connections to shard
 * databases, for what a registration does there (checking and applying the
 * business type's schema template): a small pool per shard (dbconn/pool.h,
 * keyed by shard id and the DSN used), so registrations on one shard reuse
 * connections instead of opening one each, and what templates are known
 * applied on it (template name and the digest of its files), so a
 * registration on a shard already set up for its type does no DDL round
 * trip. An entry whose DSN no longer matches the shard's (the record
 * changed) is replaced; ctlconns_forget drops a shard's entry (deleted,
 * retired), ctlconns_free all of them (shutdown). Connections checked out
 * while their entry goes are closed when given back.
 *
 * Each checkout is bounded by a deadline (pool_get_until): the request's.
 * The counter citrus_shard_control_connections_opened_total{shard} counts
 * the connections opened. Thread-safe. */
#ifndef CITRUS_PROVISION_CTLCONNS_H
#define CITRUS_PROVISION_CTLCONNS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/errdetail.h"
#include "dbconn/driver.h"
#include "sys/clock.h"

#define CTLCONNS_POOL_SIZE 4

typedef struct ctlconns ctlconns;
typedef struct ctl_entry ctl_entry;

/* connect_timeout_ms bounds each connect (shards.db_timeout_ms) when the
 * deadline leaves more; clock is kept. NULL when out of memory. */
ctlconns *ctlconns_new(const sysclock *clock, int64_t connect_timeout_ms);
void ctlconns_free(ctlconns *cc);

/* A connection to shard id's database at dsn (SQLite: schema sandbox),
 * within at_ms (clock_mono_ms of the clock; 0: none) and carrying it
 * (drv_set_deadline). 0 with *ent and *out, to give back with
 * ctlconns_put; else pool_get_until's error. */
int ctlconns_get(ctlconns *cc, const char *id, const char *dsn, int64_t at_ms, ctl_entry **ent,
                 drv_conn **out, errdetail *e);
/* Gives c back (discard: close it) and the entry. */
void ctlconns_put(ctlconns *cc, ctl_entry *ent, drv_conn *c, bool discard);

/* The digest recorded for template on ent's shard ("" when none; out has
 * room for 65 bytes), and recording one. */
void ctlconns_applied(ctlconns *cc, ctl_entry *ent, const char *template, char out[65]);
void ctlconns_mark_applied(ctlconns *cc, ctl_entry *ent, const char *template, const char *digest);

/* Serializes checking and applying templates on ent's shard, so that the
 * first registrations of a type racing there do not both run its files
 * (the loser would fail on citrus_migrations' key): the first applies, the
 * others wait, then find it known. Waits at most left_ms (INT64_MAX: no
 * bound): 0, or CITRUS_ETIMEOUT with the lock not taken. */
int ctlconns_apply_lock(ctl_entry *ent, int64_t left_ms);
void ctlconns_apply_unlock(ctl_entry *ent);

/* Drops shard id's entry: its idle connections are closed now, the others
 * when given back. */
void ctlconns_forget(ctlconns *cc, const char *id);

#endif
