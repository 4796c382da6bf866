/* dbconn/stmt_cache.h — one shard connection's cache of prepared statements
 * (used by driver_pg.c for named server-side statements and by
 * driver_sqlite.c for sqlite3_stmt handles).
 *
 * A statement is known by its SQL text and its parameter type OIDs
 * (PostgreSQL: the types it was prepared with; the server infers the others
 * from the text alone, so two runs with the same text and types get the
 * same statement. SQLite passes none). Each entry has a name, "citrus_s<N>"
 * with N counting up per cache and never reused, and a handle the caller
 * owns (NULL on PostgreSQL). At most cap statements are kept; adding to a
 * full cache drops the least recently used one and hands it back, so the
 * caller can DEALLOCATE it on the server or finalize its handle.
 *
 * Not thread-safe: a connection, and so its cache, is used by one thread at
 * a time. */
#ifndef CITRUS_DBCONN_STMT_CACHE_H
#define CITRUS_DBCONN_STMT_CACHE_H

#include <stdbool.h>
#include <stddef.h>

#define STMT_NAME 32 /* bytes for a name, with its NUL */

typedef struct stmt_cache stmt_cache;

typedef struct stmt_ref {
    char name[STMT_NAME]; /* "" for none */
    void *handle;
} stmt_ref;

/* Called on a handle the cache lets go of in clear, drop and free. */
typedef void (*stmt_release_fn)(void *handle);

/* cap > 0 statements; release may be NULL (handles are not the cache's
 * business then). NULL when out of memory or cap is 0. */
stmt_cache *stmt_cache_new(size_t cap, stmt_release_fn release);
/* Releases every handle and frees s (NULL: no-op). */
void stmt_cache_free(stmt_cache *s);

/* The entry of sql with these n parameter types, marking it used; NULL when
 * it is not in the cache. types may be NULL when n is 0. The pointer is
 * good until the next call on s. */
const stmt_ref *stmt_cache_find(stmt_cache *s, const char *sql, const unsigned *types, size_t n);

/* Enters sql with its types and handle under a fresh name; *added points
 * at the new entry (good until the next call on s). When the cache was full, the least recently
 * used entry is removed first and handed to the caller in evicted (its handle NOT released);
 * otherwise evicted->name is "". 0, or -1 when out of memory (nothing
 * changed). */
int stmt_cache_add(stmt_cache *s, const char *sql, const unsigned *types, size_t n, void *handle,
                   const stmt_ref **added, stmt_ref *evicted);

/* Forgets the statement under name, releasing its handle (no-op when
 * unknown). */
void stmt_cache_drop(stmt_cache *s, const char *name);
/* Forgets all, releasing their handles (say, after the session's
 * statements were discarded). */
void stmt_cache_clear(stmt_cache *s);
size_t stmt_cache_count(const stmt_cache *s);
bool stmt_cache_full(const stmt_cache *s);

#endif
