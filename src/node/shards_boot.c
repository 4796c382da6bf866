/* node/shards_boot.c — the shard manager inside `citrus dev` and `citrus
 * server` (see shards_boot.h). */
#include "node/shards_boot.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "citrus/errors.h"
#include "dbconn/driver.h"
#include "obs/log.h"
#include "provision/health.h"
#include "sys/fs.h"
#include "sys/ticker.h"

/* The example schema template `citrus dev` ships: business type "retail".
 * Plain SQL that SQLite and PostgreSQL both take, and on PostgreSQL a
 * tenant column with row-level security (003, a *.pg.sql file). */
static const struct {
    const char *name, *sql;
} example_template[] = {
    {"001_locations.sql",
     "-- The location this shard serves data for, one row per registered location.\n"
     "CREATE TABLE locations (\n"
     "    id          TEXT PRIMARY KEY,\n"
     "    business_id TEXT NOT NULL,\n"
     "    name        TEXT,\n"
     "    created_at  TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP\n"
     ");\n"
     "CREATE INDEX locations_business ON locations (business_id);\n"},
    {"002_orders.sql", "-- Orders taken at a location.\n"
                       "CREATE TABLE orders (\n"
                       "    id          TEXT PRIMARY KEY,\n"
                       "    location_id TEXT NOT NULL REFERENCES locations (id),\n"
                       "    total_cents BIGINT NOT NULL DEFAULT 0,\n"
                       "    status      TEXT NOT NULL DEFAULT 'open',\n"
                       "    created_at  TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP\n"
                       ");\n"
                       "CREATE INDEX orders_location ON orders (location_id, created_at);\n"},
    {"003_tenant_rls.pg.sql",
     "-- PostgreSQL only: row-level security keyed on the tenant.\n"
     "-- The router runs every keyed statement in a transaction with\n"
     "-- citrus.tenant set to its key, and scatter statements with\n"
     "-- citrus.scatter = 'on'. A row is filled with the tenant it is written\n"
     "-- for and only that tenant sees or changes it; scatter sees every row.\n"
     "-- (docs/security.md: what this does and does not isolate.)\n"
     "ALTER TABLE locations ADD COLUMN tenant TEXT NOT NULL\n"
     "    DEFAULT NULLIF(current_setting('citrus.tenant', true), '');\n"
     "ALTER TABLE orders ADD COLUMN tenant TEXT NOT NULL\n"
     "    DEFAULT NULLIF(current_setting('citrus.tenant', true), '');\n"
     "CREATE INDEX locations_tenant ON locations (tenant);\n"
     "CREATE INDEX orders_tenant ON orders (tenant);\n"
     "ALTER TABLE locations ENABLE ROW LEVEL SECURITY;\n"
     "ALTER TABLE locations FORCE ROW LEVEL SECURITY;\n"
     "ALTER TABLE orders ENABLE ROW LEVEL SECURITY;\n"
     "ALTER TABLE orders FORCE ROW LEVEL SECURITY;\n"
     "CREATE POLICY tenant_rows ON locations\n"
     "    USING (tenant = current_setting('citrus.tenant', true)\n"
     "           OR current_setting('citrus.scatter', true) = 'on')\n"
     "    WITH CHECK (tenant = current_setting('citrus.tenant', true)\n"
     "                OR current_setting('citrus.scatter', true) = 'on');\n"
     "CREATE POLICY tenant_rows ON orders\n"
     "    USING (tenant = current_setting('citrus.tenant', true)\n"
     "           OR current_setting('citrus.scatter', true) = 'on')\n"
     "    WITH CHECK (tenant = current_setting('citrus.tenant', true)\n"
     "                OR current_setting('citrus.scatter', true) = 'on');\n"},
};
#define EXAMPLE_TYPE "retail"

/* Writes <dir>/retail/ unless it exists (an edited copy is kept). */
static int write_example(const char *dir)
{
    char path[PATH_MAX];
    int n = snprintf(path, sizeof(path), "%s/%s", dir, EXAMPLE_TYPE);
    if (n < 0 || (size_t)n >= sizeof(path))
        return -1;
    struct stat st;
    if (stat(path, &st) == 0)
        return 0;
    if (fs_mkdirs(path, 0700) < 0)
        return -1;
    for (size_t i = 0; i < sizeof(example_template) / sizeof(example_template[0]); i++) {
        char file[PATH_MAX + 64];
        snprintf(file, sizeof(file), "%s/%s", path, example_template[i].name);
        FILE *f = fopen(file, "w");
        if (!f || fputs(example_template[i].sql, f) < 0) {
            if (f)
                fclose(f);
            return -1;
        }
        if (fclose(f) != 0)
            return -1;
    }
    return 0;
}

static provisioner *make_provisioner(const citrus_config *cfg, errdetail *e)
{
    if (strcmp(cfg->prov_kind, "sqlite") == 0) {
        char dir[PATH_MAX];
        if (cfg->prov_sqlite_dir[0])
            snprintf(dir, sizeof(dir), "%s", cfg->prov_sqlite_dir);
        else
            snprintf(dir, sizeof(dir), "%s/shards", cfg->data_dir);
        return prov_sqlite_new(dir);
    }
    if (strcmp(cfg->prov_kind, "postgres") == 0) {
        if (!cfg->prov_pg_admin_dsn[0]) {
            errdetail_set(e, CITRUS_EINVAL,
                          "provisioner.postgres_admin_dsn is required with postgres");
            return NULL;
        }
        return prov_postgres_new(cfg->prov_pg_admin_dsn, cfg->prov_pg_prefix);
    }
    if (strcmp(cfg->prov_kind, "exec") == 0) {
        if (!cfg->prov_exec_path[0]) {
            errdetail_set(e, CITRUS_EINVAL, "provisioner.exec_path is required with exec");
            return NULL;
        }
        return prov_exec_new(cfg->prov_exec_path, cfg->prov_exec_timeout_ms, cfg->prov_exec_env);
    }
    return NULL;
}

/* citrus dev in an empty catalog: n SQLite shards, active, with the
 * example template applied when it is ours (so scatter queries find its
 * tables on every shard). */
static int dev_shards(shard_service *svc, int64_t n, const char *template_name)
{
    shard *v;
    size_t have;
    int rc = registry_shard_list(svc->reg, NULL, &v, &have);
    if (rc < 0)
        return rc;
    registry_shards_free(v, have);
    if (have > 0 || !svc->prov)
        return 0;
    for (int64_t i = 0; i < n; i++) {
        shard_spec spec = {.weight = 1, .template_name = (char *)template_name};
        snprintf(spec.id, sizeof(spec.id), "shard-%" PRId64, i);
        prov_request req = {.shard_id = spec.id};
        prov_result pr = {0};
        errdetail e = {0};
        rc = svc->prov->provision(svc->prov, &req, &pr, &e);
        spec.dsn = pr.dsn;
        reg_result res = {0};
        if (rc == 0)
            rc = svc_register_shard(svc, &spec, true, "citrus dev", NULL, &res, &e);
        reg_result_clear(&res);
        prov_result_clear(&pr);
        if (rc < 0) {
            fprintf(stderr, "citrus dev: cannot create %s: %s\n", spec.id, e.message);
            return rc;
        }
    }
    log_info("shards", "dev shards created", json_pack("{s:I}", "count", (json_int_t)n));
    return 0;
}

int shards_boot(const citrus_config *cfg, bool dev, app *a)
{
    errdetail e = {0};
    const dsn_policy rules = {.tls_dir = cfg->shards_tls_dir,
                              .socket_dirs = cfg->shards_socket_dirs,
                              .allowed_hosts = cfg->shards_allowed_hosts};
    if (drv_set_dsn_policy(&rules, &e) < 0) {
        fprintf(stderr, "citrus: invalid config: %s\n", e.message);
        return CITRUS_EINVAL;
    }
    /* a DSN from the config obeys the same rules, said at start */
    if (strcmp(cfg->prov_kind, "postgres") == 0 && cfg->prov_pg_admin_dsn[0] &&
        drv_dsn_check(cfg->prov_pg_admin_dsn, &e) < 0) {
        fprintf(stderr, "citrus: invalid config: provisioner.postgres_admin_dsn: %s\n", e.message);
        return CITRUS_EINVAL;
    }
    char templates[PATH_MAX];
    if (cfg->templates_dir[0])
        snprintf(templates, sizeof(templates), "%s", cfg->templates_dir);
    else if (dev)
        snprintf(templates, sizeof(templates), "%s/templates", cfg->data_dir);
    else
        templates[0] = '\0';
    /* citrus dev: the example templates, whatever --dev-shards (a copy the
     * user edited is kept) */
    if (dev && !cfg->templates_dir[0] && write_example(templates) < 0) {
        fprintf(stderr, "citrus: cannot write the example template under %s: %s\n", templates,
                strerror(errno));
        return CITRUS_EIO;
    }
    citrus_hash_fn fn = CITRUS_HASH_MURMUR3;
    citrus_hash_parse(cfg->ring_hash, &fn);
    registry *reg =
        registry_new(a->st, clock_real(), fn, (size_t)cfg->vnodes, reader_routing_read, a->rd);
    if (reg) {
        registry_set_revision_fn(reg, reader_routing_revision, a->rd);
        registry_set_commit_fn(reg, reader_note_commit, a->rd);
    }
    provisioner *prov = make_provisioner(cfg, &e);
    shard_service *svc = NULL;
    int rc = CITRUS_EINVAL;
    if (!reg || (!prov && strcmp(cfg->prov_kind, "none") != 0)) {
        fprintf(stderr, "citrus: cannot start the %s provisioner: %s\n", cfg->prov_kind,
                e.message[0] ? e.message : "out of memory");
        goto fail;
    }
    rc = registry_init(reg, &e);
    if (rc < 0) {
        fprintf(stderr, "citrus: cannot set up the ring in the catalog: %s %s\n",
                citrus_err_code(rc), e.message);
        goto fail;
    }
    svc = calloc(1, sizeof(*svc));
    if (!svc) {
        rc = CITRUS_ENOMEM;
        goto fail;
    }
    shard_service_init(svc, reg, prov, templates, cfg->shard_db_timeout_ms, cfg->node_id,
                       clock_real());
    svc->allow_untemplated_types = strcmp(cfg->allow_untemplated_types, "true") == 0;
    const char *example = cfg->templates_dir[0] ? NULL : EXAMPLE_TYPE; /* we wrote it */
    if (dev && cfg->dev_shards > 0 && (rc = dev_shards(svc, cfg->dev_shards, example)) < 0) {
        shard_service_destroy(svc); /* frees reg and prov */
        free(svc);
        return rc;
    }
    a->health = shard_health_new(reg, cfg->shard_probe_interval_ms,
                                 cfg->shard_db_timeout_ms < HEALTH_PROBE_TIMEOUT_MAX_MS
                                     ? cfg->shard_db_timeout_ms
                                     : HEALTH_PROBE_TIMEOUT_MAX_MS,
                                 clock_real());
    if (!a->health) {
        shard_service_destroy(svc);
        free(svc);
        return CITRUS_ENOMEM;
    }
    a->shards = svc;
    return 0;

fail:
    if (prov)
        prov->free(prov);
    registry_free(reg);
    return rc;
}

/* How often the records known not to decode are read again
 * (registry_corrupt_recheck), so that /health/ready reports a repaired one
 * as gone: on a thread of its own, never on a probe's. */
#define CORRUPT_RECHECK_MS 2000

static ticker *rechecker;

static void corrupt_recheck(void *ctx)
{
    registry_corrupt_recheck(ctx, CORRUPT_RECHECK_MS);
}

void shards_start_worker(app *a, session *sess)
{
    if (a->shards)
        rechecker =
            ticker_start("corrupt-check", CORRUPT_RECHECK_MS, corrupt_recheck, a->shards->reg);
    if (a->shards && svc_worker_start(a->shards, sess) < 0)
        log_error("shards", "cannot start the provisioning worker", NULL);
    if (a->health) /* a first round before the node serves: bounded by one probe timeout */
        shard_health_tick(a->health);
    if (a->health && shard_health_start(a->health) < 0)
        log_error("shards", "cannot start the health probes", NULL);
}

void shards_stop(app *a)
{
    ticker_stop(rechecker);
    rechecker = NULL;
    shard_health_free(a->health); /* it reads the service's registry */
    a->health = NULL;
    if (!a->shards)
        return;
    shard_service_destroy(a->shards);
    free(a->shards);
    a->shards = NULL;
}
