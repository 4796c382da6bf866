/* examples/tenant_rows.c — libcitrus in a few lines: register a business
 * location (tenant "acme:north", business type "retail"), write its rows
 * through the router, read them back.
 *
 *   make dev        # in another terminal: citrus dev on :8081, router on :8080
 *   ./build/tenant_rows
 *
 * CITRUS_ENDPOINT and CITRUS_ROUTER override the addresses. Build it
 * against an installed libcitrus with
 *   cc tenant_rows.c $(pkg-config --cflags --libs citrus) */
#include <citrus/citrus.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

static const char *env_or(const char *name, const char *dflt)
{
    const char *v = getenv(name);
    return v && *v ? v : dflt;
}

static int fail(const char *what, const citrus_error *e)
{
    fprintf(stderr, "%s: %s: %s%s%s\n", what, e->name, e->message,
            e->sqlstate[0] ? " sqlstate " : "", e->sqlstate);
    return 1;
}

int main(void)
{
    const char *endpoints[] = {env_or("CITRUS_ENDPOINT", "http://127.0.0.1:8081")};
    citrus_options opt = {.endpoints = endpoints,
                          .nendpoints = 1,
                          .router_url = env_or("CITRUS_ROUTER", "http://127.0.0.1:8080")};
    citrus_error err;
    citrus_client *c = citrus_connect(&opt, &err);
    if (!c)
        return fail("connect", &err);

    /* The tenant: pinned to its shard, with the retail schema set up there. */
    char *key;
    if (citrus_register_tenant(c, "acme", "north", "retail", &key, &err) < 0) {
        citrus_close(c);
        return fail("register", &err);
    }
    citrus_route *route;
    if (citrus_resolve(c, key, &route, &err) == 0) {
        printf("tenant %s is on %s\n", key, citrus_route_shard_id(route));
        citrus_route_free(route);
    }

    /* Its rows, in one transaction on its shard. */
    citrus_param loc[] = {citrus_param_text(key), citrus_param_text("acme"),
                          citrus_param_text("North street")};
    citrus_param o1[] = {citrus_param_text("o-1"), citrus_param_text(key), citrus_param_int(1250),
                         citrus_param_text("open")};
    citrus_param o2[] = {citrus_param_text("o-2"), citrus_param_text(key), citrus_param_int(990),
                         citrus_param_text("paid")};
    citrus_stmt writes[] = {
        {"INSERT INTO locations (id, business_id, name) VALUES ($1, $2, $3) "
         "ON CONFLICT (id) DO NOTHING",
         loc, 3},
        {"DELETE FROM orders WHERE location_id = $1", loc, 1},
        {"INSERT INTO orders (id, location_id, total_cents, status) VALUES ($1, $2, $3, $4)", o1,
         4},
        {"INSERT INTO orders (id, location_id, total_cents, status) VALUES ($1, $2, $3, $4)", o2,
         4},
    };
    citrus_result *done[4];
    int rc = citrus_tx(c, key, writes, 4, done, &err);
    for (int i = 0; rc == 0 && i < 4; i++)
        citrus_result_free(done[i]);

    /* And back. */
    citrus_result *rows = NULL;
    if (rc == 0)
        rc = citrus_query(c, key,
                          "SELECT id, total_cents, status FROM orders WHERE location_id = $1 "
                          "ORDER BY id",
                          loc, 1, NULL, &rows, &err);
    for (size_t i = 0; rc == 0 && i < citrus_result_row_count(rows); i++)
        printf("order %s total %" PRId64 " %s\n", citrus_result_text(rows, i, 0, NULL),
               citrus_result_int(rows, i, 1), citrus_result_text(rows, i, 2, NULL));
    if (rc < 0)
        fail("query", &err);
    citrus_result_free(rows);
    citrus_free(key);
    citrus_close(c);
    return rc < 0;
}
