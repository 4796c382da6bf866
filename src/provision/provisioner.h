/* provision/provisioner.h — creating and removing shard databases (the
 * provisioner interface of docs/requirements.md, "Events and workers"): one interface, three
 * implementations.
 *
 *   sqlite:   a database file <dir>/<shard_id>.db; DSN sqlite:///<path>
 *   postgres: CREATE DATABASE <prefix><shard_id> through an admin DSN, and
 *             an application role <prefix><shard_id>_app that may only
 *             read and write rows; the shard's DSN is the admin DSN with
 *             that database, role and its password
 *   exec:     runs an executable with a JSON request on stdin
 *             {"action":"provision"|"deprovision","shard_id","template",
 *              "params",("dsn")} and reads {"dsn","replicas":[...]} from
 *             stdout; a non-zero exit (or a timeout) is a failure carrying
 *             stderr. This is how Kubernetes, Terraform or an agent plug in.
 *
 * provision must be idempotent per shard id (a restart resumes by calling
 * it again): an existing file or database is reused, and the exec program
 * is told so in the contract above. Calls block; they run on background
 * threads. Errors: CITRUS_EUNAVAILABLE (could not reach the backend),
 * CITRUS_EIO (it refused or failed), CITRUS_ETIMEOUT (exec took too long),
 * with the detail in e (may be NULL). */
#ifndef CITRUS_PROVISION_PROVISIONER_H
#define CITRUS_PROVISION_PROVISIONER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/errdetail.h"

typedef struct prov_request {
    const char *shard_id;
    const char *template_name; /* may be NULL */
    json_t *params;            /* may be NULL; borrowed */
} prov_request;

typedef struct prov_result {
    char *dsn;
    char **replicas;
    size_t nreplicas;
} prov_result;

void prov_result_clear(prov_result *r);

/* The shard ids provisioners accept: [A-Za-z0-9_-], 1..63 chars, starting
 * with a letter or digit (safe as a file name, a database name, an
 * argument). 0, or CITRUS_EINVAL with "invalid shard id" in e: what
 * provision/deprovision answer for anything else. */
#define PROV_SHARD_ID_MAX 63
int prov_shard_id_check(const char *id, errdetail *e);

typedef struct provisioner provisioner;
struct provisioner {
    const char *kind; /* "sqlite", "postgres", "exec" */
    int (*provision)(provisioner *p, const prov_request *req, prov_result *out, errdetail *e);
    int (*deprovision)(provisioner *p, const char *shard_id, const char *dsn, errdetail *e);
    /* {"kind":..., plus its settings with secrets redacted} */
    json_t *(*describe)(provisioner *p);
    /* The DSN to apply schema templates to shard_id's database with when
     * its own (dsn) may not create tables: postgres hands out an
     * application role and keeps the tables its admin's. malloc'd, or NULL
     * to use dsn; the member itself is NULL for sqlite and exec. */
    char *(*owner_dsn)(provisioner *p, const char *shard_id, const char *dsn);
    void (*free)(provisioner *p);
};

/* Constructors return NULL on invalid settings (or out of memory).
 * sqlite: dir is created on first provision; deprovision derives the file
 * from the shard id (the dsn argument is not trusted with a path).
 * postgres: admin_dsn must be a PostgreSQL DSN; db_prefix NULL or
 * [A-Za-z0-9_]*; prefix + id longer than 59 bytes (63 with the role's
 * "_app") is CITRUS_EINVAL.
 * exec: timeout_ms <= 0 means 60 s; env: provisioner.exec.env (NAME or
 * NAME=value, comma-separated; NULL: none), the program's environment
 * besides PATH, HOME and LANG. */
provisioner *prov_sqlite_new(const char *dir);
provisioner *prov_postgres_new(const char *admin_dsn, const char *db_prefix);
provisioner *prov_exec_new(const char *path, int64_t timeout_ms, const char *env);

#endif
