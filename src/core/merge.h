/* core/merge.h — scatter-gather: combining the result sets of one query run
 * on every shard into one answer (pure: no I/O).
 *
 *   concatenation   the shards' rows one shard after the other (default),
 *                   then the first `limit` rows of that
 *   order_by+limit  every shard ran the query with the same ORDER BY and
 *                   LIMIT; a k-way merge on the order keys (val_compare on
 *                   each key in turn, desc reversing; ties in shard order,
 *                   then row order) keeps the first `limit` rows. The
 *                   output always has min(limit, total) rows, but it is in
 *                   global order only if every shard's rows were sorted.
 *   aggregate       every shard returned one row (a shard with no row adds
 *                   nothing; if no shard has a row the answer has no row,
 *                   as a GROUP BY with no group); per column one of
 *                   count (sum of integer counts, NULL as 0), sum (exact:
 *                   INT while only INTs come and the total fits in 64
 *                   bits, else NUMERIC, a decimal (core/decimal.h) --
 *                   integer sums past 2^63 too; any REAL gives REAL;
 *                   TEXT/BLOB/BOOL are an error), avg (each shard's
 *                   average weighted by the first count column of the
 *                   spec, which must count the averaged values: NUMERIC
 *                   rounded to at least 16 significant digits
 *                   (dec_div_int), REAL if a shard gave a REAL; no count
 *                   column is an error), min, max (by value across INT,
 *                   REAL and NUMERIC; NULLs ignored; all NULL gives NULL),
 *                   or "first" (the value of the first shard with a row,
 *                   for group keys and constants). ORDER BY with aggregates is refused
 *                   (CITRUS_EINVAL); a limit is accepted and has no effect
 *                   on the single row.
 * All inputs must have the same column names in the same order as input 0
 * (CITRUS_EINVAL naming the shard that differs otherwise); inputs with no
 * columns (DDL) are fine only if all are like that. */
#ifndef CITRUS_CORE_MERGE_H
#define CITRUS_CORE_MERGE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/errdetail.h"
#include "core/value.h"

typedef struct merge_key {
    const char *column;
    bool desc;
} merge_key;

typedef enum { AGG_FIRST, AGG_COUNT, AGG_SUM, AGG_MIN, AGG_MAX, AGG_AVG } merge_agg;

/* 0, or CITRUS_EINVAL for an unknown name ("count", "sum", "avg", "min",
 * "max", "first"; lowercase). */
int merge_agg_parse(const char *name, merge_agg *out);

typedef struct merge_spec {
    const merge_key *order_by; /* NULL: concatenation */
    size_t norder;
    size_t limit;          /* 0: no limit */
    const merge_agg *aggs; /* NULL: no aggregation; else one per column, or */
    size_t naggs;          /* naggs == 1: the same for every column */
} merge_spec;

/* Merges n shard results into out (rs_init'ed, empty). Values move (text
 * is not copied). The inputs are always consumed: on return, success or
 * not, each is freed and left empty (rs_init state). On error out is left
 * empty and err names the problem (a column unknown to ORDER BY, a shard
 * with a different shape, an aggregate over text, a shard that gave
 * several rows to an aggregate, ...). spec NULL is a plain concatenation;
 * n == 0 gives an empty result. 0, CITRUS_EINVAL, CITRUS_ENOMEM. */
int merge_results(result_set *in, size_t n, const merge_spec *spec, result_set *out, errdetail *e);

#endif
