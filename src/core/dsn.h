/* core/dsn.h — shard connection strings (pure).
 *
 * Accepted forms:
 *   sqlite:///absolute/path.db   (also sqlite:relative/path.db)
 *   postgres://... and postgresql://...  (libpq URIs)
 *   host=... dbname=... (libpq key=value conninfo)
 * dsn_parse checks the shape only (no connection). */
#ifndef CITRUS_CORE_DSN_H
#define CITRUS_CORE_DSN_H

#include <stddef.h>

#include "core/errdetail.h"

typedef enum { DSN_SQLITE, DSN_POSTGRES } dsn_kind;

typedef struct dsn_info {
    dsn_kind kind;
    char path[4096]; /* DSN_SQLITE: the file path */
} dsn_info;

/* 0, or CITRUS_EINVAL with a message naming what is wrong. */
int dsn_parse(const char *dsn, dsn_info *out, errdetail *e);

/* The DSN with any password replaced by "***" (for logs); malloc'd. */
char *dsn_redact(const char *dsn);

/* Free text (a program's stderr, a driver's message, a log line) with
 * every DSN password and every value of a password/secret/token-like
 * key (key=value, key: value, "key":"value") replaced by "***";
 * malloc'd (NULL in, NULL out; NULL when out of memory). */
char *dsn_redact_text(const char *text);

/* Where a PostgreSQL DSN may point and what it may read (config
 * shards.tls_dir, shards.socket_dirs, shards.allowed_hosts). The strings
 * are borrowed; lists are comma-separated; NULL or "" is none. */
typedef struct dsn_policy {
    const char *tls_dir;       /* sslrootcert/sslcert/sslkey must be under it; none: refused */
    const char *socket_dirs;   /* Unix-socket directories allowed as host; none: refused */
    const char *allowed_hosts; /* CIDRs, names, .suffixes; none: any TCP host */
} dsn_policy;

/* dsn_parse, then the rules for PostgreSQL DSNs: only host, hostaddr,
 * port, dbname, user, password, sslmode, sslrootcert/sslcert/sslkey
 * (under tls_dir), application_name, connect_timeout,
 * target_session_attrs and keepalives* are accepted (passfile, service,
 * servicefile, options and the rest are refused, by name); a host must be
 * TCP (a Unix-socket directory only when it is one of socket_dirs; a DSN
 * naming no host, which libpq would take to a default socket, is
 * refused); with allowed_hosts, every host (hostaddr where given) must be
 * in one of its CIDRs or match one of its names (exactly, or a ".suffix").
 * p NULL: all none. 0, or CITRUS_EINVAL naming the option. */
int dsn_check(const char *dsn, const dsn_policy *p, errdetail *e);

/* Whether a policy list (dsn_policy.allowed_hosts) is well formed: each
 * item a CIDR (IPv4 or IPv6), an address, or a host name. */
int dsn_policy_hosts_check(const char *list, errdetail *e);

/* ---- the URI form, parts, and the database a DSN names ---------------- */

/* One option as libpq sees it: key and decoded value (malloc'd). */
typedef struct dsn_opt {
    char *key, *val;
} dsn_opt;

/* A DSN taken apart. PostgreSQL: every option (user, password, host,
 * port, dbname and the query/conninfo ones), decoded, each key once (the
 * last value given wins, as in libpq), in the order first given. */
typedef struct dsn_parts {
    dsn_kind kind;
    char path[4096]; /* DSN_SQLITE: the file path */
    dsn_opt *opts;
    size_t nopts;
} dsn_parts;

/* dsn_parse, then the parts; 0 or CITRUS_EINVAL/ENOMEM (a value holding a
 * NUL byte is refused). dsn_parts_clear frees (a zeroed one too). */
int dsn_split(const char *dsn, dsn_parts *out, errdetail *e);
void dsn_parts_clear(dsn_parts *p);
/* The value of key, or NULL. */
const char *dsn_parts_get(const dsn_parts *p, const char *key);

/* The form a driver takes verbatim (malloc'd; NULL with e when dsn does
 * not parse):
 *   postgresql://[user[:password]@][host[:port][,...]][/dbname][?k=v&...]
 * with every component percent-encoded (RFC 3986 unreserved characters
 * kept), IPv6 hosts in brackets; when a host is a Unix-socket directory
 * (or the ports do not pair with the hosts) the hosts and ports go in the
 * query (?host=%2Fvar%2Frun%2Fpostgresql), which libpq, node-pg, psycopg
 * and pgx all read; a password without a user goes in the query too.
 * SQLite DSNs come back as sqlite://<path> (sqlite:///abs when absolute).
 * Idempotent: dsn_to_uri(dsn_to_uri(x)) == dsn_to_uri(x). */
char *dsn_to_uri(const char *dsn, errdetail *e);

/* The databases a DSN names, one line each ('\n'-separated, malloc'd),
 * for "one database, one shard":
 *   postgresql://<host>:<port>/<dbname>  per host (hostaddr when given):
 *       host lowercased, brackets dropped; localhost, 127.0.0.1 and ::1
 *       all read "localhost"; a Unix-socket directory reads
 *       "unix:<dir>" (never equal to a TCP host); port 5432 when none;
 *       dbname defaults to the user, as in libpq
 *   sqlite:<path>  the path as given (the caller makes it canonical)
 * Holds no credentials. NULL with e when dsn does not parse. */
char *dsn_identity(const char *dsn, errdetail *e);

#endif
