/* catalog/reader.c — the read policy (see reader.h): copy or store, the
 * read-your-writes floor, the staleness bound, the outage fallback. */
#include "catalog/reader.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"

/* The copy checks the catalog every 250 ms; no answer for this long and
 * the catalog counts as down. */
#define READER_OUTAGE_AFTER_MS 1000

struct reader {
    store *st;
    cache *copy;
    int64_t max_staleness_ms;
    _Atomic int64_t floor;
};

static const char *const level_names[] = {
    [READER_STRONG] = "strong",
    [READER_BOUNDED] = "bounded",
    [READER_ANY] = "any",
};

int reader_level_parse(const char *s, reader_level *out)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
        if (strcmp(s, level_names[i]) == 0) {
            *out = (reader_level)i;
            return 0;
        }
    return CITRUS_EINVAL;
}

const char *reader_level_name(reader_level level)
{
    return level_names[level];
}

reader *reader_new(const reader_options *o)
{
    reader *rd = calloc(1, sizeof(*rd));
    if (!rd)
        return NULL;
    rd->st = o->st;
    rd->copy = o->copy;
    rd->max_staleness_ms = o->max_staleness_ms;
    atomic_init(&rd->floor, 0);
    return rd;
}

void reader_free(reader *rd)
{
    free(rd);
}

void reader_note_write(reader *rd, int64_t rev)
{
    int64_t cur = atomic_load(&rd->floor);
    while (rev > cur && !atomic_compare_exchange_weak(&rd->floor, &cur, rev)) {
    }
}

void reader_note_commit(void *rd, int64_t rev)
{
    reader_note_write(rd, rev);
}

static bool holds_floor(reader *rd)
{
    return cache_revision(rd->copy) >= atomic_load(&rd->floor);
}

static bool within_bound(const reader *rd, int64_t stale)
{
    return stale >= 0 && stale <= rd->max_staleness_ms;
}

/* A store read: what it answered at, the copy must reach before it answers
 * again (reads stay monotonic). */
static int store_read(reader *rd, const kv_range_req *req, kv_range_res *out)
{
    int rc = store_range(rd->st, req, out);
    if (rc == 0 && rd->copy)
        reader_note_write(rd, out->revision);
    return rc;
}

int reader_read(reader *rd, reader_level level, const kv_range_req *req, kv_range_res *out,
                reader_info *info)
{
    *info = (reader_info){.level = READER_STRONG, .bound_ms = rd->max_staleness_ms, .loaded = true};
    if (!rd->copy || level == READER_STRONG)
        return store_read(rd, req, out);
    /* A bounded read waits (up to the bound) for the floor; "any" serves
     * what the copy has at once. */
    int64_t floor = atomic_load(&rd->floor);
    bool own_writes =
        cache_revision(rd->copy) >= floor ||
        (level == READER_BOUNDED && cache_wait(rd->copy, floor, rd->max_staleness_ms) == 0);
    int64_t stale = -1;
    int rc = cache_range(rd->copy, req, out, &stale);
    info->staleness_ms = stale;
    if (rc == CITRUS_EUNAVAILABLE) {
        info->loaded = false;
        return CITRUS_ESTALE;
    }
    if (rc < 0)
        return rc;
    bool within = own_writes && within_bound(rd, stale);
    if (!within && level == READER_BOUNDED) {
        kv_range_res_free(out);
        return CITRUS_ESTALE;
    }
    info->level = within ? READER_BOUNDED : READER_ANY;
    return 0;
}

bool reader_blocks(reader *rd, reader_level level)
{
    if (!rd->copy)
        return false;
    return level == READER_STRONG || (level == READER_BOUNDED && !holds_floor(rd));
}

static bool catalog_down(reader *rd)
{
    return !cache_catalog_up(rd->copy, READER_OUTAGE_AFTER_MS);
}

bool reader_catalog_down(reader *rd)
{
    return rd->copy && catalog_down(rd);
}

bool reader_fresh(reader *rd)
{
    return !rd->copy || within_bound(rd, cache_staleness_ms(rd->copy));
}

/* Whether a routing read may come from the copy, stale ms behind (it holds
 * the floor): within the bound, or whatever its age while the catalog is
 * down (*cached then: the copy only moves forward, so it is never older
 * than a change this node has seen). */
static bool copy_serves(reader *rd, int64_t stale, bool *cached)
{
    *cached = catalog_down(rd);
    return *cached || within_bound(rd, stale);
}

int reader_routing_read(void *ctx, const kv_range_req *req, kv_range_res *out, bool *cached)
{
    reader *rd = ctx;
    bool down = false;
    if (rd->copy && holds_floor(rd)) {
        int64_t stale = -1;
        int rc = cache_range(rd->copy, req, out, &stale);
        if (rc == 0 && copy_serves(rd, stale, &down)) {
            if (cached)
                *cached = down;
            return 0;
        }
        if (rc == 0)
            kv_range_res_free(out);
    }
    if (cached)
        *cached = false;
    return store_read(rd, req, out);
}

int64_t reader_routing_revision(void *ctx, bool *cached)
{
    reader *rd = ctx;
    if (cached)
        *cached = false;
    if (!rd->copy)
        return store_revision(rd->st);
    int64_t rev = cache_revision(rd->copy);
    bool down = false;
    if (rev < atomic_load(&rd->floor) || !copy_serves(rd, cache_staleness_ms(rd->copy), &down))
        return -1;
    if (cached)
        *cached = down;
    return rev;
}

bool reader_routing_blocks(reader *rd)
{
    bool down;
    return rd->copy && !(holds_floor(rd) && copy_serves(rd, cache_staleness_ms(rd->copy), &down));
}
