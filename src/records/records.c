/* records/records.c — the records store's front: argument checks and
 * normalization shared by both backends (see records_ops.h), paging, the
 * purge loop, and freeing rows.
 *
 * Text is normalized here, once, so both backends store the same bytes:
 * cut to the field's limit at a character boundary, each byte that does
 * not start a valid UTF-8 sequence replaced by U+FFFD. */
#include "records/records.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"
#include "records/records_ops.h"

static const size_t text_max[RECORDS_AUDIT_NTEXT] = {
    RECORDS_MAX_PRINCIPAL, RECORDS_MAX_ROLES,  RECORDS_MAX_AUTH_METHOD,
    RECORDS_MAX_PEER,      RECORDS_MAX_METHOD, RECORDS_MAX_ROUTE,
    RECORDS_MAX_ACTION,    RECORDS_MAX_TARGET, RECORDS_MAX_CORRELATION_ID};

enum { T_PRINCIPAL, T_ROLES, T_AUTH, T_PEER, T_METHOD, T_ROUTE, T_ACTION, T_TARGET, T_CORR };

/* ---- text ------------------------------------------------------------------------ */

/* Length of the valid UTF-8 sequence at s (1..4), 0 when s[0] does not
 * start one (overlong forms, surrogates and code points past U+10FFFF are
 * invalid, as PostgreSQL has them). */
static size_t utf8_seq(const unsigned char *s)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF; /* bounds of the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        return 0;
    }
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0; /* also stops at the NUL terminator */
    return len;
}

/* in (NULL: "") as valid UTF-8 of at most max bytes: *out is in itself when
 * it already is, else a copy in *owned (to free). 0 or CITRUS_ENOMEM. */
static int norm_text(const char *in, size_t max, const char **out, char **owned, errdetail *e)
{
    *owned = NULL;
    *out = in ? in : "";
    const unsigned char *s = (const unsigned char *)*out;
    size_t i = 0, seq;
    for (;;) {
        if (s[i] == '\0')
            return 0; /* valid and within the limit: as given */
        seq = utf8_seq(s + i);
        if (seq == 0 || i + seq > max)
            break;
        i += seq;
    }
    char *w = malloc(max + 1);
    if (!w)
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    memcpy(w, s, i);
    size_t o = i;
    while (s[i]) {
        seq = utf8_seq(s + i);
        size_t add = seq ? seq : 3;
        if (o + add > max)
            break;
        if (seq)
            memcpy(w + o, s + i, seq);
        else
            memcpy(w + o, "\xEF\xBF\xBD", 3);
        o += add;
        i += seq ? seq : 1;
    }
    w[o] = '\0';
    *owned = w;
    *out = w;
    return 0;
}

static void text_free(records_text *t)
{
    for (int i = 0; i < RECORDS_AUDIT_NTEXT; i++)
        free(t->owned[i]);
}

/* ---- rows ------------------------------------------------------------------------- */

int records_row_set(audit_row *row, int64_t id, int64_t time_ms,
                    const char *const text[RECORDS_AUDIT_NTEXT], int status, errdetail *e)
{
    row->id = id;
    row->time_ms = time_ms;
    row->status = status;
    const char **dst[RECORDS_AUDIT_NTEXT] = {&row->principal, &row->roles,  &row->auth_method,
                                             &row->peer,      &row->method, &row->route,
                                             &row->action,    &row->target, &row->correlation_id};
    for (int i = 0; i < RECORDS_AUDIT_NTEXT; i++) {
        char *c = strdup(text[i] ? text[i] : "");
        if (!c)
            return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
        *dst[i] = c;
    }
    return 0;
}

/* Frees the strings of one row (records_row_set strdup'ed them). */
static void row_strings_free(audit_row *row)
{
    const char *s[RECORDS_AUDIT_NTEXT] = {row->principal, row->roles,  row->auth_method,
                                          row->peer,      row->method, row->route,
                                          row->action,    row->target, row->correlation_id};
    for (int k = 0; k < RECORDS_AUDIT_NTEXT; k++)
        free((char *)s[k]);
    memset(row, 0, sizeof(*row));
}

void audit_rows_free(audit_row *rows, size_t n)
{
    if (!rows)
        return;
    for (size_t i = 0; i < n; i++)
        row_strings_free(&rows[i]);
    free(rows);
}

/* ---- the interface ---------------------------------------------------------------- */

void records_close(records *r)
{
    if (r)
        r->ops->close(r);
}

const char *records_backend(const records *r)
{
    return r->ops->name;
}

int records_audit_append(records *r, const audit_row *row, int64_t *id, errdetail *e)
{
    if (id)
        *id = 0;
    if (!r || !row)
        return errdetail_set(e, CITRUS_EINVAL, "audit append: no store or no row");
    if (row->status < 0 || row->status > 999)
        return errdetail_set(e, CITRUS_EINVAL, "audit append: status %d out of range", row->status);
    const char *in[RECORDS_AUDIT_NTEXT] = {row->principal, row->roles,  row->auth_method,
                                           row->peer,      row->method, row->route,
                                           row->action,    row->target, row->correlation_id};
    records_text t = {0};
    int rc = 0;
    for (int i = 0; i < RECORDS_AUDIT_NTEXT && rc == 0; i++)
        rc = norm_text(in[i], text_max[i], &t.v[i], &t.owned[i], e);
    int64_t got = 0;
    if (rc == 0)
        rc = r->ops->append(r, row->time_ms, &t, row->status, &got, e);
    text_free(&t);
    if (rc == 0 && id)
        *id = got;
    return rc;
}

int records_audit_finish(records *r, int64_t id, int status, errdetail *e)
{
    if (!r || id <= 0)
        return errdetail_set(e, CITRUS_EINVAL, "audit finish: no store or bad id");
    if (status < 1 || status > 999)
        return errdetail_set(e, CITRUS_EINVAL, "audit finish: status %d out of range", status);
    bool found = false;
    int current = 0;
    int rc = r->ops->finish(r, id, status, &found, &current, e);
    if (rc != 0)
        return rc;
    if (!found)
        return errdetail_set(e, CITRUS_ENOTFOUND, "audit row %lld not found", (long long)id);
    if (current != status)
        return errdetail_set(e, CITRUS_ECONFLICT, "audit row %lld already has status %d",
                             (long long)id, current);
    return 0;
}

/* Appends " AND <col> <op> <placeholder>" to f->sql and the parameter. */
static void add_cond(records_filter *f, char ph, const char *col, const char *op, bool is_int,
                     int64_t i, const char *s)
{
    size_t len = strlen(f->sql);
    f->p[f->np] = (records_param){.is_int = is_int, .i = i, .s = s};
    f->np++;
    snprintf(f->sql + len, sizeof(f->sql) - len, " AND %s %s %c%d", col, op, ph, f->np);
}

/* The action filter: exact, or a prefix ("shard.*", "shard.": every action
 * starting with "shard."), or none ("*"). A prefix is the range
 * [p, p with its last byte + 1), which an index on action answers (both
 * backends compare bytewise: SQLite's BINARY collation, PostgreSQL's "C"
 * column collation). */
static int add_action(records_filter *f, char ph, const char *action, errdetail *e)
{
    if (strcmp(action, "*") == 0)
        return 0;
    size_t len = strlen(action);
    bool star = len >= 2 && strcmp(action + len - 2, ".*") == 0;
    bool dot = len >= 1 && action[len - 1] == '.';
    const char *norm;
    char *own = NULL;
    if (!star && !dot) {
        int rc = norm_text(action, RECORDS_MAX_ACTION, &norm, &own, e);
        if (rc != 0)
            return rc;
        f->owned[2] = own;
        add_cond(f, ph, "action", "=", false, 0, norm);
        return 0;
    }
    size_t plen = star ? len - 1 : len; /* up to and with the '.' */
    char *lo = strndup(action, plen);
    char *hi = strndup(action, plen);
    if (!lo || !hi) {
        free(lo);
        free(hi);
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    }
    hi[plen - 1] = '.' + 1; /* '/': the first byte after '.' */
    f->owned[2] = lo;
    f->owned[3] = hi;
    add_cond(f, ph, "action", ">=", false, 0, lo);
    add_cond(f, ph, "action", "<", false, 0, hi);
    return 0;
}

static void filter_free(records_filter *f)
{
    for (size_t i = 0; i < sizeof(f->owned) / sizeof(f->owned[0]); i++)
        free(f->owned[i]);
}

static int filter_build(const audit_query *q, char ph, records_filter *f, errdetail *e)
{
    memset(f, 0, sizeof(*f));
    size_t limit = q->limit ? q->limit : RECORDS_QUERY_DEFAULT_LIMIT;
    f->limit = limit > RECORDS_QUERY_MAX_LIMIT ? RECORDS_QUERY_MAX_LIMIT : limit;
    snprintf(f->sql, sizeof(f->sql), "SELECT " RECORDS_AUDIT_COLUMNS " FROM citrus_audit WHERE");
    f->p[0] = (records_param){.is_int = true, .i = q->after_id > 0 ? q->after_id : 0};
    f->np = 1;
    size_t len = strlen(f->sql);
    snprintf(f->sql + len, sizeof(f->sql) - len, " id > %c1", ph);
    if (q->since_ms != 0)
        add_cond(f, ph, "time_ms", ">=", true, q->since_ms, NULL);
    int rc = 0;
    const char *norm;
    if (q->principal) {
        rc = norm_text(q->principal, RECORDS_MAX_PRINCIPAL, &norm, &f->owned[0], e);
        if (rc == 0)
            add_cond(f, ph, "principal", "=", false, 0, norm);
    }
    if (rc == 0 && q->target) {
        rc = norm_text(q->target, RECORDS_MAX_TARGET, &norm, &f->owned[1], e);
        if (rc == 0)
            add_cond(f, ph, "target", "=", false, 0, norm);
    }
    if (rc == 0 && q->action)
        rc = add_action(f, ph, q->action, e);
    if (rc != 0) {
        filter_free(f);
        return rc;
    }
    f->p[f->np] = (records_param){.is_int = true, .i = (int64_t)f->limit + 1};
    f->np++;
    len = strlen(f->sql);
    snprintf(f->sql + len, sizeof(f->sql) - len, " ORDER BY id LIMIT %c%d", ph, f->np);
    return 0;
}

int records_audit_query(records *r, const audit_query *q, audit_row **rows, size_t *n,
                        int64_t *next_after, errdetail *e)
{
    *rows = NULL;
    *n = 0;
    if (next_after)
        *next_after = 0;
    if (!r)
        return errdetail_set(e, CITRUS_EINVAL, "audit query: no store");
    audit_query all = {0};
    records_filter f;
    int rc = filter_build(q ? q : &all, r->ops->placeholder, &f, e);
    if (rc != 0)
        return rc;
    audit_row *got = calloc(f.limit + 1, sizeof(*got));
    if (!got) {
        filter_free(&f);
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    }
    size_t count = 0;
    rc = r->ops->query(r, &f, got, &count, e);
    if (rc != 0) {
        audit_rows_free(got, count);
        filter_free(&f);
        return rc;
    }
    if (count > f.limit) { /* the row past the page: more follow */
        row_strings_free(&got[f.limit]);
        count = f.limit;
        if (next_after)
            *next_after = got[count - 1].id;
    }
    filter_free(&f);
    if (count == 0) {
        free(got);
        got = NULL;
    }
    *rows = got;
    *n = count;
    return 0;
}

int records_audit_purge(records *r, int64_t before_ms, int64_t *deleted, errdetail *e)
{
    if (deleted)
        *deleted = 0;
    if (!r)
        return errdetail_set(e, CITRUS_EINVAL, "audit purge: no store");
    int64_t total = 0, batch;
    int rc;
    do {
        batch = 0;
        rc = r->ops->purge_batch(r, before_ms, &batch, e);
        total += batch;
    } while (rc == 0 && batch >= RECORDS_PURGE_BATCH);
    if (deleted)
        *deleted = total;
    return rc;
}
