/* records/records.c — the records store's front: argument checks and
 * normalization shared by both backends (see records_ops.h), the write
 * path (group commit), paging, the purge loop, and freeing rows.
 *
 * Text is normalized here, once, so both backends store the same bytes:
 * cut to the field's limit at a character boundary, each byte that does
 * not start a valid UTF-8 sequence replaced by U+FFFD.
 *
 * Group commit: every write goes through one writer thread per store. An
 * appending caller queues its row and waits; the writer takes everything
 * queued the moment it is free (appends, and the statuses queued by
 * records_audit_finish) and hands it to the backend as one transaction,
 * so concurrent appends share one fsync (SQLite) or one commit
 * (PostgreSQL), and each caller returns once its batch is durable, with
 * its own id or with the batch's error. See "the writer" below for why a
 * thread rather than leader/follower. */
#include "records/records.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"
#include "obs/log.h"
#include "records/records_ops.h"
#include "sys/clock.h"

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

int records_norm_text(const char *in, size_t max, const char **out, char **owned, errdetail *e)
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

/* ---- the writer ------------------------------------------------------------------- */

/* Why a writer thread and not leader/follower (the first waiting caller
 * commits for all): statuses are fire-and-forget (records_audit_finish
 * returns at once) and must still reach the store when no append follows
 * them, on a node gone quiet, which takes a thread that is no caller. With
 * that thread committing the appends too there is one write path and one
 * order of ids, and no caller runs a transaction for others. The handoff
 * costs microseconds against a commit's fsync of a millisecond or more.
 *
 * No append waits for a timer: the writer takes whatever is queued the
 * moment it is free, so a lone append is committed at once, and the
 * appends that arrive while a commit syncs go together in the next one.
 * Statuses alone do wait, up to FINISH_DELAY_MS, for an append to ride
 * with (at one request at a time that halves the commits); a query writes
 * them first (writer_flush), and so does records_close. */

/* How long queued statuses wait for a batch of appends to go with. */
#define FINISH_DELAY_MS 20

/* A caller's append, on its stack while it waits. A flush (row.t NULL)
 * carries no row: it returns once every status queued before it is
 * written. */
typedef struct append_req {
    records_append row;
    errdetail *e; /* the caller's (may be NULL): the batch's error */
    int rc;
    bool done; /* guarded by mu */
    struct append_req *next;
    /* records_audit_append_async: on the heap, with its texts; cb runs on
     * the writer thread once the batch is written (or failed), then q is
     * freed. */
    records_append_cb cb;
    void *cb_ctx;
    records_text text;
    errdetail err;
} append_req;

struct records_writer {
    records *r;
    pthread_mutex_t mu;
    pthread_cond_t work;  /* the writer: something queued, or stopping */
    pthread_cond_t done;  /* callers: their batch was written (or failed) */
    pthread_cond_t space; /* callers: the queue has room again */
    append_req *head, *tail;
    size_t queued;       /* requests from head: at most RECORDS_BATCH_MAX */
    records_finish *fin; /* queued statuses, oldest first (RECORDS_FINISH_MAX) */
    size_t nfin;
    struct timespec fin_due; /* when the oldest of them is written without an append */
    bool fin_inflight;       /* the batch being written carries statuses */
    bool healthy;            /* the last batch was written (true before the first) */
    bool stopping;
    bool started;
    pthread_t th;
    /* The writer thread's own: the batch being written. */
    records_finish *wfin;
    records_append *rows;
};

static void writer_free(records_writer *w)
{
    if (!w)
        return;
    pthread_cond_destroy(&w->work);
    pthread_cond_destroy(&w->done);
    pthread_cond_destroy(&w->space);
    pthread_mutex_destroy(&w->mu);
    free(w->fin);
    free(w->wfin);
    free(w->rows);
    free(w);
}

/* Waits until there is a batch to write or the writer is to stop. mu held. */
static void writer_wait(records_writer *w)
{
    while (!w->stopping && !w->head) {
        if (w->nfin == 0 || !w->healthy) {
            /* Statuses kept from a failed batch go with the next append or
             * flush, not on their own: a store that is down is not retried
             * in a loop. */
            pthread_cond_wait(&w->work, &w->mu);
            continue;
        }
        if (w->nfin >= RECORDS_FINISH_MAX / 2)
            return;
        if (pthread_cond_timedwait(&w->work, &w->mu, &w->fin_due) == ETIMEDOUT)
            return;
    }
}

/* After a failed batch: its statuses go back before the ones queued since
 * (they are older), as many as fit; returns how many did not. mu held. */
static size_t writer_keep_statuses(records_writer *w, size_t nfin)
{
    if (w->stopping)
        return nfin; /* the last batch: nothing comes after it */
    size_t room = RECORDS_FINISH_MAX - w->nfin;
    size_t keep = nfin < room ? nfin : room;
    memmove(w->fin + keep, w->fin, w->nfin * sizeof(*w->fin));
    memcpy(w->fin, w->wfin, keep * sizeof(*w->fin));
    w->nfin += keep;
    return nfin - keep;
}

static void *writer_main(void *arg)
{
    records_writer *w = arg;
    errdetail err;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        writer_wait(w);
        if (!w->head && w->nfin == 0)
            break; /* stopping, and nothing left to write */
        append_req *batch = w->head;
        w->head = w->tail = NULL;
        w->queued = 0;
        pthread_cond_broadcast(&w->space);
        records_finish *f = w->fin;
        w->fin = w->wfin;
        w->wfin = f;
        size_t nfin = w->nfin;
        w->nfin = 0;
        w->fin_inflight = nfin > 0;
        pthread_mutex_unlock(&w->mu);

        size_t n = 0;
        for (append_req *q = batch; q; q = q->next)
            if (q->row.t)
                w->rows[n++] = q->row;
        int rc = 0;
        errdetail_clear(&err);
        if (n > 0 || nfin > 0)
            rc = w->r->ops->write_batch(w->r, w->rows, n, w->wfin, nfin, &err);

        pthread_mutex_lock(&w->mu);
        if (n > 0 || nfin > 0)
            w->healthy = rc == 0;
        size_t lost = rc != 0 && nfin > 0 ? writer_keep_statuses(w, nfin) : 0;
        w->fin_inflight = false;
        n = 0;
        append_req *async = NULL; /* completions to run once mu is released */
        for (append_req *q = batch, *next; q; q = next) {
            next = q->next; /* q is gone once done is seen */
            if (q->row.t)
                q->row.id = rc == 0 ? w->rows[n++].id : 0;
            q->rc = rc;
            if (rc != 0 && q->e)
                *q->e = err;
            if (q->cb) {
                q->next = async;
                async = q;
            } else {
                q->done = true;
            }
        }
        pthread_cond_broadcast(&w->done);
        if (async) {
            pthread_mutex_unlock(&w->mu);
            for (append_req *q = async, *next; q; q = next) {
                next = q->next;
                q->cb(q->cb_ctx, q->rc, q->row.id, &q->err);
                text_free(&q->text);
                free(q);
            }
            pthread_mutex_lock(&w->mu);
        }
        if (lost > 0) {
            pthread_mutex_unlock(&w->mu);
            log_warn("records", "audit statuses not recorded (their rows keep status 0)",
                     json_pack("{s:I,s:s}", "count", (json_int_t)lost, "error", err.message));
            pthread_mutex_lock(&w->mu);
        }
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* Queues q (waiting while the queue is full); with wait, until its batch
 * is written, and its rc. mu held on entry and exit. */
static int writer_queue(records_writer *w, append_req *q, bool wait, errdetail *e)
{
    while (w->queued >= RECORDS_BATCH_MAX && !w->stopping)
        pthread_cond_wait(&w->space, &w->mu); /* back-pressure: wait, never drop */
    if (w->stopping)
        return errdetail_set(e, CITRUS_EAUDIT, "records store unavailable: closing");
    q->next = NULL;
    if (w->tail)
        w->tail->next = q;
    else
        w->head = q;
    w->tail = q;
    w->queued++;
    pthread_cond_signal(&w->work);
    while (wait && !q->done)
        pthread_cond_wait(&w->done, &w->mu);
    return wait ? q->rc : 0;
}

static int writer_submit(records_writer *w, append_req *q, errdetail *e)
{
    pthread_mutex_lock(&w->mu);
    int rc = writer_queue(w, q, true, e);
    pthread_mutex_unlock(&w->mu);
    return rc;
}

/* Writes the statuses queued so far (by any thread), so a query sees them.
 * 0 at once when none is pending. */
static int writer_flush(records_writer *w, errdetail *e)
{
    pthread_mutex_lock(&w->mu);
    bool pending = w->nfin > 0 || w->fin_inflight;
    pthread_mutex_unlock(&w->mu);
    if (!pending)
        return 0;
    append_req q = {.e = e};
    return writer_submit(w, &q, e);
}

/* Stops the writer after it wrote what is queued, and frees it. */
static void writer_stop(records_writer *w)
{
    pthread_mutex_lock(&w->mu);
    w->stopping = true;
    pthread_cond_broadcast(&w->work);
    pthread_cond_broadcast(&w->space);
    pthread_mutex_unlock(&w->mu);
    if (w->started)
        pthread_join(w->th, NULL);
    writer_free(w);
}

int records_start(records *r, errdetail *e)
{
    records_writer *w = calloc(1, sizeof(*w));
    if (!w)
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    w->r = r;
    w->healthy = true;
    w->fin = calloc(RECORDS_FINISH_MAX, sizeof(*w->fin));
    w->wfin = calloc(RECORDS_FINISH_MAX, sizeof(*w->wfin));
    w->rows = calloc(RECORDS_BATCH_MAX, sizeof(*w->rows));
    bool ok = w->fin && w->wfin && w->rows;
    int made = 0; /* how many of mu, work, done, space were made */
    if (ok && (ok = pthread_mutex_init(&w->mu, NULL) == 0))
        made = 1;
    if (ok && (ok = clock_cond_init(&w->work) == 0)) /* waits with a deadline: monotonic */
        made = 2;
    if (ok && (ok = pthread_cond_init(&w->done, NULL) == 0))
        made = 3;
    if (ok && (ok = pthread_cond_init(&w->space, NULL) == 0))
        made = 4;
    ok = ok && pthread_create(&w->th, NULL, writer_main, w) == 0;
    if (!ok) {
        if (made >= 4)
            pthread_cond_destroy(&w->space);
        if (made >= 3)
            pthread_cond_destroy(&w->done);
        if (made >= 2)
            pthread_cond_destroy(&w->work);
        if (made >= 1)
            pthread_mutex_destroy(&w->mu);
        free(w->fin);
        free(w->wfin);
        free(w->rows);
        free(w);
        return errdetail_set(e, CITRUS_ENOMEM, "records store: cannot start its writer");
    }
    w->started = true;
    r->w = w;
    return 0;
}

/* ---- the interface ---------------------------------------------------------------- */

void records_close(records *r)
{
    if (!r)
        return;
    if (r->w)
        writer_stop(r->w); /* writes the statuses still queued */
    r->w = NULL;
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
        rc = records_norm_text(in[i], text_max[i], &t.v[i], &t.owned[i], e);
    append_req q = {.row = {.time_ms = row->time_ms, .t = &t, .status = row->status}, .e = e};
    if (rc == 0)
        rc = writer_submit(r->w, &q, e);
    text_free(&t);
    if (rc == 0 && id)
        *id = q.row.id;
    return rc;
}

int records_audit_append_async(records *r, const audit_row *row, records_append_cb cb, void *ctx,
                               errdetail *e)
{
    if (!r || !row || !cb)
        return errdetail_set(e, CITRUS_EINVAL, "audit append: no store, row or callback");
    if (row->status < 0 || row->status > 999)
        return errdetail_set(e, CITRUS_EINVAL, "audit append: status %d out of range", row->status);
    append_req *q = calloc(1, sizeof(*q));
    if (!q)
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    const char *in[RECORDS_AUDIT_NTEXT] = {row->principal, row->roles,  row->auth_method,
                                           row->peer,      row->method, row->route,
                                           row->action,    row->target, row->correlation_id};
    int rc = 0;
    for (int i = 0; i < RECORDS_AUDIT_NTEXT && rc == 0; i++)
        rc = records_norm_text(in[i], text_max[i], &q->text.v[i], &q->text.owned[i], e);
    /* a borrowed text (no copy needed by norm_text) must outlive the call */
    for (int i = 0; i < RECORDS_AUDIT_NTEXT && rc == 0; i++)
        if (!q->text.owned[i] && q->text.v[i]) {
            q->text.owned[i] = strdup(q->text.v[i]);
            q->text.v[i] = q->text.owned[i];
            if (!q->text.owned[i])
                rc = errdetail_set(e, CITRUS_ENOMEM, "out of memory");
        }
    q->row = (records_append){.time_ms = row->time_ms, .t = &q->text, .status = row->status};
    q->e = &q->err;
    q->cb = cb;
    q->cb_ctx = ctx;
    if (rc == 0) {
        pthread_mutex_lock(&r->w->mu);
        rc = writer_queue(r->w, q, false, e);
        pthread_mutex_unlock(&r->w->mu);
    }
    if (rc != 0) {
        text_free(&q->text);
        free(q);
    }
    return rc;
}

int records_audit_finish(records *r, int64_t id, int status, errdetail *e)
{
    if (!r || id <= 0)
        return errdetail_set(e, CITRUS_EINVAL, "audit finish: no store or bad id");
    if (status < 1 || status > 999)
        return errdetail_set(e, CITRUS_EINVAL, "audit finish: status %d out of range", status);
    records_writer *w = r->w;
    int rc = 0;
    pthread_mutex_lock(&w->mu);
    if (!w->healthy || w->stopping)
        rc = errdetail_set(e, CITRUS_EAUDIT,
                           "records store unavailable (its last write failed): the status of "
                           "audit row %lld is not recorded",
                           (long long)id);
    else if (w->nfin >= RECORDS_FINISH_MAX)
        rc = errdetail_set(e, CITRUS_ENOMEM,
                           "audit finish: %d statuses already wait to be written; the status of "
                           "audit row %lld is not recorded",
                           RECORDS_FINISH_MAX, (long long)id);
    if (rc == 0) {
        w->fin[w->nfin++] = (records_finish){.id = id, .status = status};
        if (w->nfin == 1) {
            w->fin_due = clock_cond_deadline(FINISH_DELAY_MS);
            pthread_cond_signal(&w->work);
        } else if (w->nfin == RECORDS_FINISH_MAX / 2) {
            pthread_cond_signal(&w->work); /* filling up: written now, not at fin_due */
        }
    }
    pthread_mutex_unlock(&w->mu);
    return rc;
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
        int rc = records_norm_text(action, RECORDS_MAX_ACTION, &norm, &own, e);
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
        rc = records_norm_text(q->principal, RECORDS_MAX_PRINCIPAL, &norm, &f->owned[0], e);
        if (rc == 0)
            add_cond(f, ph, "principal", "=", false, 0, norm);
    }
    if (rc == 0 && q->target) {
        rc = records_norm_text(q->target, RECORDS_MAX_TARGET, &norm, &f->owned[1], e);
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
    int rc = writer_flush(r->w, e); /* the statuses finished before this query */
    if (rc != 0)
        return rc;
    audit_query all = {0};
    records_filter f;
    rc = filter_build(q ? q : &all, r->ops->placeholder, &f, e);
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
