/* dbconn/driver_sqlite.c — the SQLite backend of the shard driver: its
 * drv_ops table (see driver_ops.h; driver.c checks the arguments and
 * dispatches here).
 *
 * Opening: the file must exist unless the caller asks to create it (the
 * provisioner creates shard files; a typo in a DSN must not silently
 * create an empty database), it gets a
 * busy timeout of the open timeout so concurrent writers on one file wait
 * for each other, and WAL mode (readers do not block the writer). The
 * PRAGMA also reads the header, so a file that is not a database fails
 * the open rather than the first statement.
 *
 * Statements: exactly one per call — after it only whitespace, ";" and
 * comments may follow. Parameters must be written $1..$N (bound by name
 * with sqlite3_bind_parameter_index's numbering): "?", "?NNN", ":name",
 * "@name" and "$name" are refused so there is one syntax on every backend,
 * and the highest $N must equal nparams. Rows are typed by storage class.
 * When max_rows is reached a read-only statement stops there; any other
 * (INSERT ... RETURNING) is stepped to completion with the rest of its rows
 * dropped, so a limit never cuts a write short.
 *
 * changes: sqlite3_changes64 only when the statement changed something
 * (total_changes moved): sqlite3_changes alone keeps the count of the last
 * INSERT/UPDATE/DELETE, which would be wrong for a SELECT or DDL after one.
 *
 * Scripts (drv_run_script) run one statement after the other and stop at
 * the first error.
 *
 * The sandbox (drv_sandbox in driver.h): an authorizer, set after the
 * open's own PRAGMAs, checks every statement when it is prepared and
 * remembers what it refused, so the error names it. VACUUM calls no
 * authorizer: it is refused by its first keyword before it is prepared
 * (and SQLITE_LIMIT_ATTACHED 0 stops the ATTACH that VACUUM INTO makes
 * inside).
 *
 * A statement timeout is a deadline on the connection's clock, checked by
 * a progress handler every 1000 virtual machine steps; the same handler
 * runs the cancel check (drv_set_cancel_check) when it is due.
 *
 * Errors: the caller's fault (syntax, constraint, ...) is CITRUS_EINVAL
 * with SQLite's message. SQLITE_BUSY (the lock stayed taken past the busy
 * timeout) and SQLITE_FULL are CITRUS_EUNAVAILABLE with the connection
 * still usable; I/O errors, corruption, a file that is no longer a
 * database or was moved are CITRUS_EUNAVAILABLE and mark the connection
 * broken, so a pool reopens it. */
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "citrus/errors.h"
#include "core/sqlword.h"
#include "dbconn/driver.h"
#include "dbconn/driver_ops.h"
#include "dbconn/stmt_cache.h"

#define MAX_PARAM_NUMBER 65535L

static sqlite3 *lite(drv_conn *c)
{
    return (sqlite3 *)c->handle;
}

/* PRAGMAs that only read, with or without an argument naming what to
 * read about (PRAGMA table_info(t)). */
static const char *const PRAGMA_READ_ARG[] = {
    "table_info", "table_xinfo", "table_list",       "index_list",
    "index_info", "index_xinfo", "foreign_key_list", "foreign_key_check",
};
/* PRAGMAs that read a setting without an argument and set it with one:
 * only read (the schema sandbox may set the first two). */
static const char *const PRAGMA_READ_ONLY[] = {
    "user_version", "application_id", "schema_version", "data_version", "foreign_keys",
    "page_count",   "page_size",      "freelist_count", "encoding",     "journal_mode",
};

static bool listed(const char *name, const char *const *list, size_t n)
{
    for (size_t i = 0; name && i < n; i++)
        if (strcasecmp(name, list[i]) == 0)
            return true;
    return false;
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static bool pragma_allowed(bool schema, const char *name, const char *arg)
{
    if (listed(name, PRAGMA_READ_ARG, COUNT(PRAGMA_READ_ARG)))
        return true;
    if (!arg)
        return listed(name, PRAGMA_READ_ONLY, COUNT(PRAGMA_READ_ONLY));
    return schema && listed(name, PRAGMA_READ_ONLY, 2);
}

/* What the query sandbox refuses beyond what both refuse (see
 * drv_sandbox): its name, or NULL. */
static const char *query_refuses(int action)
{
    switch (action) {
    case SQLITE_DROP_TABLE:
    case SQLITE_DROP_TEMP_TABLE:
        return "DROP TABLE";
    case SQLITE_DROP_INDEX:
    case SQLITE_DROP_TEMP_INDEX:
        return "DROP INDEX";
    case SQLITE_DROP_VIEW:
    case SQLITE_DROP_TEMP_VIEW:
        return "DROP VIEW";
    case SQLITE_DROP_TRIGGER:
    case SQLITE_DROP_TEMP_TRIGGER:
        return "DROP TRIGGER";
    case SQLITE_DROP_VTABLE:
        return "DROP of a virtual table";
    case SQLITE_ALTER_TABLE:
        return "ALTER TABLE";
    case SQLITE_CREATE_TRIGGER:
    case SQLITE_CREATE_TEMP_TRIGGER:
        return "CREATE TRIGGER";
    case SQLITE_CREATE_VTABLE:
        return "CREATE VIRTUAL TABLE";
    case SQLITE_CREATE_TEMP_TABLE:
    case SQLITE_CREATE_TEMP_INDEX:
    case SQLITE_CREATE_TEMP_VIEW:
        return "a TEMP object";
    default:
        return NULL;
    }
}

/* The authorizer (see the top of the file); ctx: the drv_conn. */
static int authorize(void *ctx, int action, const char *a1, const char *a2, const char *db,
                     const char *trigger)
{
    (void)db;
    (void)trigger;
    drv_conn *c = ctx;
    bool schema = c->schema_sandbox;
    const char *what = NULL;
    switch (action) {
    case SQLITE_ATTACH:
        what = "ATTACH";
        break;
    case SQLITE_DETACH:
        what = "DETACH";
        break;
    case SQLITE_FUNCTION: /* a2: the function's name */
        if (a2 && strcasecmp(a2, "load_extension") == 0)
            what = "load_extension()";
        break;
    case SQLITE_PRAGMA: /* a1: its name, a2: its argument or NULL */
        if (!pragma_allowed(schema, a1, a2)) {
            snprintf(c->refused, sizeof(c->refused), "PRAGMA %.40s%s", a1 ? a1 : "",
                     a2 ? " with a value" : "");
            return SQLITE_DENY;
        }
        break;
    default:
        if (!schema)
            what = query_refuses(action);
        break;
    }
    if (!what)
        return SQLITE_OK;
    snprintf(c->refused, sizeof(c->refused), "%s", what);
    return SQLITE_DENY;
}

/* The error of a statement the sandbox refused. */
static int refused(drv_conn *c, errdetail *e)
{
    return errdetail_set(e, CITRUS_ESTMTDENIED, "%s is not allowed on a shard",
                         c->refused[0] ? c->refused : "this statement");
}

/* VACUUM (and VACUUM INTO): the authorizer never sees it. */
static bool is_vacuum(const char *sql)
{
    static const char *const vacuum[] = {"vacuum"};
    return sql_first_word_in(sql, vacuum, 1);
}

static int refuse_vacuum(drv_conn *c, errdetail *e)
{
    snprintf(c->refused, sizeof(c->refused), "VACUUM");
    return refused(c, e);
}

/* Our error code for an SQLite result code (marks c broken when the
 * connection should not be reused). */
static int map_rc(drv_conn *c, int rc)
{
    switch (rc & 0xff) {
    case SQLITE_NOMEM:
        return CITRUS_ENOMEM;
    case SQLITE_BUSY:
    case SQLITE_FULL:
        return CITRUS_EUNAVAILABLE;
    case SQLITE_READONLY:
        if (rc == SQLITE_READONLY_DBMOVED)
            c->broken = true;
        return CITRUS_EUNAVAILABLE;
    case SQLITE_IOERR:
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
    case SQLITE_CANTOPEN:
        c->broken = true;
        return CITRUS_EUNAVAILABLE;
    default:
        return CITRUS_EINVAL;
    }
}

static int fail_db(drv_conn *c, int rc, errdetail *e)
{
    /* the authorizer's refusal: SQLITE_AUTH, or SQLITE_ERROR for a function */
    if ((rc & 0xff) == SQLITE_AUTH || c->refused[0])
        return refused(c, e);
    return errdetail_set(e, map_rc(c, rc), "%s", sqlite3_errmsg(lite(c)));
}

/* The sandbox's settings (see drv_sandbox), the authorizer last. */
static int sandbox(drv_conn *c)
{
    sqlite3 *db = lite(c);
    int rc = sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, (int *)NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, (int *)NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "PRAGMA foreign_keys=ON", NULL, NULL, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_limit(db, SQLITE_LIMIT_ATTACHED, 0);
        rc = sqlite3_set_authorizer(db, authorize, c);
    }
    return rc;
}

static int lite_open(drv_conn *c, const char *dsn, const dsn_info *info, bool create, errdetail *e)
{
    sqlite3 *db = NULL;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
    int rc = sqlite3_open_v2(info->path, &db, flags, NULL);
    c->handle = db;
    if (rc != SQLITE_OK)
        return errdetail_set(e, rc == SQLITE_NOMEM ? CITRUS_ENOMEM : CITRUS_EUNAVAILABLE,
                             "sqlite open %s: %s", info->path,
                             db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, c->timeout_ms > INT_MAX ? INT_MAX : (int)c->timeout_ms);
    rc = sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sandbox(c);
    if (rc != SQLITE_OK)
        return errdetail_set(e, rc == SQLITE_NOMEM ? CITRUS_ENOMEM : CITRUS_EUNAVAILABLE,
                             "sqlite %s: %s", info->path, sqlite3_errmsg(db));
    return 0;
}

static void lite_finalize(void *stmt)
{
    sqlite3_finalize(stmt);
}

static void lite_close(drv_conn *c)
{
    sqlite3_close_v2(lite(c)); /* NULL: a no-op */
    c->handle = NULL;
}

static drv_tx_state lite_tx_state(drv_conn *c)
{
    return sqlite3_get_autocommit(lite(c)) ? DRV_TX_IDLE : DRV_TX_ACTIVE;
}

/* Whether s holds nothing but whitespace, ";" and SQL comments (SQLite
 * accepts an unterminated trailing comment). */
static bool only_filler(const char *s)
{
    s = sql_skip(s, ";");
    return *s == '\0' || (s[0] == '/' && s[1] == '*');
}

/* The N of a "$N" parameter name, or 0 when the name is not of that form. */
static long param_number(const char *name)
{
    if (!name || name[0] != '$' || name[1] < '1' || name[1] > '9')
        return 0;
    long n = 0;
    for (const char *p = name + 1; *p; p++) {
        if (*p < '0' || *p > '9')
            return 0;
        n = n * 10 + (*p - '0');
        if (n > MAX_PARAM_NUMBER)
            return 0;
    }
    return n;
}

static int bind_params(sqlite3_stmt *st, const value *params, size_t nparams, errdetail *e)
{
    int count = sqlite3_bind_parameter_count(st);
    long highest = 0;
    for (int i = 1; i <= count; i++) {
        const char *name = sqlite3_bind_parameter_name(st, i);
        long n = param_number(name);
        if (n == 0)
            return errdetail_set(e, CITRUS_EINVAL,
                                 "parameters are written $1, $2, ...: \"%s\" is not supported",
                                 name ? name : "?");
        if (n > highest)
            highest = n;
    }
    if ((size_t)highest != nparams) {
        if (highest == 0)
            return errdetail_set(e, CITRUS_EINVAL, "statement has no parameters, got %zu", nparams);
        return errdetail_set(e, CITRUS_EINVAL, "statement has %ld parameters ($1..$%ld), got %zu",
                             highest, highest, nparams);
    }
    for (int i = 1; i <= count; i++) {
        long n = param_number(sqlite3_bind_parameter_name(st, i));
        const value *v = &params[n - 1];
        int rc;
        switch (v->type) {
        case VAL_INT:
            rc = sqlite3_bind_int64(st, i, v->u.i);
            break;
        case VAL_REAL:
            rc = sqlite3_bind_double(st, i, v->u.d);
            break;
        case VAL_BOOL:
            rc = sqlite3_bind_int(st, i, v->u.b ? 1 : 0);
            break;
        case VAL_TEXT:
        case VAL_NUMERIC:
            /* the values outlive the statement: no copy */
            rc = sqlite3_bind_text64(st, i, v->u.s.p ? v->u.s.p : "", v->u.s.len, SQLITE_STATIC,
                                     SQLITE_UTF8);
            break;
        case VAL_BLOB:
            rc = sqlite3_bind_blob64(st, i, v->u.s.p ? v->u.s.p : "", v->u.s.len, SQLITE_STATIC);
            break;
        default:
            rc = sqlite3_bind_null(st, i);
            break;
        }
        if (rc != SQLITE_OK)
            return errdetail_set(e, rc == SQLITE_NOMEM ? CITRUS_ENOMEM : CITRUS_EINVAL,
                                 "parameter $%ld: %s", n, sqlite3_errstr(rc));
    }
    return 0;
}

static int set_columns(sqlite3_stmt *st, int ncols, result_set *out)
{
    if (ncols <= 0)
        return 0;
    const char **names = calloc((size_t)ncols, sizeof(*names));
    if (!names)
        return CITRUS_ENOMEM;
    for (int i = 0; i < ncols; i++) {
        names[i] = sqlite3_column_name(st, i);
        if (!names[i]) {
            free(names);
            return CITRUS_ENOMEM;
        }
    }
    int rc = rs_set_columns(out, names, (size_t)ncols);
    free(names);
    return rc;
}

/* The current row into out (ownership passes to out). */
static int append_row(sqlite3_stmt *st, int ncols, value *row, result_set *out)
{
    for (int i = 0; i < ncols; i++) {
        switch (sqlite3_column_type(st, i)) {
        case SQLITE_INTEGER:
            row[i] = val_int(sqlite3_column_int64(st, i));
            break;
        case SQLITE_FLOAT:
            row[i] = val_real(sqlite3_column_double(st, i));
            break;
        case SQLITE_TEXT: {
            const char *p = (const char *)sqlite3_column_text(st, i);
            size_t len = (size_t)sqlite3_column_bytes(st, i);
            row[i] = p ? val_text(p, len) : val_null();
            if (!val_ok(&row[i], VAL_TEXT))
                goto nomem;
            break;
        }
        case SQLITE_BLOB: {
            const void *p = sqlite3_column_blob(st, i);
            size_t len = (size_t)sqlite3_column_bytes(st, i);
            row[i] = val_blob(p ? p : "", p ? len : 0);
            if (!val_ok(&row[i], VAL_BLOB))
                goto nomem;
            break;
        }
        default:
            row[i] = val_null();
            break;
        }
    }
    if (rs_append_row(out, row) == 0)
        return 0;
nomem:
    for (int i = 0; i < ncols; i++)
        val_free(&row[i]);
    return CITRUS_ENOMEM;
}

/* The statement for sql: the kept one, or prepared now (and kept when
 * the connection keeps statements); *kept says which. 0, or the error. */
static int stmt_for(drv_conn *c, const char *sql, sqlite3_stmt **out, bool *kept, errdetail *e)
{
    *out = NULL;
    c->refused[0] = '\0'; /* what a step re-preparing st may refuse, too */
    const stmt_ref *known = c->stmts ? stmt_cache_find(c->stmts, sql, NULL, 0) : NULL;
    if ((*kept = known != NULL)) {
        *out = known->handle;
        return 0;
    }
    if (is_vacuum(sql))
        return refuse_vacuum(c, e);
    sqlite3_stmt *st = NULL;
    const char *tail = NULL;
    int rc = sqlite3_prepare_v2(lite(c), sql, -1, &st, &tail);
    if (rc != SQLITE_OK)
        return fail_db(c, rc, e);
    if (!st)
        return errdetail_set(e, CITRUS_EINVAL, "empty statement");
    if (tail && !only_filler(tail)) {
        sqlite3_finalize(st);
        return errdetail_set(e, CITRUS_EINVAL, "only one statement is allowed per call");
    }
    const stmt_ref *added;
    stmt_ref evicted;
    if (c->stmts && stmt_cache_add(c->stmts, sql, NULL, 0, st, &added, &evicted) == 0) {
        sqlite3_finalize(evicted.handle); /* NULL when none */
        *kept = true;
    } /* else out of memory: run it once all the same */
    *out = st;
    return 0;
}

/* When the running statement (or script) is interrupted: at its deadline
 * (drv_set_statement_timeout), or when the cancel check, due every
 * DRV_CANCEL_CHECK_MS, says its caller is gone (abandoned). */
typedef struct lite_deadline {
    drv_conn *c;
    int64_t at;         /* 0 = never */
    int64_t next_check; /* 0 = no check */
    bool abandoned;
    bool busy_bounded; /* the busy timeout was cut to drv_set_deadline's */
} lite_deadline;

static bool deadline_passed(const lite_deadline *d)
{
    return d->at && clock_mono_ms(d->c->clock) >= d->at;
}

/* SQLite's progress handler while a statement has a deadline or a cancel
 * check: non-zero interrupts it. */
static int past_deadline(void *ctx)
{
    lite_deadline *d = ctx;
    if (deadline_passed(d))
        return 1;
    if (!d->next_check)
        return 0;
    int64_t now = clock_mono_ms(d->c->clock);
    if (now < d->next_check)
        return 0;
    d->next_check = now + DRV_CANCEL_CHECK_MS;
    d->abandoned = d->c->cancel_fn(d->c->cancel_ctx);
    return d->abandoned;
}

/* Sets *d for a statement starting now, and the progress handler checking
 * it when c has a statement timeout or a cancel check. */
static void deadline_start(drv_conn *c, lite_deadline *d)
{
    *d = (lite_deadline){.c = c};
    if (!c->stmt_timeout_ms && !c->cancel_fn && !c->deadline_ms)
        return;
    int64_t now = clock_mono_ms(c->clock);
    d->at = c->stmt_timeout_ms ? now + c->stmt_timeout_ms : 0;
    if (c->deadline_ms && (!d->at || c->deadline_ms < d->at))
        d->at = c->deadline_ms;
    d->next_check = c->cancel_fn ? now + DRV_CANCEL_CHECK_MS : 0;
    if (c->deadline_ms && c->deadline_ms - now < c->timeout_ms) {
        /* a lock wait ends at the deadline too */
        int64_t left = c->deadline_ms - now;
        sqlite3_busy_timeout(lite(c), left > 0 ? (int)left : 0);
        d->busy_bounded = true;
    }
    sqlite3_progress_handler(lite(c), 1000, past_deadline, d);
}

static void deadline_end(drv_conn *c, const lite_deadline *d)
{
    if (d->at || d->next_check)
        sqlite3_progress_handler(lite(c), 0, NULL, NULL);
    if (d->busy_bounded)
        sqlite3_busy_timeout(lite(c), c->timeout_ms > INT_MAX ? INT_MAX : (int)c->timeout_ms);
}

/* The error of a step that failed: a timeout when the deadline
 * interrupted it, CITRUS_ECLOSED when its caller went away. */
static int step_failed(drv_conn *c, const lite_deadline *d, int step, errdetail *e)
{
    if ((step & 0xff) == SQLITE_INTERRUPT && d->abandoned)
        return errdetail_set(e, CITRUS_ECLOSED,
                             "the client went away: the statement was cancelled");
    if ((step & 0xff) == SQLITE_INTERRUPT && deadline_passed(d))
        return d->at == c->deadline_ms
                   ? errdetail_set(e, CITRUS_EQUERYTIMEOUT,
                                   "the statement ran past its deadline and was cancelled")
                   : errdetail_set(e, CITRUS_EQUERYTIMEOUT,
                                   "the statement ran past its timeout of %lld ms and was "
                                   "cancelled",
                                   (long long)c->stmt_timeout_ms);
    return fail_db(c, step, e);
}

static int lite_exec(drv_conn *c, const char *sql, const value *params, size_t nparams,
                     size_t max_rows, result_set *out, bool *truncated, int64_t *changes,
                     errdetail *e)
{
    sqlite3 *db = lite(c);
    sqlite3_stmt *st;
    bool kept;
    int rc = stmt_for(c, sql, &st, &kept, e);
    if (rc)
        return rc;
    lite_deadline d;
    deadline_start(c, &d);
    value *row = NULL;
    sqlite3_int64 before = sqlite3_total_changes64(db);
    if ((rc = bind_params(st, params, nparams, e)) != 0)
        goto out;
    /* The columns are read after the first step: a kept statement whose
     * schema changed is prepared again by that step, with the new ones. */
    int step = sqlite3_step(st);
    int ncols = sqlite3_column_count(st);
    bool readonly = sqlite3_stmt_readonly(st);
    if ((rc = set_columns(st, ncols, out)) != 0) {
        errdetail_set(e, rc, "out of memory");
        goto out;
    }
    if (ncols > 0 && !(row = calloc((size_t)ncols, sizeof(*row)))) {
        rc = errdetail_set(e, CITRUS_ENOMEM, "out of memory");
        goto out;
    }
    for (; step == SQLITE_ROW; step = sqlite3_step(st)) {
        if (*truncated)
            continue; /* a write past the limit: finish it, drop its rows */
        if (max_rows && out->nrows >= max_rows) {
            *truncated = true;
            if (readonly)
                break;
            continue;
        }
        if ((rc = append_row(st, ncols, row, out)) != 0) {
            errdetail_set(e, rc, "out of memory");
            goto out;
        }
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE) {
        rc = step_failed(c, &d, step, e);
        goto out;
    }
    if (sqlite3_total_changes64(db) != before)
        *changes = sqlite3_changes64(db);
    rc = 0;
out:
    free(row);
    deadline_end(c, &d);
    if (kept) { /* ends its read (a statement left mid-way holds a snapshot) */
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    } else {
        sqlite3_finalize(st);
    }
    return rc;
}

/* One statement after the other, as sqlite3_exec would, so each can be
 * checked for VACUUM first. */
static int lite_script(drv_conn *c, const char *sql, errdetail *e)
{
    lite_deadline d;
    deadline_start(c, &d);
    int rc = 0;
    for (const char *p = sql; rc == 0 && !only_filler(p);) {
        sqlite3_stmt *st = NULL;
        const char *tail = NULL;
        if (is_vacuum(p)) {
            rc = refuse_vacuum(c, e);
            break;
        }
        c->refused[0] = '\0';
        int step = sqlite3_prepare_v2(lite(c), p, -1, &st, &tail);
        if (step == SQLITE_OK && !st)
            break; /* nothing but comments left */
        if (step == SQLITE_OK)
            do
                step = sqlite3_step(st);
            while (step == SQLITE_ROW);
        if (step != SQLITE_DONE)
            rc = step_failed(c, &d, step, e);
        sqlite3_finalize(st);
        p = tail;
    }
    deadline_end(c, &d);
    return rc;
}

static bool lite_alive(drv_conn *c)
{
    return true; /* a file: what breaks shows as an error, and then c->broken */
}

static int lite_ping(drv_conn *c, errdetail *e)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(lite(c), "SELECT count(*) FROM sqlite_master", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            rc = SQLITE_OK;
    }
    if (rc != SQLITE_OK) {
        map_rc(c, rc); /* marks c broken when it is */
        errdetail_set(e, CITRUS_EUNAVAILABLE, "%s", sqlite3_errmsg(lite(c)));
    }
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? 0 : CITRUS_EUNAVAILABLE;
}

static int lite_replica_lag_ms(drv_conn *c, bool *replica, int64_t *lag_ms, errdetail *e)
{
    *replica = true; /* see drv_replica_lag_ms */
    return 0;
}

/* "name" with every " doubled. */
static char *lite_quote_ident(drv_conn *c, const char *name)
{
    size_t n = strlen(name);
    char *q = malloc(2 * n + 3), *o = q;
    if (!q)
        return NULL;
    *o++ = '"';
    for (const char *p = name; *p; p++) {
        if (*p == '"')
            *o++ = '"';
        *o++ = *p;
    }
    *o++ = '"';
    *o = '\0';
    return q;
}

/* BEGIN IMMEDIATE takes the write lock up front (waiting up to the busy
 * timeout) instead of failing halfway through when another writer holds
 * it. */
const drv_ops drv_sqlite_ops = {
    .kind = DSN_SQLITE,
    .begin_sql = "BEGIN IMMEDIATE",
    .release = lite_finalize,
    .open = lite_open,
    .close = lite_close,
    .exec = lite_exec,
    .script = lite_script,
    .tx_state = lite_tx_state,
    .alive = lite_alive,
    .ping = lite_ping,
    .replica_lag_ms = lite_replica_lag_ms,
    .quote_ident = lite_quote_ident,
};
