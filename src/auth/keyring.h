/* auth/keyring.h — API keys: made, listed and revoked through the catalog
 * (citrus/auth/keys/<id>), checked from a watch-fed copy in memory.
 *
 * A key is "ck_<id>_<secret>": a 16-hex-digit id and 64 hex digits of
 * secret (256 random bits from getrandom). The secret is shown once, when
 * the key is made; the catalog keeps only its SHA-256 (a fast hash is
 * enough for 256 random bits: there is nothing to guess from it), with the
 * key's name, roles, tenant scopes, KV grants, expiry and last use.
 *
 * Every node watches citrus/auth/keys/, so a revoked key stops working on
 * every node as soon as the delete reaches its watch (well within a second;
 * tests/integration/test_auth.py checks it on a cluster). Checking a key
 * is a lookup in memory and one SHA-256: no catalog read per request.
 *
 * Last use is kept in memory and written to the key's record at most once
 * per flush interval (a CAS on the record, so a revoked key is not brought
 * back).
 *
 * Threads: every call is safe from any thread. */
#ifndef CITRUS_AUTH_KEYRING_H
#define CITRUS_AUTH_KEYRING_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/principal.h"
#include "catalog/store.h"
#include "core/errdetail.h"
#include "sys/clock.h"

#define APIKEY_ID_LEN 16
#define APIKEY_TOKEN_LEN (3 + APIKEY_ID_LEN + 1 + 64)
#define KEYRING_MAX_KEYS 10000

typedef struct keyring keyring;

typedef struct keyring_options {
    store *st;             /* borrowed; outlives the keyring */
    const sysclock *clock; /* NULL: the real clock */
    int64_t flush_ms;      /* last-use writes at most this often; 0 = 60000 */
    int64_t check_ms;      /* the loader's pace (reload after a broken watch); 0 = 1000 */
    bool no_thread;        /* tests: nothing runs by itself, call keyring_run_once */
} keyring_options;

/* Loads the keys (before it returns) and starts watching. The first load
 * may fail (the catalog is down): the loader keeps trying, and keys are
 * refused meanwhile. */
int keyring_start(const keyring_options *o, keyring **out, errdetail *e);
void keyring_stop(keyring *k);
/* One round of the loader: reload when not loaded or the watch broke, then
 * write due last-use times. */
void keyring_run_once(keyring *k);
/* Whether the keys are loaded (a key can be checked). */
bool keyring_loaded(keyring *k);
/* Keys held in memory. */
size_t keyring_count(keyring *k);

/* Whether token has the shape of an API key ("ck_..."): then the api_key
 * mode owns it, and another mode does not try it. */
bool apikey_shaped(const char *token, size_t len);

/* Checks an API key. 0 with *p filled (principal_clear it) and the key's
 * use noted; CITRUS_EUNAUTHENTICATED when it is unknown, revoked, expired
 * or its secret is wrong (the message does not say which secret);
 * CITRUS_EUNAVAILABLE when the keys are not loaded yet. */
int keyring_verify(keyring *k, const char *token, size_t len, principal *p, errdetail *e);

/* What a new key is: parsed from the body of POST /v1/auth/keys
 * ({"name", "roles", "tenants", "grants", "expires_in_s" | "expires_at"}),
 * every field checked and bounded; CITRUS_EINVAL naming the field. */
typedef struct apikey_spec {
    char name[129];
    unsigned roles;
    char *scopes[AUTH_MAX_SCOPES];
    size_t nscopes;
    auth_grant grants[AUTH_MAX_GRANTS];
    size_t ngrants;
    int64_t expires_ms; /* Unix ms; 0 = never */
} apikey_spec;
int apikey_spec_parse(json_t *body, int64_t now_ms, apikey_spec *out, errdetail *e);
void apikey_spec_clear(apikey_spec *s);

/* Makes a key: its token (shown once) into token, its public view into
 * *view (the record without the hash; caller decrefs), the commit revision
 * into *rev. With bootstrap, only while no key was ever bootstrapped
 * (citrus/auth/bootstrap absent, written in the same txn):
 * CITRUS_EFORBIDDEN afterwards. CITRUS_ETOOMANY at KEYRING_MAX_KEYS. */
int keyring_create(keyring *k, const apikey_spec *spec, bool bootstrap,
                   char token[APIKEY_TOKEN_LEN + 1], json_t **view, int64_t *rev, errdetail *e);
/* Revokes a key by id: CITRUS_ENOTFOUND when there is none. */
int keyring_delete(keyring *k, const char *id, int64_t *rev, errdetail *e);
/* Every key's public view (never a hash or secret), sorted by id, read from
 * the store. */
int keyring_list(keyring *k, json_t **items, int64_t *rev, errdetail *e);

#endif
