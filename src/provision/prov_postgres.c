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
 * index 23505) counts as success.
 *
 * Least privilege (docs/security.md, "PostgreSQL least privilege and row
 * isolation"): the database and its tables belong to the admin role; each
 * shard gets an application role <database>_app (LOGIN, NOSUPERUSER,
 * NOCREATEDB, NOCREATEROLE, NOBYPASSRLS, NOREPLICATION, NOINHERIT) with a
 * fresh random password on every provision, CONNECT on its database only
 * (PUBLIC's CONNECT and TEMPORARY revoked), USAGE on schema public and DML
 * on its tables and sequences, now and (default privileges) for what the
 * owner creates later: it can read and write rows, not create, alter, drop
 * or truncate anything. The shard's DSN is the admin DSN with the
 * database, user and password replaced, in the admin DSN's own form: a URI
 * keeps its text except the user info, the path and any dbname=, user=,
 * password= query parameters; a conninfo string is rebuilt from libpq's
 * parse of it. Host, port, sslmode and the rest carry over. The admin DSN
 * itself leaves this file only as the owner DSN (pg_owner_dsn) that schema
 * templates are applied with; describe redacts it.
 * deprovision: DROP DATABASE IF EXISTS ... WITH (FORCE) (PostgreSQL 13+),
 * which also ends sessions still connected to it, then DROP ROLE IF EXISTS
 * of its application role. */
#include <libpq-fe.h>
#include <openssl/rand.h>
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
#define SQLSTATE_DUPLICATE_OBJECT "42710"
#define APP_SUFFIX "_app"
#define APP_SUFFIX_LEN 4
#define PASSWORD_BYTES 24

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

/* Whether the query parameter p (len bytes, "key=value") is one the
 * shard's DSN replaces: dbname, and user and password with a login. */
static bool param_replaced(const char *p, size_t len, bool login)
{
    static const char *const keys[] = {"dbname=", "user=", "password="};
    for (size_t i = 0; i < (login ? 3 : 1); i++) {
        size_t k = strlen(keys[i]);
        if (len >= k && strncmp(p, keys[i], k) == 0)
            return true;
    }
    return false;
}

/* Appends the query string q (without '?') minus the parameters replaced. */
static void uri_query_without(strbuf *b, const char *q, bool login)
{
    bool first = true;
    while (*q) {
        size_t len = strcspn(q, "&");
        if (!param_replaced(q, len, login) && len > 0) {
            strbuf_str(b, first ? "?" : "&");
            strbuf_add(b, q, len);
            first = false;
        }
        q += len + (q[len] == '&');
    }
}

/* A shard DSN's login: the application role and its password (made of
 * [A-Za-z0-9_], so they need no escaping in a URI). */
typedef struct login {
    const char *user, *password;
} login;

/* libpq's URI grammar: scheme, authority (user info up to its last '@',
 * then hosts) up to the first '/' or '?', the database as the path, then
 * the query. With lg, the user info is replaced by lg's. */
static char *uri_with(const char *dsn, size_t scheme_len, const char *dbname, const login *lg)
{
    strbuf b = STRBUF_INIT;
    const char *auth = dsn + scheme_len;
    size_t alen = strcspn(auth, "/?");
    strbuf_add(&b, dsn, scheme_len);
    if (lg) {
        const char *at = NULL;
        for (const char *c = auth; c < auth + alen; c++)
            if (*c == '@')
                at = c;
        strbuf_printf(&b, "%s:%s@", lg->user, lg->password);
        if (at) {
            alen -= (size_t)(at + 1 - auth);
            auth = at + 1;
        }
    }
    strbuf_add(&b, auth, alen);
    strbuf_str(&b, "/");
    strbuf_str(&b, dbname);
    const char *q = strchr(auth + alen, '?');
    if (q)
        uri_query_without(&b, q + 1, lg != NULL);
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

static void conninfo_pair(strbuf *b, const char *key, const char *v)
{
    if (b->len)
        strbuf_str(b, " ");
    strbuf_str(b, key);
    strbuf_str(b, "=");
    conninfo_quote(b, v);
}

/* libpq's parse of dsn, rebuilt with dbname (and lg's user and password)
 * in place of its own. */
static char *conninfo_with(const char *dsn, const char *dbname, const login *lg)
{
    PQconninfoOption *opts = PQconninfoParse(dsn, NULL);
    if (!opts)
        return NULL;
    strbuf b = STRBUF_INIT;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        bool replaced =
            strcmp(o->keyword, "dbname") == 0 ||
            (lg && (strcmp(o->keyword, "user") == 0 || strcmp(o->keyword, "password") == 0));
        if (o->val && !replaced)
            conninfo_pair(&b, o->keyword, o->val);
    }
    PQconninfoFree(opts);
    if (lg) {
        conninfo_pair(&b, "user", lg->user);
        conninfo_pair(&b, "password", lg->password);
    }
    conninfo_pair(&b, "dbname", dbname);
    return strbuf_take(&b, NULL);
}

/* dsn (the admin DSN) pointed at database dbname, logging in as lg (NULL:
 * as the admin). malloc'd; NULL when out of memory. */
static char *dsn_with(const char *dsn, const char *dbname, const login *lg)
{
    size_t scheme = uri_scheme_len(dsn);
    return scheme ? uri_with(dsn, scheme, dbname, lg) : conninfo_with(dsn, dbname, lg);
}

/* ---- the admin side ------------------------------------------------------- */

static int db_name(prov_pg *p, const char *id, char *out, size_t len, errdetail *e)
{
    int rc = prov_shard_id_check(id, e);
    if (rc)
        return rc;
    /* room for the application role's name, <database>_app */
    if (strlen(p->prefix) + strlen(id) > PG_IDENT_MAX - APP_SUFFIX_LEN || len <= PG_IDENT_MAX)
        return errdetail_set(e, CITRUS_EINVAL, "database name %s%s longer than %d bytes", p->prefix,
                             id, PG_IDENT_MAX - APP_SUFFIX_LEN);
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

/* The application role of database name: <name>_app (fits: db_name
 * keeps room for it). */
static void app_role(const char *name, char out[PG_IDENT_MAX + 1])
{
    size_t n = strnlen(name, PG_IDENT_MAX - APP_SUFFIX_LEN);
    memcpy(out, name, n);
    memcpy(out + n, APP_SUFFIX, APP_SUFFIX_LEN + 1);
}

/* A fresh password: PASSWORD_BYTES random bytes in hex. */
static int new_password(char out[2 * PASSWORD_BYTES + 1], errdetail *e)
{
    unsigned char b[PASSWORD_BYTES];
    if (RAND_bytes(b, sizeof(b)) != 1)
        return errdetail_set(e, CITRUS_EIO, "no random bytes for a password");
    for (size_t i = 0; i < sizeof(b); i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
    return 0;
}

#define APP_ROLE_ATTRS                                                                             \
    " LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOREPLICATION NOINHERIT PASSWORD '"

/* Creates the application role, or (it exists: an earlier or concurrent
 * provision) resets its attributes and password. The statement is not
 * logged by us: it holds the password. */
static int ensure_role(drv_conn *c, const char *role, const char *password, errdetail *e)
{
    char tail[sizeof(APP_ROLE_ATTRS) + 2 * PASSWORD_BYTES + 2];
    snprintf(tail, sizeof(tail), "%s%s'", APP_ROLE_ATTRS, password);
    int rc = exec_ident(c, "CREATE ROLE", role, tail, SQLSTATE_DUPLICATE_OBJECT, e);
    if (rc == CITRUS_EIO && strcmp(e->sqlstate, "23505") == 0) { /* lost a race */
        errdetail_clear(e);
        rc = 1;
    }
    if (rc == 1)
        rc = exec_ident(c, "ALTER ROLE", role, tail, NULL, e);
    return rc;
}

/* Concurrent provisions of one shard take turns changing its role and
 * grants (PostgreSQL fails one of two concurrent GRANTs on an object with
 * "tuple concurrently updated"): a session lock, released when the
 * admin session closes; grant_tables takes the same in the shard's
 * database. role is made of [A-Za-z0-9_]: safe inside quotes. */
static int lock_role(drv_conn *c, const char *role, errdetail *e)
{
    char sql[PG_IDENT_MAX + 96];
    snprintf(sql, sizeof(sql), "SELECT pg_advisory_lock(hashtext('citrus.provision.%s'))", role);
    errdetail de;
    return drv_run_script(c, sql, &de) ? pg_fail(e, "locking the role", &de) : 0;
}

/* In the admin session: only the application role may connect to the
 * database (PUBLIC may by default, which would let every shard's role in). */
static int grant_database(drv_conn *c, const char *name, const char *role, errdetail *e)
{
    char *db = drv_quote_ident(c, name), *r = drv_quote_ident(c, role), *sql = NULL;
    if (!db || !r ||
        asprintf(&sql, "REVOKE ALL ON DATABASE %s FROM PUBLIC; GRANT CONNECT ON DATABASE %s TO %s",
                 db, db, r) < 0)
        sql = NULL;
    free(db);
    if (!sql) {
        free(r);
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    }
    errdetail de;
    int rc = drv_run_script(c, sql, &de);
    free(sql);
    free(r);
    return rc ? pg_fail(e, "granting CONNECT", &de) : 0;
}

/* In the shard's database, as its owner: DML for the application role on
 * what exists and (default privileges) on what the owner creates later;
 * nobody else may create in schema public (PostgreSQL before 15 let
 * PUBLIC). */
static int grant_tables(const char *owner_dsn, const char *role, errdetail *e)
{
    drv_conn *c = NULL;
    int rc = drv_open(owner_dsn, &(drv_options){.timeout_ms = ADMIN_TIMEOUT_MS}, &c, e);
    if (rc)
        return rc == CITRUS_EINVAL ? rc : (e->code = CITRUS_EUNAVAILABLE);
    char *r = drv_quote_ident(c, role), *sql = NULL;
    if (!r || asprintf(&sql,
                       "SELECT pg_advisory_xact_lock(hashtext('citrus.provision.%s'));"
                       "REVOKE CREATE ON SCHEMA public FROM PUBLIC;"
                       "GRANT USAGE ON SCHEMA public TO %s;"
                       "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO %s;"
                       "GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO %s;"
                       "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
                       "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO %s;"
                       "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
                       "GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO %s",
                       role, r, r, r, r, r) < 0)
        sql = NULL;
    free(r);
    errdetail de;
    rc = sql ? drv_run_script(c, sql, &de) : errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    if (sql && rc)
        rc = pg_fail(e, "granting the application role its privileges", &de);
    free(sql);
    drv_close(c);
    return rc;
}

static int pg_provision(provisioner *base, const prov_request *req, prov_result *out, errdetail *e)
{
    prov_pg *p = (prov_pg *)base;
    memset(out, 0, sizeof(*out));
    char name[PG_IDENT_MAX + 1], role[PG_IDENT_MAX + 1], password[2 * PASSWORD_BYTES + 1];
    drv_conn *db = NULL;
    bool created = false;
    int rc = db_name(p, req->shard_id, name, sizeof(name), e);
    if (rc == 0) {
        app_role(name, role);
        rc = new_password(password, e);
    }
    if (rc == 0)
        rc = admin_open(p, &db, e);
    if (rc == 0)
        rc = ensure_database(db, name, &created, e);
    if (rc == 0)
        rc = lock_role(db, role, e);
    if (rc == 0)
        rc = ensure_role(db, role, password, e);
    if (rc == 0)
        rc = grant_database(db, name, role, e);
    drv_close(db);
    char *owner = rc == 0 ? dsn_with(p->admin_dsn, name, NULL) : NULL;
    if (rc == 0)
        rc =
            owner ? grant_tables(owner, role, e) : errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    free(owner);
    if (rc)
        return rc;
    out->dsn = dsn_with(p->admin_dsn, name, &(login){role, password});
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
    char role[PG_IDENT_MAX + 1];
    if (rc == 0) {
        app_role(name, role);
        rc = exec_ident(db, "DROP ROLE IF EXISTS", role, "", NULL, e);
    }
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

/* The owner DSN (the admin DSN pointed at the shard's database) when dsn
 * logs in as this provisioner's application role of shard_id's database;
 * NULL otherwise (a database registered, not provisioned here). */
static char *pg_owner_dsn(provisioner *base, const char *shard_id, const char *dsn)
{
    prov_pg *p = (prov_pg *)base;
    char name[PG_IDENT_MAX + 1], role[PG_IDENT_MAX + 1];
    if (!dsn || db_name(p, shard_id, name, sizeof(name), NULL) != 0)
        return NULL;
    app_role(name, role);
    PQconninfoOption *opts = PQconninfoParse(dsn, NULL);
    bool ours = false;
    for (PQconninfoOption *o = opts; o && o->keyword; o++)
        if (strcmp(o->keyword, "user") == 0)
            ours = o->val && strcmp(o->val, role) == 0;
    PQconninfoFree(opts);
    return ours ? dsn_with(p->admin_dsn, name, NULL) : NULL;
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
    p->base.owner_dsn = pg_owner_dsn;
    p->base.free = pg_free;
    return &p->base;
}
