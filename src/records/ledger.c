/* records/ledger.c — the front of the workers' ledger and notifications
 * (ledger.h): argument checks, text normalization (records.c's rule), the
 * query's WHERE clause, paging, purge loops. The backends run statements
 * (records_ops.h). */
#include "records/ledger.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"
#include "records/records_ops.h"

/* A ledger key: 1..max bytes of 0x21..0x7e. */
static int key_check(const char *what, const char *s, size_t max, errdetail *e)
{
    if (!s || !*s)
        return errdetail_set(e, CITRUS_EINVAL, "ledger: no %s", what);
    size_t i = 0;
    for (; s[i]; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i >= max)
            return errdetail_set(e, CITRUS_EINVAL, "ledger: %s longer than %zu bytes", what, max);
        if (c < 0x21 || c > 0x7e)
            return errdetail_set(e, CITRUS_EINVAL,
                                 "ledger: %s must be printable ASCII without spaces", what);
    }
    return 0;
}

int records_processed_seen(records *r, const char *group, const char *event_id, bool *seen,
                           errdetail *e)
{
    if (seen)
        *seen = false;
    if (!r || !seen)
        return errdetail_set(e, CITRUS_EINVAL, "ledger: no store or no output");
    int rc = key_check("group", group, RECORDS_MAX_GROUP, e);
    if (rc == 0)
        rc = key_check("event id", event_id, RECORDS_MAX_EVENT_ID, e);
    return rc != 0 ? rc : r->ops->processed_seen(r, group, event_id, seen, e);
}

/* A notification's texts, normalized; owned[] what was allocated. */
typedef struct norm_row {
    notification_row row;
    char *owned[RECORDS_NOTIFY_NTEXT];
} norm_row;

static const size_t notify_max[RECORDS_NOTIFY_NTEXT - 1] = {
    RECORDS_MAX_EVENT_ID,        RECORDS_MAX_NOTIFY_SOURCE,  RECORDS_MAX_NOTIFY_TYPE,
    RECORDS_MAX_NOTIFY_SEVERITY, RECORDS_MAX_NOTIFY_SUBJECT, RECORDS_MAX_CORRELATION_ID};

static int norm_notification(const notification_row *in, norm_row *out, errdetail *e)
{
    memset(out, 0, sizeof(*out));
    out->row.time_ms = in->time_ms;
    const char *src[RECORDS_NOTIFY_NTEXT - 1] = {in->event_id, in->source,  in->type,
                                                 in->severity, in->subject, in->correlation_id};
    const char **dst[RECORDS_NOTIFY_NTEXT - 1] = {&out->row.event_id, &out->row.source,
                                                  &out->row.type,     &out->row.severity,
                                                  &out->row.subject,  &out->row.correlation_id};
    int rc = 0;
    for (int i = 0; i < RECORDS_NOTIFY_NTEXT - 1 && rc == 0; i++)
        rc = records_norm_text(src[i], notify_max[i], dst[i], &out->owned[i], e);
    if (rc != 0)
        return rc;
    const char *data = in->data && *in->data ? in->data : "null";
    size_t len = strlen(data);
    if (len > RECORDS_MAX_NOTIFY_DATA)
        return errdetail_set(e, CITRUS_ETOOBIGVAL,
                             "notification: data of %zu bytes, the limit is %d", len,
                             RECORDS_MAX_NOTIFY_DATA);
    /* JSON text from jansson is valid UTF-8; a caller's other text is made so
     * (the limit is not reached: checked above, and replacements only
     * shorten or keep a text that was cut nowhere). */
    return records_norm_text(data, RECORDS_MAX_NOTIFY_DATA + 1, &out->row.data,
                             &out->owned[RECORDS_NOTIFY_NTEXT - 1], e);
}

static void norm_free(norm_row *n)
{
    for (int i = 0; i < RECORDS_NOTIFY_NTEXT; i++)
        free(n->owned[i]);
}

int records_processed_record(records *r, processed_entry *entries, size_t n, errdetail *e)
{
    if (!r || !entries || n == 0 || n > RECORDS_PROCESSED_BATCH_MAX)
        return errdetail_set(e, CITRUS_EINVAL, "ledger: 1 to %d entries per call",
                             RECORDS_PROCESSED_BATCH_MAX);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        entries[i].duplicate = false;
        rc = key_check("group", entries[i].group, RECORDS_MAX_GROUP, e);
        if (rc == 0)
            rc = key_check("event id", entries[i].event_id, RECORDS_MAX_EVENT_ID, e);
    }
    if (rc != 0)
        return rc;
    /* The backends get copies whose notifications are normalized. */
    processed_entry *copy = calloc(n, sizeof(*copy));
    norm_row *rows = calloc(n, sizeof(*rows));
    if (!copy || !rows) {
        free(copy);
        free(rows);
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        copy[i] = entries[i];
        if (entries[i].notification) {
            rc = norm_notification(entries[i].notification, &rows[i], e);
            copy[i].notification = &rows[i].row;
        }
    }
    if (rc == 0)
        rc = r->ops->processed_record(r, copy, n, e);
    for (size_t i = 0; i < n; i++) {
        if (rc == 0)
            entries[i].duplicate = copy[i].duplicate;
        norm_free(&rows[i]);
    }
    free(copy);
    free(rows);
    return rc;
}

static int purge_loop(records *r, const char *sql, int64_t before_ms, int64_t *deleted,
                      errdetail *e)
{
    if (deleted)
        *deleted = 0;
    if (!r)
        return errdetail_set(e, CITRUS_EINVAL, "purge: no store");
    int64_t total = 0, batch;
    int rc;
    do {
        batch = 0;
        rc = r->ops->purge_sql(r, sql, before_ms, &batch, e);
        total += batch;
    } while (rc == 0 && batch >= RECORDS_PURGE_BATCH);
    if (deleted)
        *deleted = total;
    return rc;
}

int records_processed_purge(records *r, int64_t before_ms, int64_t *deleted, errdetail *e)
{
    bool pg = r && r->ops->placeholder == '$';
    return purge_loop(r, pg ? RECORDS_LEDGER_PURGE_SQL("$1") : RECORDS_LEDGER_PURGE_SQL("?1"),
                      before_ms, deleted, e);
}

int records_notifications_purge(records *r, int64_t before_ms, int64_t *deleted, errdetail *e)
{
    bool pg = r && r->ops->placeholder == '$';
    return purge_loop(r, pg ? RECORDS_NOTIFY_PURGE_SQL("$1") : RECORDS_NOTIFY_PURGE_SQL("?1"),
                      before_ms, deleted, e);
}

/* ---- rows and queries ---------------------------------------------------------- */

int records_notification_set(notification_row *row, int64_t id, int64_t time_ms,
                             const char *const text[RECORDS_NOTIFY_NTEXT], errdetail *e)
{
    row->id = id;
    row->time_ms = time_ms;
    const char **dst[RECORDS_NOTIFY_NTEXT] = {&row->event_id, &row->source,  &row->type,
                                              &row->severity, &row->subject, &row->correlation_id,
                                              &row->data};
    for (int i = 0; i < RECORDS_NOTIFY_NTEXT; i++) {
        char *c = strdup(text[i] ? text[i] : "");
        if (!c)
            return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
        *dst[i] = c;
    }
    return 0;
}

static void notification_strings_free(notification_row *row)
{
    const char *s[RECORDS_NOTIFY_NTEXT] = {row->event_id, row->source,  row->type,
                                           row->severity, row->subject, row->correlation_id,
                                           row->data};
    for (int i = 0; i < RECORDS_NOTIFY_NTEXT; i++)
        free((char *)s[i]);
    memset(row, 0, sizeof(*row));
}

void notification_rows_free(notification_row *rows, size_t n)
{
    if (!rows)
        return;
    for (size_t i = 0; i < n; i++)
        notification_strings_free(&rows[i]);
    free(rows);
}

/* Appends " AND <col> <op> <placeholder>" and its parameter. */
static void cond(records_filter *f, char ph, const char *col, const char *op, bool is_int,
                 int64_t i, const char *s)
{
    size_t len = strlen(f->sql);
    f->p[f->np] = (records_param){.is_int = is_int, .i = i, .s = s};
    f->np++;
    snprintf(f->sql + len, sizeof(f->sql) - len, " AND %s %s %c%d", col, op, ph, f->np);
}

static void filter_free(records_filter *f)
{
    for (size_t i = 0; i < sizeof(f->owned) / sizeof(f->owned[0]); i++)
        free(f->owned[i]);
}

static int notify_filter(const notification_query *q, char ph, records_filter *f, errdetail *e)
{
    memset(f, 0, sizeof(*f));
    size_t limit = q->limit ? q->limit : RECORDS_QUERY_DEFAULT_LIMIT;
    f->limit = limit > RECORDS_QUERY_MAX_LIMIT ? RECORDS_QUERY_MAX_LIMIT : limit;
    snprintf(f->sql, sizeof(f->sql),
             "SELECT " RECORDS_NOTIFY_COLUMNS " FROM citrus_notifications WHERE id > %c1", ph);
    f->p[0] = (records_param){.is_int = true, .i = q->after_id > 0 ? q->after_id : 0};
    f->np = 1;
    if (q->since_ms != 0)
        cond(f, ph, "time_ms", ">=", true, q->since_ms, NULL);
    const char *vals[3] = {q->source, q->type, q->severity};
    const char *cols[3] = {"source", "type", "severity"};
    const size_t max[3] = {RECORDS_MAX_NOTIFY_SOURCE, RECORDS_MAX_NOTIFY_TYPE,
                           RECORDS_MAX_NOTIFY_SEVERITY};
    for (int i = 0; i < 3; i++) {
        if (!vals[i])
            continue;
        const char *norm;
        int rc = records_norm_text(vals[i], max[i], &norm, &f->owned[i], e);
        if (rc != 0) {
            filter_free(f);
            return rc;
        }
        cond(f, ph, cols[i], "=", false, 0, norm);
    }
    f->p[f->np] = (records_param){.is_int = true, .i = (int64_t)f->limit + 1};
    f->np++;
    size_t len = strlen(f->sql);
    snprintf(f->sql + len, sizeof(f->sql) - len, " ORDER BY id LIMIT %c%d", ph, f->np);
    return 0;
}

int records_notifications_query(records *r, const notification_query *q, notification_row **rows,
                                size_t *n, int64_t *next_after, errdetail *e)
{
    *rows = NULL;
    *n = 0;
    if (next_after)
        *next_after = 0;
    if (!r)
        return errdetail_set(e, CITRUS_EINVAL, "notifications: no store");
    notification_query all = {0};
    records_filter f;
    int rc = notify_filter(q ? q : &all, r->ops->placeholder, &f, e);
    if (rc != 0)
        return rc;
    notification_row *got = calloc(f.limit + 1, sizeof(*got));
    if (!got) {
        filter_free(&f);
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    }
    size_t count = 0;
    rc = r->ops->notify_query(r, &f, got, &count, e);
    filter_free(&f);
    if (rc != 0) {
        notification_rows_free(got, count);
        return rc;
    }
    if (count > f.limit) {
        notification_strings_free(&got[f.limit]);
        count = f.limit;
        if (next_after)
            *next_after = got[count - 1].id;
    }
    if (count == 0) {
        free(got);
        got = NULL;
    }
    *rows = got;
    *n = count;
    return 0;
}

/* ---- manifests ------------------------------------------------------------------ */

static int manifest_id_check(const char *id, errdetail *e)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > RECORDS_MAX_MANIFEST_ID)
        return errdetail_set(e, CITRUS_EINVAL, "manifest id: 1..%d bytes", RECORDS_MAX_MANIFEST_ID);
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  strchr("._:@-", c);
        if (!ok)
            return errdetail_set(e, CITRUS_EINVAL, "manifest id: only A-Z a-z 0-9 . _ : @ -");
    }
    return 0;
}

int records_manifest_put(records *r, const char *id, const char *body, int64_t time_ms,
                         bool *created, int64_t *version, errdetail *e)
{
    bool c = false;
    int64_t v = 0;
    if (!r || !body || !*body)
        return errdetail_set(e, CITRUS_EINVAL, "manifest: no store or no body");
    int rc = manifest_id_check(id, e);
    if (rc != 0)
        return rc;
    if (strlen(body) > RECORDS_MAX_MANIFEST)
        return errdetail_set(e, CITRUS_ETOOBIGVAL, "manifest: more than %d bytes",
                             RECORDS_MAX_MANIFEST);
    rc = r->ops->manifest_put(r, id, body, time_ms, &c, &v, e);
    if (created)
        *created = rc == 0 && c;
    if (version)
        *version = rc == 0 ? v : 0;
    return rc;
}

int records_manifest_get(records *r, const char *id, manifest_row *out, errdetail *e)
{
    memset(out, 0, sizeof(*out));
    if (!r)
        return errdetail_set(e, CITRUS_EINVAL, "manifest: no store");
    int rc = manifest_id_check(id, e);
    return rc != 0 ? rc : r->ops->manifest_get(r, id, out, e);
}
