/* provision/prov_postgres.c — the PostgreSQL provisioner: one database per
 * shard on a server reached through an admin DSN.
 *
 * Database name: db_prefix + shard_id with '-' mapped to '_' (so it needs
 * no quoting in a DSN; in SQL it is still quoted, with drv_quote_ident).
 * PostgreSQL silently truncates identifiers past 63 bytes, which could
 * make two shards share a database, so longer names are refused. Note that
 * ids "a-b" and "a_b" map to the same database.
 *
 * provision: reuse the database when pg_database has it, else CREATE
 * DATABASE; losing a race with a concurrent provision of the same id
 * (duplicate_database 42P04, or a unique violation on pg_database's name
 * index 23505) counts as success. The shard's DSN is the admin DSN with the database replaced,
 * in the admin DSN's own form: a URI keeps its text except the path (and
 * any dbname= query parameter); a conninfo string is rebuilt from libpq's
 * parse of it with dbname replaced. Host, port, user, password, sslmode
 * and the rest carry over.
 * deprovision: DROP DATABASE IF EXISTS ... WITH (FORCE) (PostgreSQL 13+),
 * which also ends sessions still connected to it. */
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"
#include "core/dsn.h"
#include "core/errdetail.h"
#include "obs/log.h"
#include "core/strbuf.h"
#include "dbconn/driver.h"
#include "provision/provisioner.h"

#define ADMIN_TIMEOUT_MS 10000
#define PG_IDENT_MAX 63
#define SQLSTATE_DUPLICATE_DATABASE "42P04"

typedef struct prov_pg {
    provisioner base;
    char *admin_dsn;
    char *prefix;
} prov_pg;

static bool prefix_ok(const char *s)
{
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_'))
            return false;
    return true;
}

/* ---- the shard's DSN ------------------------------------------------------- */

static size_t uri_scheme_len(const char *dsn)
{
    if (strncmp(dsn, "postgresql://", 13) == 0)
        return 13;
    if (strncmp(dsn, "postgres://", 11) == 0)
        return 11;
    return 0;
}

/* Appends the query string q (without '?') minus any dbname parameter. */
static void uri_query_without_dbname(strbuf *b, const char *q)
{
    bool first = true;
    while (*q) {
        size_t len = strcspn(q, "&");
        if (!(len >= 7 && strncmp(q, "dbname=", 7) == 0) && len > 0) {
            strbuf_str(b, first ? "?" : "&");
            strbuf_add(b, q, len);
            first = false;
        }
        q += len + (q[len] == '&');
    }
}

/* libpq's URI grammar: scheme, authority up to the first '/' or '?', the
 * database as the path, then the query. */
static char *uri_with_dbname(const char *dsn, size_t scheme_len, const char *dbname)
{
    strbuf b = STRBUF_INIT;
    size_t auth = strcspn(dsn + scheme_len, "/?");
    strbuf_add(&b, dsn, scheme_len + auth);
    strbuf_str(&b, "/");
    strbuf_str(&b, dbname);
    const char *q = strchr(dsn + scheme_len + auth, '?');
    if (q)
        uri_query_without_dbname(&b, q + 1);
    return strbuf_take(&b, NULL);
}

static void conninfo_quote(strbuf *b, const char *v)
{
    strbuf_str(b, "'");
    for (; *v; v++) {
        if (*v == '\'' || *v == '\\')
            strbuf_str(b, "\\");
        strbuf_add(b, v, 1);
    }
    strbuf_str(b, "'");
}

static char *conninfo_with_dbname(const char *dsn, const char *dbname)
{
    PQconninfoOption *opts = PQconninfoParse(dsn, NULL);
    if (!opts)
        return NULL;
    strbuf b = STRBUF_INIT;
    bool had_dbname = false;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        bool is_db = strcmp(o->keyword, "dbname") == 0;
        if (!o->val && !is_db)
            continue;
        had_dbname |= is_db;
        if (b.len)
            strbuf_str(&b, " ");
        strbuf_str(&b, o->keyword);
        strbuf_str(&b, "=");
        conninfo_quote(&b, is_db ? dbname : o->val);
    }
    PQconninfoFree(opts);
    if (!had_dbname) {
        strbuf_str(&b, b.len ? " dbname=" : "dbname=");
        conninfo_quote(&b, dbname);
    }
    return strbuf_take(&b, NULL);
}

static char *dsn_with_dbname(const char *dsn, const char *dbname)
{
    size_t scheme = uri_scheme_len(dsn);
    return scheme ? uri_with_dbname(dsn, scheme, dbname) : conninfo_with_dbname(dsn, dbname);
}

/* ---- the admin side ------------------------------------------------------- */

static int db_name(prov_pg *p, const char *id, char *out, size_t len, errdetail *e)
{
    int rc = prov_shard_id_check(id, e);
    if (rc)
        return rc;
    if (strlen(p->prefix) + strlen(id) > PG_IDENT_MAX || len <= PG_IDENT_MAX)
        return errdetail_set(e, CITRUS_EINVAL, "database name %s%s longer than %d bytes", p->prefix,
                             id, PG_IDENT_MAX);
    size_t np = strlen(p->prefix), ni = strlen(id);
    memcpy(out, p->prefix, np);
    memcpy(out + np, id, ni + 1);
    for (char *c = out; *c; c++)
        if (*c == '-')
            *c = '_';
    return 0;
}

static int admin_open(prov_pg *p, drv_conn **db, errdetail *e)
{
    errdetail scratch;
    if (!e)
        e = &scratch;
    int rc = drv_open(p->admin_dsn, &(drv_options){.timeout_ms = ADMIN_TIMEOUT_MS}, db, e);
    if (rc && rc != CITRUS_EINVAL)
        rc = e->code = CITRUS_EUNAVAILABLE;
    return rc;
}

/* CITRUS_EIO with "<what>: <message> (SQLSTATE xxxxx)" for a failed
 * statement, keeping its SQLSTATE. */
static int pg_fail(errdetail *e, const char *what, const errdetail *de)
{
    if (de->sqlstate[0])
        errdetail_set(e, CITRUS_EIO, "%s: %s (SQLSTATE %s)", what, de->message, de->sqlstate);
    else
        errdetail_set(e, CITRUS_EIO, "%s: %s", what, de->message);
    errdetail_sqlstate(e, de->sqlstate);
    return CITRUS_EIO;
}

/* 1 when the database exists, 0 when not, or a CITRUS_E* code. */
static int db_exists(drv_conn *c, const char *name, errdetail *e)
{
    value v = val_text(name, strlen(name));
    if (!val_ok(&v, VAL_TEXT))
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    result_set rs;
    rs_init(&rs);
    errdetail de;
    int rc =
        drv_exec(c, "SELECT 1 FROM pg_database WHERE datname = $1", &v, 1, 0, &rs, NULL, NULL, &de);
    if (rc) {
        rc = pg_fail(e, "looking up the database", &de);
    } else {
        rc = rs.nrows > 0;
    }
    rs_free(&rs);
    val_free(&v);
    return rc;
}

/* Runs "<head> <quoted name><tail>"; 0, 1 when it failed with sqlstate
 * ok_state, or CITRUS_EIO. */
static int exec_ident(drv_conn *c, const char *head, const char *name, const char *tail,
                      const char *ok_state, errdetail *e)
{
    char *ident = drv_quote_ident(c, name);
    char *sql = NULL;
    if (!ident || asprintf(&sql, "%s %s%s", head, ident, tail) < 0) {
        free(ident);
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    }
    free(ident);
    errdetail de;
    int rc = drv_run_script(c, sql, &de);
    free(sql);
    if (rc == 0)
        return 0;
    if (ok_state && strcmp(de.sqlstate, ok_state) == 0)
        return 1;
    return pg_fail(e, head, &de);
}

/* Two provisions racing: the loser gets duplicate_database, or (when the
 * winner commits while the loser inserts) a unique violation on
 * pg_database's name index. Either way, a failed CREATE DATABASE after
 * which the database exists is a success. */
static int ensure_database(drv_conn *c, const char *name, bool *created, errdetail *e)
{
    *created = false;
    int rc = db_exists(c, name, e);
    if (rc != 0)
        return rc == 1 ? 0 : rc;
    rc = exec_ident(c, "CREATE DATABASE", name, "", SQLSTATE_DUPLICATE_DATABASE, e);
    if (rc == CITRUS_EIO && db_exists(c, name, NULL) == 1) {
        errdetail_clear(e);
        rc = 1;
    }
    *created = rc == 0;
    return rc == 1 ? 0 : rc;
}

static int pg_provision(provisioner *base, const prov_request *req, prov_result *out, errdetail *e)
{
    prov_pg *p = (prov_pg *)base;
    memset(out, 0, sizeof(*out));
    char name[PG_IDENT_MAX + 1];
    drv_conn *db = NULL;
    bool created = false;
    int rc = db_name(p, req->shard_id, name, sizeof(name), e);
    if (rc == 0)
        rc = admin_open(p, &db, e);
    if (rc == 0)
        rc = ensure_database(db, name, &created, e);
    drv_close(db);
    if (rc)
        return rc;
    out->dsn = dsn_with_dbname(p->admin_dsn, name);
    if (!out->dsn)
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    log_info("provisioner",
             created ? "postgres shard database created" : "postgres shard database reused",
             json_pack("{s:s, s:s}", "shard_id", req->shard_id, "database", name));
    return 0;
}

static int pg_deprovision(provisioner *base, const char *shard_id, const char *dsn, errdetail *e)
{
    prov_pg *p = (prov_pg *)base;
    char name[PG_IDENT_MAX + 1];
    drv_conn *db = NULL;
    int rc = db_name(p, shard_id, name, sizeof(name), e);
    if (rc == 0)
        rc = admin_open(p, &db, e);
    if (rc == 0)
        rc = exec_ident(db, "DROP DATABASE IF EXISTS", name, " WITH (FORCE)", NULL, e);
    drv_close(db);
    if (rc == 0)
        log_info("provisioner", "postgres shard database dropped",
                 json_pack("{s:s, s:s}", "shard_id", shard_id, "database", name));
    return rc;
}

static json_t *pg_describe(provisioner *base)
{
    prov_pg *p = (prov_pg *)base;
    char *redacted = dsn_redact(p->admin_dsn);
    json_t *j = json_pack("{s:s, s:s, s:s}", "kind", "postgres", "admin_dsn",
                          redacted ? redacted : "***", "db_prefix", p->prefix);
    free(redacted);
    return j;
}

static void pg_free(provisioner *base)
{
    prov_pg *p = (prov_pg *)base;
    if (!p)
        return;
    free(p->admin_dsn);
    free(p->prefix);
    free(p);
}

/* NULL when admin_dsn is not a PostgreSQL DSN or db_prefix is not made of
 * [A-Za-z0-9_] (NULL prefix: none). */
provisioner *prov_postgres_new(const char *admin_dsn, const char *db_prefix)
{
    dsn_info info;
    if (!admin_dsn || dsn_parse(admin_dsn, &info, NULL) != 0 || info.kind != DSN_POSTGRES)
        return NULL;
    if (!db_prefix)
        db_prefix = "";
    if (!prefix_ok(db_prefix) || strlen(db_prefix) >= PG_IDENT_MAX)
        return NULL;
    prov_pg *p = calloc(1, sizeof(*p));
    if (!p || !(p->admin_dsn = strdup(admin_dsn)) || !(p->prefix = strdup(db_prefix))) {
        pg_free(p ? &p->base : NULL);
        return NULL;
    }
    p->base.kind = "postgres";
    p->base.provision = pg_provision;
    p->base.deprovision = pg_deprovision;
    p->base.describe = pg_describe;
    p->base.free = pg_free;
    return &p->base;
}
