/* records/registrations.c — the registration queue's records
 * (registrations.h): checks, the statements (the backends run them
 * through records_ops.exec), rows from their text cells. */
#include "records/registrations.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"
#include "records/records_ops.h"

static const char *const state_names[REG_NSTATES] = {"queued", "running", "retrying", "succeeded",
                                                     "failed"};

const char *reg_state_name(reg_state s)
{
    return s >= 0 && s < REG_NSTATES ? state_names[s] : "unknown";
}

int reg_state_parse(const char *name, reg_state *out)
{
    for (int i = 0; name && i < REG_NSTATES; i++)
        if (strcmp(name, state_names[i]) == 0) {
            *out = (reg_state)i;
            return 0;
        }
    return CITRUS_EINVAL;
}

#define COLUMNS                                                                                    \
    "seq, id, business_id, location_id, business_type, state, attempts, last_error,"               \
    " next_attempt_ms, shard_id, created_ms, updated_ms, finished_ms, drive_attempts,"             \
    " correlation_id"
#define NCOLS 15

/* sql with each '?' turned into the backend's placeholder ('?N' / '$N'). */
static void placeholders(const records *r, const char *sql, char *out, size_t len)
{
    snprintf(out, len, "%s", sql);
    for (char *p = out; *p; p++)
        if (*p == '?')
            *p = r->ops->placeholder;
}

static int run(records *r, const char *sql, const records_param *p, int np, size_t max_rows,
               char **cells, size_t *nrows, int64_t *changes, errdetail *e)
{
    char buf[1024];
    placeholders(r, sql, buf, sizeof(buf));
    size_t got = 0;
    int64_t ch = 0;
    int rc = r->ops->exec(r, buf, p, np, cells ? NCOLS : 0, max_rows, cells, &got, &ch, e);
    if (nrows)
        *nrows = got;
    if (changes)
        *changes = ch;
    return rc;
}

static int text_check(const char *what, const char *s, size_t max, errdetail *e)
{
    size_t n = strnlen(s, max + 1);
    if (n == 0 || n > max)
        return errdetail_set(e, CITRUS_EINVAL, "registration: %s must be 1..%zu bytes", what, max);
    return 0;
}

/* A correlation id: "" (none) or at most RECORDS_MAX_CORRELATION_ID bytes. */
static int corr_check(const char *s, errdetail *e)
{
    if (strnlen(s, RECORDS_MAX_CORRELATION_ID + 1) > RECORDS_MAX_CORRELATION_ID)
        return errdetail_set(e, CITRUS_EINVAL,
                             "registration: correlationId must be at most %d bytes",
                             RECORDS_MAX_CORRELATION_ID);
    return 0;
}

/* last_error as stored: valid UTF-8 within its limit. */
static int norm_error(const char *in, const char **out, char **owned, errdetail *e)
{
    return records_norm_text(in, RECORDS_MAX_REG_ERROR, out, owned, e);
}

size_t records_reg_key(const reg_row *row, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s:%s", row->business_id, row->location_id);
    return n < 0 ? 0 : (size_t)n < len ? (size_t)n : len - 1;
}

int records_reg_create(records *r, reg_row *row, errdetail *e)
{
    if (!r || !row)
        return errdetail_set(e, CITRUS_EINVAL, "registration: no store or no row");
    int rc = text_check("id", row->id, RECORDS_MAX_REG_ID, e);
    if (rc == 0)
        rc = text_check("businessId", row->business_id, RECORDS_MAX_REG_TENANT, e);
    if (rc == 0)
        rc = text_check("locationId", row->location_id, RECORDS_MAX_REG_TENANT, e);
    if (rc == 0)
        rc = text_check("businessType", row->business_type, RECORDS_MAX_REG_TYPE, e);
    if (rc == 0)
        rc = corr_check(row->correlation_id, e);
    if (rc != 0)
        return rc;
    const char *err;
    char *owned = NULL;
    if ((rc = norm_error(row->last_error, &err, &owned, e)) != 0)
        return rc;
    /* A new row: no attempts, next attempt or finish time yet; updated
     * when created. */
    records_param q[RECORDS_MAX_PARAMS] = {
        {.s = row->id},
        {.s = row->business_id},
        {.s = row->location_id},
        {.s = row->business_type},
        {.s = reg_state_name(row->state)},
        {.s = err},
        {.s = row->shard_id},
        {.is_int = true, .i = row->created_ms},
        {.s = row->correlation_id},
    };
    int64_t changes = 0;
    rc = run(r,
             "INSERT INTO citrus_registrations (id, business_id, location_id, business_type,"
             " state, attempts, last_error, next_attempt_ms, shard_id, created_ms, updated_ms,"
             " finished_ms, correlation_id) VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, 0, ?7, ?8, ?8, 0,"
             " ?9) ON CONFLICT (id) DO NOTHING",
             q, 9, 0, NULL, NULL, &changes, e);
    free(owned);
    if (rc != 0)
        return rc;
    if (changes == 0)
        return errdetail_set(e, CITRUS_EEXISTS, "registration %s exists", row->id);
    reg_row got;
    rc = records_reg_get(r, row->id, &got, e);
    if (rc == 0) {
        row->seq = got.seq;
        row->attempts = 0;
        row->drive_attempts = 0;
        row->next_attempt_ms = 0;
        row->updated_ms = row->created_ms;
        row->finished_ms = 0;
    }
    return rc;
}

static int64_t num(const char *s)
{
    return s ? strtoll(s, NULL, 10) : 0;
}

static void copy(char *dst, size_t len, const char *s)
{
    snprintf(dst, len, "%s", s ? s : "");
}

static void row_of(char **c, reg_row *out)
{
    memset(out, 0, sizeof(*out));
    out->seq = num(c[0]);
    copy(out->id, sizeof(out->id), c[1]);
    copy(out->business_id, sizeof(out->business_id), c[2]);
    copy(out->location_id, sizeof(out->location_id), c[3]);
    copy(out->business_type, sizeof(out->business_type), c[4]);
    if (reg_state_parse(c[5], &out->state) != 0)
        out->state = REG_FAILED; /* never written so */
    out->attempts = (int)num(c[6]);
    copy(out->last_error, sizeof(out->last_error), c[7]);
    out->next_attempt_ms = num(c[8]);
    copy(out->shard_id, sizeof(out->shard_id), c[9]);
    out->created_ms = num(c[10]);
    out->updated_ms = num(c[11]);
    out->finished_ms = num(c[12]);
    out->drive_attempts = (int)num(c[13]);
    copy(out->correlation_id, sizeof(out->correlation_id), c[14]);
}

static void cells_free(char **cells, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(cells[i]);
}

int records_reg_get(records *r, const char *id, reg_row *out, errdetail *e)
{
    if (!r || !id || !out)
        return errdetail_set(e, CITRUS_EINVAL, "registration: no store, id or output");
    if (!*id || strlen(id) > RECORDS_MAX_REG_ID)
        return errdetail_set(e, CITRUS_ENOTFOUND, "registration not found");
    char *cells[NCOLS] = {0};
    records_param p[1] = {{.s = id}};
    size_t n = 0;
    int rc = run(r, "SELECT " COLUMNS " FROM citrus_registrations WHERE id = ?1", p, 1, 1, cells,
                 &n, NULL, e);
    if (rc == 0 && n == 0)
        rc = errdetail_set(e, CITRUS_ENOTFOUND, "registration %s not found", id);
    if (rc == 0)
        row_of(cells, out);
    cells_free(cells, NCOLS);
    return rc;
}

int records_reg_update(records *r, const reg_row *row, reg_state expect, bool *changed,
                       errdetail *e)
{
    return records_reg_update_if(r, row, expect, -1, changed, e);
}

int records_reg_update_if(records *r, const reg_row *row, reg_state expect, int expect_attempts,
                          bool *changed, errdetail *e)
{
    if (changed)
        *changed = false;
    if (!r || !row)
        return errdetail_set(e, CITRUS_EINVAL, "registration: no store or no row");
    const char *err;
    char *owned = NULL;
    int rc = norm_error(row->last_error, &err, &owned, e);
    if (rc != 0)
        return rc;
    if (strlen(row->shard_id) > RECORDS_MAX_REG_SHARD) {
        free(owned);
        return errdetail_set(e, CITRUS_EINVAL, "registration: shard id too long");
    }
    if ((rc = corr_check(row->correlation_id, e)) != 0) {
        free(owned);
        return rc;
    }
    /* ?2: the state it must have ('' for any); ?10: its attempts (< 0: any). */
    records_param p[RECORDS_MAX_PARAMS] = {
        {.s = row->id},
        {.s = expect == REG_NSTATES ? "" : reg_state_name(expect)},
        {.s = reg_state_name(row->state)},
        {.is_int = true, .i = row->attempts},
        {.s = err},
        {.is_int = true, .i = row->next_attempt_ms},
        {.s = row->shard_id},
        {.is_int = true, .i = row->updated_ms},
        {.is_int = true, .i = row->drive_attempts},
        {.is_int = true, .i = expect_attempts},
        {.s = row->correlation_id},
    };
    int64_t changes = 0;
    rc = run(
        r,
        "UPDATE citrus_registrations SET state = ?3, attempts = ?4, last_error = ?5,"
        " next_attempt_ms = ?6, shard_id = ?7, updated_ms = ?8, drive_attempts = ?9,"
        " correlation_id = ?11,"
        " finished_ms = CASE WHEN ?3 IN ('succeeded', 'failed') THEN CAST(?8 AS BIGINT) ELSE 0 END"
        " WHERE id = ?1 AND (?2 = '' OR state = ?2) AND (?10 < 0 OR attempts = ?10)",
        p, 11, 0, NULL, NULL, &changes, e);
    free(owned);
    if (rc == 0 && changed)
        *changed = changes > 0;
    return rc;
}

int records_reg_query(records *r, const reg_query *q, reg_row **rows, size_t *n,
                      int64_t *next_after, errdetail *e)
{
    *rows = NULL;
    *n = 0;
    if (next_after)
        *next_after = 0;
    if (!r)
        return errdetail_set(e, CITRUS_EINVAL, "registrations: no store");
    reg_query all = {0};
    if (!q)
        q = &all;
    size_t limit = q->limit ? q->limit : RECORDS_QUERY_DEFAULT_LIMIT;
    if (limit > RECORDS_QUERY_MAX_LIMIT)
        limit = RECORDS_QUERY_MAX_LIMIT;
    if (q->business_id && strlen(q->business_id) > RECORDS_MAX_REG_TENANT)
        return 0; /* no stored row has such an id */
    records_param p[4] = {
        {.is_int = true, .i = q->after_seq > 0 ? q->after_seq : 0},
        {.s = q->has_state ? reg_state_name(q->state) : ""},
        {.s = q->business_id ? q->business_id : ""},
        {.is_int = true, .i = (int64_t)limit + 1},
    };
    char **cells = calloc((limit + 1) * NCOLS, sizeof(*cells));
    reg_row *out = calloc(limit + 1, sizeof(*out));
    if (!cells || !out) {
        free(cells);
        free(out);
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    }
    size_t got = 0;
    /* Each filter its own statement, so every one is served by its index. */
    const char *sql =
        q->has_state && q->business_id ? "SELECT " COLUMNS
                                         " FROM citrus_registrations WHERE seq > ?1 AND state = ?2"
                                         " AND business_id = ?3 ORDER BY seq LIMIT ?4"
        : q->has_state   ? "SELECT " COLUMNS " FROM citrus_registrations WHERE seq > ?1 AND"
                           " state = ?2 AND ?3 = '' ORDER BY seq LIMIT ?4"
        : q->business_id ? "SELECT " COLUMNS " FROM citrus_registrations WHERE seq > ?1 AND"
                           " ?2 = '' AND business_id = ?3 ORDER BY seq LIMIT ?4"
                         : "SELECT " COLUMNS " FROM citrus_registrations WHERE seq > ?1 AND"
                           " ?2 = '' AND ?3 = '' ORDER BY seq LIMIT ?4";
    int rc = run(r, sql, p, 4, limit + 1, cells, &got, NULL, e);
    for (size_t i = 0; rc == 0 && i < got; i++)
        row_of(cells + i * NCOLS, &out[i]);
    cells_free(cells, (limit + 1) * NCOLS);
    free(cells);
    if (rc != 0 || got == 0) {
        free(out);
        return rc;
    }
    if (got > limit) {
        got = limit;
        if (next_after)
            *next_after = out[got - 1].seq;
    }
    *rows = out;
    *n = got;
    return 0;
}

int records_reg_purge(records *r, int64_t before_ms, int64_t *deleted, errdetail *e)
{
    if (deleted)
        *deleted = 0;
    if (!r)
        return errdetail_set(e, CITRUS_EINVAL, "purge: no store");
    records_param p[1] = {{.is_int = true, .i = before_ms}};
    int64_t total = 0, batch;
    int rc;
    do {
        batch = 0;
        rc = run(r,
                 "DELETE FROM citrus_registrations WHERE seq IN (SELECT seq FROM"
                 " citrus_registrations WHERE finished_ms > 0 AND finished_ms < ?1 ORDER BY seq"
                 " LIMIT " RECORDS_STR(RECORDS_PURGE_BATCH) ")",
                 p, 1, 0, NULL, NULL, &batch, e);
        total += batch;
    } while (rc == 0 && batch >= RECORDS_PURGE_BATCH);
    if (deleted)
        *deleted = total;
    return rc;
}
