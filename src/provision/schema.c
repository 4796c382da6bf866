/* provision/schema.c — applying a schema template (a directory of ordered SQL
 * migration files) to a shard's database, each file exactly once.
 *
 * Steps: list the .sql files of <templates_dir>/<template> (names sorted with strcmp;
 * hidden files skipped), connect, create citrus_migrations if absent, read
 * what is recorded there, then:
 *   1. every file already recorded must still have its recorded checksum
 *      (SHA-256 of its bytes, hex) — an edited file is CITRUS_ECONFLICT and
 *      nothing is run;
 *   2. every file not recorded runs, in order, in one transaction together
 *      with the INSERT of its row (drv_run_script_tx), so it is either
 *      applied and recorded or left no trace. The first failure stops the
 *      run: CITRUS_EIO, result->failed_file, e "<file>: <driver error>".
 *
 * Dialects: a file named *.pg.sql runs only on PostgreSQL shards, one named
 * *.sqlite.sql only on SQLite shards, any other *.sql on both (each is
 * recorded under its own name).
 *
 * Rules for migration files: at most 16 MiB, no NUL bytes, names made of
 * [A-Za-z0-9._-] (they are written into SQL as literals), and no
 * transaction control of their own — BEGIN, COMMIT or ROLLBACK in a file
 * would end our transaction early; drv_run_script_tx reports that as an
 * error, but what ran before it stays committed. (PostgreSQL statements
 * that refuse to run in a transaction, like CREATE INDEX CONCURRENTLY,
 * cannot be used for the same reason.)
 *
 * Two appliers racing on one shard: the loser fails on the row's primary
 * key (or on the DDL itself) and rolls back; calling again converges. */
#include "provision/schema.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "citrus/errors.h"
#include "obs/log.h"
#include "core/dsn.h"
#include "core/errdetail.h"
#include "dbconn/driver.h"
#include "sys/clock.h"
#include "wire/digest.h"

#define MAX_FILE_BYTES ((size_t)16 * 1024 * 1024)
#define TEMPLATE_NAME_MAX 64

static const char create_sql[] = "CREATE TABLE IF NOT EXISTS citrus_migrations ("
                                 "name TEXT PRIMARY KEY, checksum TEXT NOT NULL, "
                                 "applied_at TEXT NOT NULL)";
/* Names contain no spaces (checked), so "name checksum" splits cleanly. */
static const char applied_sql[] = "SELECT name || ' ' || checksum FROM citrus_migrations";

typedef struct mig_file {
    char name[256];
    char checksum[DIGEST_SHA256_HEX + 1];
    const char *recorded; /* checksum in citrus_migrations, or NULL */
} mig_file;

typedef struct mig_list {
    mig_file *v;
    size_t n, cap;
} mig_list;

static bool name_char_ok(char c, bool dot_ok)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || (dot_ok && c == '.');
}

int schema_template_valid(const char *name)
{
    if (!name)
        return 0;
    size_t n = strlen(name);
    if (n == 0 || n > TEMPLATE_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!name_char_ok(name[i], false))
            return 0;
    return 1;
}

/* ---- the template directory ------------------------------------------------ */

static bool ends_with(const char *s, size_t n, const char *tail)
{
    size_t t = strlen(tail);
    return n >= t && strcmp(s + n - t, tail) == 0;
}

/* A migration file for a database of this kind: *.sql, except that
 * *.pg.sql runs only on PostgreSQL and *.sqlite.sql only on SQLite. */
static bool is_sql_file(const char *dir, const char *name, dsn_kind kind)
{
    size_t n = strlen(name);
    if (name[0] == '.' || n < 5 || !ends_with(name, n, ".sql"))
        return false;
    if ((ends_with(name, n, ".pg.sql") && kind != DSN_POSTGRES) ||
        (ends_with(name, n, ".sqlite.sql") && kind != DSN_SQLITE))
        return false;
    char path[4096];
    struct stat st;
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path))
        return false;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int cmp_files(const void *a, const void *b)
{
    return strcmp(((const mig_file *)a)->name, ((const mig_file *)b)->name);
}

static int list_push(mig_list *l, const char *name)
{
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 16;
        mig_file *v = realloc(l->v, ncap * sizeof(*v));
        if (!v)
            return CITRUS_ENOMEM;
        l->v = v;
        l->cap = ncap;
    }
    mig_file *f = &l->v[l->n++];
    memset(f, 0, sizeof(*f));
    snprintf(f->name, sizeof(f->name), "%s", name);
    return 0;
}

static int check_file_name(const char *name, errdetail *e)
{
    if (strlen(name) >= sizeof(((mig_file *)0)->name))
        return errdetail_set(e, CITRUS_EINVAL, "%.64s...: migration file name too long", name);
    for (const char *p = name; *p; p++) {
        if (!name_char_ok(*p, true))
            return errdetail_set(e, CITRUS_EINVAL,
                                 "%s: migration file names may only use [A-Za-z0-9._-]", name);
    }
    return 0;
}

static int list_files(const char *dir, dsn_kind kind, mig_list *l, errdetail *e)
{
    DIR *d = opendir(dir);
    if (!d) {
        int en = errno;
        return errdetail_set(e, en == ENOENT || en == ENOTDIR ? CITRUS_ENOTFOUND : CITRUS_EIO,
                             "template directory %s: %s", dir, strerror(en));
    }
    int rc = 0;
    for (struct dirent *de; rc == 0 && (de = readdir(d)) != NULL;) {
        if (!is_sql_file(dir, de->d_name, kind))
            continue;
        rc = check_file_name(de->d_name, e);
        if (rc == 0 && list_push(l, de->d_name) != 0)
            rc = errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    }
    closedir(d);
    if (rc == 0 && l->n > 1)
        qsort(l->v, l->n, sizeof(*l->v), cmp_files);
    return rc;
}

/* Reads a whole migration file (NUL-terminated) into *out. */
static int read_file(const char *dir, const char *name, char **out, size_t *len, errdetail *e)
{
    char path[4096];
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path))
        return errdetail_set(e, CITRUS_EINVAL, "%s: path too long", name);
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f || fstat(fileno(f), &st) != 0) {
        errdetail_set(e, CITRUS_EIO, "%s: %s", name, strerror(errno));
        if (f)
            fclose(f);
        return CITRUS_EIO;
    }
    if ((uint64_t)st.st_size > MAX_FILE_BYTES) {
        fclose(f);
        return errdetail_set(e, CITRUS_EINVAL, "%s: larger than 16 MiB", name);
    }
    /* One byte more than its size: a file that grew meanwhile is noticed. */
    size_t want = (size_t)st.st_size + 1;
    char *buf = malloc(want + 1);
    size_t n = buf ? fread(buf, 1, want, f) : 0;
    int rc = 0;
    if (!buf)
        rc = errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    else if (ferror(f) || n == want)
        rc = errdetail_set(e, CITRUS_EIO, "%s: read error or changed while read", name);
    else if (memchr(buf, '\0', n))
        rc = errdetail_set(e, CITRUS_EINVAL, "%s: contains a NUL byte", name);
    fclose(f);
    if (rc) {
        free(buf);
        return rc;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

/* Reads f's text into *text (caller frees; NULL on failure) and sets
 * f->checksum from it. */
static int read_summed(const char *dir, mig_file *f, char **text, errdetail *e)
{
    size_t len = 0;
    *text = NULL;
    int rc = read_file(dir, f->name, text, &len, e);
    if (rc == 0 && (rc = digest_sha256_hex(*text, len, f->checksum)) != 0)
        errdetail_set(e, rc, "%s: SHA-256 failed", f->name);
    if (rc) {
        free(*text);
        *text = NULL;
    }
    return rc;
}

static int checksum_files(const char *dir, mig_list *l, errdetail *e)
{
    for (size_t i = 0; i < l->n; i++) {
        char *text;
        int rc = read_summed(dir, &l->v[i], &text, e);
        free(text);
        if (rc)
            return rc;
    }
    return 0;
}

/* The template's digest: SHA-256 over "name checksum\n" of every file, in
 * order. */
static int template_digest(const mig_list *l, char out[DIGEST_SHA256_HEX + 1], errdetail *e)
{
    size_t per = sizeof(l->v[0].name) + DIGEST_SHA256_HEX + 2, len = 0;
    char *buf = malloc(l->n * per + 1);
    if (!buf)
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    for (size_t i = 0; i < l->n; i++)
        len += (size_t)snprintf(buf + len, per + 1, "%s %s\n", l->v[i].name, l->v[i].checksum);
    int rc = digest_sha256_hex(buf, len, out);
    free(buf);
    return rc ? errdetail_set(e, rc, "SHA-256 failed") : 0;
}

/* The files of the template at dir for this kind of database, checksummed,
 * and their digest. */
static int plan(const char *dir, dsn_kind kind, mig_list *l, schema_result *result, errdetail *e)
{
    int rc = list_files(dir, kind, l, e);
    if (rc == 0)
        rc = checksum_files(dir, l, e);
    if (rc == 0)
        rc = template_digest(l, result->digest, e);
    return rc;
}

/* ---- the database side ----------------------------------------------------- */

/* Whether a driver error means the database did not answer rather than
 * refused what we sent. */
static bool is_down(int code)
{
    return code == CITRUS_EUNAVAILABLE || code == CITRUS_ETIMEOUT || code == CITRUS_EQUERYTIMEOUT;
}

/* Matches the recorded rows ("name checksum") to the files; rows stays
 * owned by the caller (recorded points into it). */
static void match_recorded(mig_list *l, char **rows, size_t nrows)
{
    for (size_t r = 0; r < nrows; r++) {
        char *sp = strrchr(rows[r], ' ');
        if (!sp)
            continue;
        *sp = '\0';
        for (size_t i = 0; i < l->n; i++)
            if (strcmp(l->v[i].name, rows[r]) == 0)
                l->v[i].recorded = sp + 1;
    }
}

static int check_conflicts(const mig_list *l, errdetail *e)
{
    for (size_t i = 0; i < l->n; i++) {
        const mig_file *f = &l->v[i];
        if (f->recorded && strcmp(f->recorded, f->checksum) != 0) {
            return errdetail_set(
                e, CITRUS_ECONFLICT,
                "%s: changed after it was applied (checksum %.12s..., recorded %.12s...)", f->name,
                f->checksum, f->recorded);
        }
    }
    return 0;
}

static void utc_now(char buf[32])
{
    time_t secs = (time_t)(clock_wall_ms(NULL) / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Runs one file with its row in one transaction. The file's text is read
 * again here: what is recorded is the checksum of what actually ran. */
static int apply_file(drv_conn *db, const char *dir, mig_file *f, bool *down, errdetail *e)
{
    char *text, now[32], *sql = NULL;
    int rc = read_summed(dir, f, &text, e);
    if (rc)
        return rc;
    utc_now(now);
    /* The newline ends a trailing "-- comment"; the ';' a last statement
     * written without one (an empty statement is harmless in both). */
    if (asprintf(&sql,
                 "%s\n;\nINSERT INTO citrus_migrations (name, checksum, applied_at) "
                 "VALUES ('%s', '%s', '%s');",
                 text, f->name, f->checksum, now) < 0)
        sql = NULL;
    free(text);
    if (!sql)
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    rc = drv_run_script_tx(db, sql, e);
    free(sql);
    if (rc) {
        *down = is_down(rc) || !drv_alive(db);
        errdetail_prefix(e, "%s", f->name);
        return e->code = CITRUS_EIO;
    }
    return 0;
}

static int read_recorded(drv_conn *db, char ***rows, size_t *nrows, bool *down, errdetail *e)
{
    int rc = drv_run_script(db, create_sql, e);
    if (rc == 0)
        rc = drv_query_column(db, applied_sql, rows, nrows, e);
    if (rc) {
        *down = is_down(rc) || !drv_alive(db);
        errdetail_prefix(e, "citrus_migrations");
        return e->code = CITRUS_EIO;
    }
    return 0;
}

static int apply_all(drv_conn *db, const char *dir, mig_list *l, schema_result *result,
                     errdetail *e)
{
    for (size_t i = 0; i < l->n; i++) {
        mig_file *f = &l->v[i];
        if (f->recorded) {
            result->skipped++;
            continue;
        }
        int rc = apply_file(db, dir, f, &result->unreachable, e);
        if (rc) {
            snprintf(result->failed_file, sizeof(result->failed_file), "%s", f->name);
            return rc;
        }
        result->applied++;
    }
    return 0;
}

/* Reads what db has recorded and runs what it lacks (the files planned). */
static int run_on(drv_conn *db, const char *dir, mig_list *l, schema_result *result, errdetail *e)
{
    char **rows = NULL;
    size_t nrows = 0;
    int rc = read_recorded(db, &rows, &nrows, &result->unreachable, e);
    if (rc == 0) {
        match_recorded(l, rows, nrows);
        rc = check_conflicts(l, e);
    }
    if (rc == 0)
        rc = apply_all(db, dir, l, result, e);
    drv_free_column(rows, nrows);
    return rc;
}

static void log_outcome(const char *template, const schema_result *result, int rc,
                        const errdetail *e)
{
    json_t *fields = json_pack("{s:s, s:I, s:I}", "template", template, "applied",
                               (json_int_t)result->applied, "skipped", (json_int_t)result->skipped);
    if (rc && fields)
        json_object_set_new(fields, "error", json_string(e->message));
    if (rc)
        log_warn("schema", "schema template not applied", fields);
    else
        log_info("schema", "schema template applied", fields);
}

/* The template's directory into dir; CITRUS_EINVAL for a bad name. */
static int template_dir(const char *templates_dir, const char *template, char dir[4096],
                        errdetail *e)
{
    if (!templates_dir || !schema_template_valid(template))
        return errdetail_set(e, CITRUS_EINVAL,
                             "invalid template name (want [A-Za-z0-9_-], 1..64 chars)");
    if ((size_t)snprintf(dir, 4096, "%s/%s", templates_dir, template) >= 4096)
        return errdetail_set(e, CITRUS_EINVAL, "template path too long");
    return 0;
}

int schema_apply(const char *dsn, const char *templates_dir, const char *template,
                 int64_t timeout_ms, schema_result *result, errdetail *e)
{
    memset(result, 0, sizeof(*result));
    errdetail scratch;
    if (!e)
        e = &scratch;
    char dir[4096];
    int rc = dsn ? template_dir(templates_dir, template, dir, e)
                 : errdetail_set(e, CITRUS_EINVAL, "no DSN");
    if (rc)
        return rc;
    mig_list l = {0};
    drv_conn *db = NULL;
    dsn_info info;
    rc = dsn_parse(dsn, &info, e);
    if (rc == 0)
        rc = plan(dir, info.kind, &l, result, e);
    if (rc == 0) {
        rc = drv_open(dsn, &(drv_options){.timeout_ms = timeout_ms, .sandbox = DRV_SANDBOX_SCHEMA},
                      &db, e);
        result->unreachable = rc != 0 && is_down(rc);
    }
    if (rc == 0)
        rc = run_on(db, dir, &l, result, e);
    log_outcome(template, result, rc, e);
    drv_close(db);
    free(l.v);
    return rc;
}

int schema_apply_conn(drv_conn *db, dsn_kind kind, const char *templates_dir, const char *template,
                      const char *known_digest, schema_result *result, errdetail *e)
{
    memset(result, 0, sizeof(*result));
    errdetail scratch;
    if (!e)
        e = &scratch;
    char dir[4096];
    int rc = template_dir(templates_dir, template, dir, e);
    if (rc)
        return rc;
    mig_list l = {0};
    rc = plan(dir, kind, &l, result, e);
    if (rc == 0 && known_digest && strcmp(known_digest, result->digest) == 0) {
        /* applied before, files unchanged: only check the database answers */
        result->known = true;
        result->skipped = l.n;
        rc = drv_ping(db, e);
        result->unreachable = rc != 0;
        free(l.v);
        return rc;
    }
    if (rc == 0) {
        rc = run_on(db, dir, &l, result, e);
        log_outcome(template, result, rc, e);
    }
    free(l.v);
    return rc;
}
