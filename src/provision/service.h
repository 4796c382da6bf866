/* provision/service.h — the shard manager: what the API and the provisioning
 * worker do with shards, on top of the registry (catalog state), the
 * provisioner (creating databases), dbconn/driver.h (reaching them) and schema
 * templates.
 *
 * Registering an existing database: its DSN is checked by connecting
 * (unless verify is off), the template (if any) applied, and the shard is
 * created active with its tokens: pending -> initializing -> active in one
 * catalog write. Provisioning: the shard is created in provisioning with
 * its spec beside it (202), and the worker (on the controller leader, its
 * writes fenced) calls the provisioner, then initializes it (template,
 * reachability) and activates it; any failure marks it failed with the
 * error. A restart resumes shards still in provisioning or initializing
 * (provisioners are idempotent per shard id), so a shard is never active
 * without being initialized. */
#ifndef CITRUS_PROVISION_SERVICE_H
#define CITRUS_PROVISION_SERVICE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "controller/session.h"
#include "provision/provisioner.h"
#include "provision/schema.h"
#include "registry/registry.h"
#include "registry/tenants.h"
#include "core/errdetail.h"
#include "sys/clock.h"
#include "sys/deadline.h"

typedef struct shard_service {
    registry *reg;                /* owned */
    provisioner *prov;            /* owned; NULL: provisioning is off */
    char templates_dir[1024];     /* "" when there are no templates */
    bool allow_untemplated_types; /* shards.allow_untemplated_types */
    int64_t db_timeout_ms;        /* connecting to shard databases */
    char node_id[64];
    const sysclock *clock; /* borrowed; the times recorded in shard histories */
    /* pooled control-plane connections per shard, and the templates known
     * applied on each (svc_ensure_template); NULL when out of memory (then
     * each registration connects anew) */
    struct ctlconns *conns;
    /* the worker */
    session *sess; /* borrowed; leadership and fencing token */
    pthread_t th;
    bool running;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop, kick; /* guarded by mu */
} shard_service;

/* What a new shard is to be: an existing database to register (dsn set)
 * or one to provision (provision set). The calls below borrow it; whoever
 * filled it frees it (api/shardbody.c's parser has its own clear). */
typedef struct shard_spec {
    char id[SHARD_ID_MAX + 1]; /* "" when the service is to pick one */
    char *dsn;                 /* NULL when provisioning */
    char **replicas;
    size_t nreplicas;
    char *zone;    /* may be NULL */
    double weight; /* > 0 */
    shard_tag *tags;
    size_t ntags;
    bool provision;
    char *template_name; /* may be NULL */
    json_t *params;      /* provision.params, an object; may be NULL */
    /* Registering: accept a PostgreSQL DSN (or replica) that logs in as a
     * superuser; without it that is CITRUS_ESUPERUSER. */
    bool allow_superuser;
} shard_spec;

/* Takes ownership of reg (not NULL) and prov (NULL: provisioning is off).
 * clock is kept (NULL: the real one); give reg the same. */
int shard_service_init(shard_service *svc, registry *reg, provisioner *prov,
                       const char *templates_dir, int64_t db_timeout_ms, const char *node_id,
                       const sysclock *clock);
void shard_service_destroy(shard_service *svc); /* stops the worker first */

/* Registers an existing database (spec->dsn set). CITRUS_EUNREACHABLE when
 * verify is on and it cannot be reached; CITRUS_EEXISTS; template errors as
 * schema_apply gives them. */
int svc_register_shard(shard_service *svc, const shard_spec *spec, bool verify, const char *actor,
                       shard *out, reg_result *res, errdetail *e);

/* Starts provisioning (spec->provision set): the shard is created in
 * provisioning and the worker is woken. CITRUS_EUNPROCESSABLE when no
 * provisioner is configured. */
int svc_provision_shard(shard_service *svc, const shard_spec *spec, const char *actor, shard *out,
                        errdetail *e);
/* The same with the controller's fencing compare on its catalog write
 * (registry_shard_create_fenced; fence NULL: none), as the shard management
 * worker runs it. The _fenced calls below do the same for theirs, the
 * re-pin that follows a forced retirement or delete included (each pin's
 * txn carries the fence: tenants_repin_fenced). */
int svc_provision_shard_fenced(shard_service *svc, const shard_spec *spec, const char *actor,
                               const reg_fence *fence, shard *out, errdetail *e);

/* A lifecycle change asked for through the API ("drain", "activate",
 * "retire", "read-only", "retry"): CITRUS_ETRANSITION (409) when the table
 * forbids it, with the allowed targets in e. A forced retirement moves
 * the shard's tenants to their ring owners once the change is written. */
int svc_shard_action(shard_service *svc, const char *id, const char *action, unsigned flags,
                     const char *actor, shard *out, reg_result *res, errdetail *e);
int svc_shard_action_fenced(shard_service *svc, const char *id, const char *action, unsigned flags,
                            const char *actor, const reg_fence *fence, shard *out, reg_result *res,
                            errdetail *e);
/* The state an action of svc_shard_action moves a shard to: 0, or
 * CITRUS_ENOTFOUND for an unknown action. */
int svc_action_target(const char *action, shard_state *to);

/* Deletes a shard record (registry_shard_delete, whose flags and errors it
 * takes); a forced delete of a failed shard then moves its tenants to
 * their ring owners. */
int svc_shard_delete(shard_service *svc, const char *id, unsigned flags, reg_result *res,
                     errdetail *e);
int svc_shard_delete_fenced(shard_service *svc, const char *id, unsigned flags,
                            const reg_fence *fence, reg_result *res, errdetail *e);

/* What svc_ensure_template works for: the service and the deadline of the
 * request it serves (server.request_deadline_ms; the zero deadline: none). */
typedef struct svc_ensure_ctx {
    shard_service *svc;
    deadline dl;
} svc_ensure_ctx;

/* Applies the schema template of business_type to the shard, when the
 * templates directory has one (a tenant_ensure_fn; ctx is a
 * svc_ensure_ctx). On a pooled connection to the shard (ctlconns.h), all
 * of it within ctx->dl: a shard that does not answer by then (cannot be
 * connected, a statement or ping without an answer) is
 * CITRUS_ESHARDDOWN, ending at the deadline at the latest. A shard
 * already set up for this type through this process (same DSN, same
 * template files) is only pinged. */
int svc_ensure_template(void *ctx, const char *shard_id, const char *business_type, errdetail *e);

/* The DSN as a shard record stores it (malloc'd; NULL when out of
 * memory): a PostgreSQL one in its URI form (dsn_to_uri), a SQLite one
 * with its file's canonical absolute path (fs_canonical_path: symbolic
 * links and ".." resolved), so that one database has one name. */
char *svc_dsn_stored(const char *dsn);

/* Business types (types.c). The known ones are the directories of
 * templates_dir with a valid template name, exactly as named (the check is
 * case-sensitive); none without a templates directory. svc_type_check: 0
 * when type is known, or when svc->allow_untemplated_types; else
 * CITRUS_EUNKNOWNTYPE with e naming the known types and *known (may be
 * NULL; the caller owns it) their sorted JSON array. */
int svc_type_check(const shard_service *svc, const char *type, json_t **known, errdetail *e);
/* Whether <templates_dir>/<type>/template.json says {"require_registered":
 * true} (a tenant_type_fn; read each time, so an edit takes effect at
 * once). */
bool svc_type_strict(void *svc, const char *type);

/* schema_apply of template_name to shard shard_id's database at dsn, with
 * the provisioner's owner DSN when it has one for it (a provisioned
 * PostgreSQL shard: dsn's application role may not create tables). */
int svc_schema_apply(shard_service *svc, const char *shard_id, const char *dsn,
                     const char *template_name, schema_result *res, errdetail *e);

/* Starts the provisioning worker thread (runs while this node is the
 * controller leader; sess may be NULL: then it always runs, unfenced). It
 * calls svc_worker_run_once when kicked and every second. */
int svc_worker_start(shard_service *svc, session *sess);
/* Stops and joins the thread (nothing when it is not running). */
void svc_worker_stop(shard_service *svc);
/* Wakes the worker (a shard waits for it). */
void svc_worker_kick(shard_service *svc);
/* What the worker does each time, on the caller's thread: when this node
 * may (no session, or it is the leader; false otherwise), one pass over
 * every shard in provisioning (the provisioner is called, then
 * initializing, or failed with its error) and then every shard in
 * initializing (template and reachability: active; an unreachable
 * database stays for the next pass; a template error: failed). Writes are
 * fenced by the leader key's token and stamped with svc->clock. A shard
 * left half-way by a previous worker is taken like any other. */
bool svc_worker_run_once(shard_service *svc);

#endif
