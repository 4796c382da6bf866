/* tests/unit/support_registry.h — a registry on an embedded catalog store in
 * a temp dir, with a test clock, for the unit tests of the registry, the
 * tenant directory, the shard service and its worker. */
#ifndef CITRUS_TESTS_SUPPORT_REGISTRY_H
#define CITRUS_TESTS_SUPPORT_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "registry/registry.h"
#include "support_sqlite.h"
#include "sys/clock.h"

/* The wall time the test clock starts at: 2026-11-22T07:40:00.000Z. */
#define REGFIX_WALL0 1795333200000LL

typedef struct regfix {
    sqlite_dir d;
    sysclock *clock; /* starts at REGFIX_WALL0 */
    registry *reg;   /* store reads, MurmurHash3 */
} regfix;

/* Opens the store (dir /tmp/citrus-<tag>-XXXXXX), the clock and a registry
 * of vnodes tokens per unit of weight; fails the test on error. */
void regfix_open(regfix *f, const char *tag, size_t vnodes);
/* Frees the registry (unless f->reg was handed on and set to NULL), the
 * clock and the store. */
void regfix_close(regfix *f);

/* A new record for id in state pending, at the clock's time. */
void regfix_record(regfix *f, shard *s, const char *id, double weight, const char *dsn);
/* Creates shard id active (pending -> initializing -> active, at the
 * clock's time), with its tokens. */
void regfix_add_active(regfix *f, const char *id, double weight, const char *dsn);
/* Moves shard id to `to` through registry_shard_modify (the transition at
 * the clock's time) with flags; returns what it returns, res cleared.
 * regfix_move_on does it on any registry (one a service owns). */
int regfix_move(regfix *f, const char *id, shard_state to, unsigned flags);
int regfix_move_on(registry *reg, const sysclock *clock, const char *id, shard_state to,
                   unsigned flags);

/* The token list stored for shard id (malloc'd, NULL when none) and how
 * many. */
uint64_t *regfix_tokens(regfix *f, const char *id, size_t *n);
/* The mod_revision of key (0 when absent). */
int64_t regfix_mod(regfix *f, const char *key);

#endif
