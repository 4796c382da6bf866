/* shard/pg_stmts.h — one PostgreSQL connection's cache of named prepared
 * statements (used by driver_pg.c).
 *
 * A statement is known by its SQL text and its parameter type OIDs (the
 * types it was prepared with: the server infers the others from the text
 * alone, so two runs with the same text and types get the same statement).
 * Names are "citrus_s<N>", N counting up per connection, never reused. At
 * most cap statements are kept; adding to a full cache drops the least
 * recently used one, whose name is handed back so the caller can DEALLOCATE
 * it on the server.
 *
 * Not thread-safe: a connection, and so its cache, is used by one thread at
 * a time. */
#ifndef CITRUS_SHARD_PG_STMTS_H
#define CITRUS_SHARD_PG_STMTS_H

#include <stdbool.h>
#include <stddef.h>

#define PG_STMT_NAME 32 /* bytes for a name, with its NUL */

typedef struct pg_stmts pg_stmts;

/* cap > 0 statements; NULL when out of memory. */
pg_stmts *pg_stmts_new(size_t cap);
void pg_stmts_free(pg_stmts *s);

/* The name sql with these n parameter types is prepared under, marking it
 * used; NULL when it is not in the cache. types may be NULL when n is 0. */
const char *pg_stmts_find(pg_stmts *s, const char *sql, const unsigned *types, size_t n);

/* Enters sql with its types under a fresh name, copied to name, before the
 * caller prepares it (pg_stmts_drop it again when that fails). When the
 * cache was full, the least recently used statement is dropped first and
 * its name copied to evicted; otherwise evicted is "". 0, or -1 when out of
 * memory (nothing changed). */
int pg_stmts_add(pg_stmts *s, const char *sql, const unsigned *types, size_t n,
                 char name[PG_STMT_NAME], char evicted[PG_STMT_NAME]);

/* Forgets the statement under name (no-op when unknown). */
void pg_stmts_drop(pg_stmts *s, const char *name);
/* Forgets all (say, after the session's statements were discarded). */
void pg_stmts_clear(pg_stmts *s);
size_t pg_stmts_count(const pg_stmts *s);
bool pg_stmts_full(const pg_stmts *s);

#endif
