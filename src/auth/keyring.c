/* auth/keyring.c — API keys in the catalog, checked from memory (see
 * keyring.h). */
#include "auth/keyring.h"

#include <openssl/crypto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "citrus/errors.h"
#include "core/key.h"
#include "obs/log.h"
#include "wire/catalog_keys.h"
#include "wire/digest.h"
#include "wire/shard_json.h"

#define TOKEN_PREFIX "ck_"
#define SECRET_HEX 64
#define MAX_EXPIRY_S (10LL * 366 * 24 * 3600)

typedef struct kentry {
    char id[APIKEY_ID_LEN + 1];
    char hash[DIGEST_SHA256_HEX + 1]; /* of the secret's hex text */
    principal p;
    int64_t expires_ms; /* 0 = never */
    int64_t mod_rev;
    bool deleted;                 /* a tombstone: revoked here at mod_rev */
    _Atomic int64_t last_used_ms; /* this node's latest use */
    int64_t stored_used_ms;       /* what the record says */
    int64_t flushed_at;           /* monotonic ms of the last write */
} kentry;

struct keyring {
    store *st;
    const sysclock *clock;
    int64_t flush_ms, check_ms;
    pthread_rwlock_t rw; /* entries */
    kentry **entries;    /* sorted by id */
    size_t n, cap;
    pthread_mutex_t mu; /* what follows */
    pthread_cond_t cv;
    bool loaded, broken, stopping;
    store_watch *watch;
    pthread_t th;
    bool threaded;
};

/* ---- tokens ---- */

static bool lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

static bool apikey_id_valid(const char *id)
{
    return id && strlen(id) == APIKEY_ID_LEN && lower_hex(id, APIKEY_ID_LEN);
}

bool apikey_shaped(const char *token, size_t len)
{
    return len >= 3 && memcmp(token, TOKEN_PREFIX, 3) == 0;
}

/* "ck_<id>_<secret>" into its parts (pointers into token). */
static bool token_parse(const char *token, size_t len, char id[APIKEY_ID_LEN + 1],
                        const char **secret)
{
    if (len != APIKEY_TOKEN_LEN || !apikey_shaped(token, len) || token[3 + APIKEY_ID_LEN] != '_' ||
        !lower_hex(token + 3, APIKEY_ID_LEN) || !lower_hex(token + 4 + APIKEY_ID_LEN, SECRET_HEX))
        return false;
    memcpy(id, token + 3, APIKEY_ID_LEN);
    id[APIKEY_ID_LEN] = '\0';
    *secret = token + 4 + APIKEY_ID_LEN;
    return true;
}

/* ---- the spec of a new key, and the stored record ---- */

static bool printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    return true;
}

void apikey_spec_clear(apikey_spec *s)
{
    for (size_t i = 0; i < s->nscopes; i++)
        free(s->scopes[i]);
    for (size_t i = 0; i < s->ngrants; i++)
        free(s->grants[i].prefix);
    memset(s, 0, sizeof(*s));
}

static int parse_roles(json_t *v, unsigned *roles, errdetail *e)
{
    size_t i;
    json_t *r;
    *roles = 0;
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > 4)
        return errdetail_set(e, CITRUS_EINVAL,
                             "roles: must be 1-4 of sm-admin, sm-operator, reader, tenant");
    json_array_foreach(v, i, r)
    {
        unsigned bit = json_is_string(r) ? auth_role_bit(json_string_value(r)) : 0;
        if (!bit)
            return errdetail_set(e, CITRUS_EINVAL,
                                 "roles[%zu]: must be sm-admin, sm-operator, reader or tenant", i);
        *roles |= bit;
    }
    return 0;
}

static int parse_scopes(json_t *v, char **out, size_t *n, errdetail *e)
{
    size_t i;
    json_t *s;
    if (!json_is_array(v) || json_array_size(v) > AUTH_MAX_SCOPES)
        return errdetail_set(e, CITRUS_EINVAL, "tenants: must be an array of at most %d scopes",
                             AUTH_MAX_SCOPES);
    json_array_foreach(v, i, s)
    {
        if (!json_is_string(s))
            return errdetail_set(e, CITRUS_EINVAL, "tenants[%zu]: must be a string", i);
        if (auth_scope_check(json_string_value(s), e) < 0) {
            errdetail_prefix(e, "tenants[%zu]", i);
            return CITRUS_EINVAL;
        }
        if (!(out[*n] = strdup(json_string_value(s))))
            return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
        (*n)++;
    }
    return 0;
}

int apikey_spec_parse(json_t *body, int64_t now_ms, apikey_spec *out, errdetail *e)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(body))
        return errdetail_set(e, CITRUS_EINVAL, "the body must be a JSON object");
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v)
    {
        if (strcmp(k, "name") && strcmp(k, "roles") && strcmp(k, "tenants") &&
            strcmp(k, "grants") && strcmp(k, "expires_in_s"))
            return errdetail_set(e, CITRUS_EINVAL,
                                 "unknown field '%.64s' (name, roles, tenants, grants, "
                                 "expires_in_s)",
                                 k);
    }
    json_t *name = json_object_get(body, "name");
    if (!json_is_string(name) || json_string_length(name) == 0 || json_string_length(name) > 128 ||
        !printable(json_string_value(name)))
        return errdetail_set(e, CITRUS_EINVAL,
                             "name: required, 1-128 characters without control characters");
    snprintf(out->name, sizeof(out->name), "%s", json_string_value(name));
    int rc = parse_roles(json_object_get(body, "roles"), &out->roles, e);
    json_t *t = json_object_get(body, "tenants"), *g = json_object_get(body, "grants");
    if (rc == 0 && t)
        rc = parse_scopes(t, out->scopes, &out->nscopes, e);
    if (rc == 0 && g)
        rc = auth_grants_parse(g, AUTH_MAX_GRANTS, out->grants, &out->ngrants, e);
    if (rc == 0 && (out->roles & AUTH_TENANT) && out->nscopes == 0)
        rc = errdetail_set(e, CITRUS_EINVAL,
                           "tenants: a key with the tenant role needs at least one scope");
    json_t *exp = json_object_get(body, "expires_in_s");
    if (rc == 0 && exp) {
        if (!json_is_integer(exp) || json_integer_value(exp) < 1 ||
            json_integer_value(exp) > MAX_EXPIRY_S)
            rc = errdetail_set(e, CITRUS_EINVAL, "expires_in_s: must be an integer 1-%lld",
                               MAX_EXPIRY_S);
        else
            out->expires_ms = now_ms + json_integer_value(exp) * 1000;
    }
    if (rc < 0)
        apikey_spec_clear(out);
    return rc;
}

static json_t *time_json(int64_t ms)
{
    if (ms <= 0)
        return json_null();
    char buf[40];
    shard_json_time(ms, buf, sizeof(buf));
    return json_string(buf);
}

/* The public view of an entry: everything but the hash. */
static json_t *entry_view(const kentry *k, const char *name, int64_t created_ms, int64_t used_ms)
{
    json_t *roles = json_array(), *scopes = json_array(), *grants = json_array();
    for (unsigned bit = 1; bit <= AUTH_TENANT; bit <<= 1)
        if (k->p.roles & bit)
            json_array_append_new(roles, json_string(auth_role_name(bit)));
    for (size_t i = 0; i < k->p.nscopes; i++)
        json_array_append_new(scopes, json_string(k->p.scopes[i]));
    for (size_t i = 0; i < k->p.ngrants; i++)
        json_array_append_new(grants,
                              json_pack("{s:s,s:s}", "prefix", k->p.grants[i].prefix, "access",
                                        k->p.grants[i].write ? "readwrite" : "read"));
    return json_pack("{s:s,s:s,s:o,s:o,s:o,s:o,s:o,s:o}", "id", k->id, "name", name, "roles", roles,
                     "tenants", scopes, "grants", grants, "created_at", time_json(created_ms),
                     "expires_at", time_json(k->expires_ms), "last_used_at", time_json(used_ms));
}

/* The stored record: the view's fields in ms, and the hash. */
static char *record_text(const kentry *k, const char *name, int64_t created_ms, int64_t used_ms)
{
    json_t *j = entry_view(k, name, 0, 0);
    if (!j)
        return NULL;
    json_object_set_new(j, "hash", json_string(k->hash));
    json_object_set_new(j, "created_ms", json_integer(created_ms));
    json_object_set_new(j, "expires_ms", json_integer(k->expires_ms));
    json_object_set_new(j, "last_used_ms", json_integer(used_ms));
    json_object_del(j, "created_at");
    json_object_del(j, "expires_at");
    json_object_del(j, "last_used_at");
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return text;
}

static void entry_free(kentry *k)
{
    if (!k)
        return;
    principal_clear(&k->p);
    free(k);
}

/* A stored record into an entry (and its name and creation time, for a
 * view). NULL when it is not a key record this version wrote. */
static kentry *entry_parse(const kv_entry *kv, json_t **json_out)
{
    json_error_t jerr;
    json_t *j = json_loadb((const char *)kv->value, kv->value_len, 0, &jerr);
    kentry *k = calloc(1, sizeof(*k));
    const char *id = json_string_value(json_object_get(j, "id"));
    const char *hash = json_string_value(json_object_get(j, "hash"));
    const char *name = json_string_value(json_object_get(j, "name"));
    apikey_spec spec;
    memset(&spec, 0, sizeof(spec));
    errdetail e;
    bool ok = j && k && apikey_id_valid(id) && hash && strlen(hash) == DIGEST_SHA256_HEX && name &&
              parse_roles(json_object_get(j, "roles"), &k->p.roles, &e) == 0 &&
              parse_scopes(json_object_get(j, "tenants"), spec.scopes, &spec.nscopes, &e) == 0 &&
              auth_grants_parse(json_object_get(j, "grants"), AUTH_MAX_GRANTS, spec.grants,
                                &spec.ngrants, &e) == 0;
    if (ok) {
        snprintf(k->id, sizeof(k->id), "%s", id);
        snprintf(k->hash, sizeof(k->hash), "%s", hash);
        k->expires_ms = json_integer_value(json_object_get(j, "expires_ms"));
        k->stored_used_ms = json_integer_value(json_object_get(j, "last_used_ms"));
        atomic_store(&k->last_used_ms, k->stored_used_ms);
        k->mod_rev = kv->mod_revision;
        k->p.method = "api_key";
        size_t nlen = strlen(name) + APIKEY_ID_LEN + 6;
        k->p.name = malloc(nlen);
        principal tmp = {.scopes = spec.scopes,
                         .nscopes = spec.nscopes,
                         .grants = spec.grants,
                         .ngrants = spec.ngrants};
        principal *d = principal_dup(&tmp);
        ok = k->p.name && d;
        if (ok) {
            snprintf(k->p.name, nlen, "key:%s/%s", id, name);
            k->p.scopes = d->scopes;
            k->p.nscopes = d->nscopes;
            k->p.grants = d->grants;
            k->p.ngrants = d->ngrants;
            free(d->name);
            free(d);
        } else {
            principal_free(d);
        }
    }
    apikey_spec_clear(&spec);
    if (!ok) {
        if (kv->key)
            log_warn("auth", "skipping an unreadable API key record",
                     json_pack("{s:s}", "key", kv->key));
        entry_free(k);
        json_decref(j);
        return NULL;
    }
    if (json_out)
        *json_out = j;
    else
        json_decref(j);
    return k;
}

/* ---- the copy in memory ---- */

static int cmp_id(const void *a, const void *b)
{
    return strcmp((const char *)a, (*(kentry *const *)b)->id);
}

/* The slot of id, or where it would go. Under rw. */
static size_t find_slot(const keyring *k, const char *id, bool *found)
{
    size_t lo = 0, hi = k->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = cmp_id(id, &k->entries[mid]);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    *found = false;
    return lo;
}

/* Puts e in place of what holds its id, unless that is newer. Under the
 * write lock; takes e. */
static int map_put(keyring *k, kentry *e)
{
    bool found;
    size_t i = find_slot(k, e->id, &found);
    if (found) {
        kentry *old = k->entries[i];
        if (old->mod_rev > e->mod_rev) {
            entry_free(e);
            return 0;
        }
        int64_t used = atomic_load(&old->last_used_ms);
        if (used > atomic_load(&e->last_used_ms))
            atomic_store(&e->last_used_ms, used);
        e->flushed_at = old->flushed_at;
        entry_free(old);
        k->entries[i] = e;
        return 0;
    }
    if (k->n == k->cap) {
        size_t cap = k->cap ? 2 * k->cap : 16;
        kentry **v = realloc(k->entries, cap * sizeof(*v));
        if (!v) {
            entry_free(e);
            return CITRUS_ENOMEM;
        }
        k->entries = v;
        k->cap = cap;
    }
    memmove(k->entries + i + 1, k->entries + i, (k->n - i) * sizeof(*k->entries));
    k->entries[i] = e;
    k->n++;
    return 0;
}

/* A revocation at rev: a tombstone until the watch passes it. Under the
 * write lock. */
static void map_delete(keyring *k, const char *id, int64_t rev)
{
    bool found;
    size_t i = find_slot(k, id, &found);
    if (!found || k->entries[i]->mod_rev > rev)
        return;
    k->entries[i]->deleted = true;
    k->entries[i]->mod_rev = rev;
}

/* Drops tombstones at or below rev (the watch delivered past them). */
static void map_sweep(keyring *k, int64_t rev)
{
    size_t w = 0;
    for (size_t i = 0; i < k->n; i++) {
        if (k->entries[i]->deleted && k->entries[i]->mod_rev <= rev)
            entry_free(k->entries[i]);
        else
            k->entries[w++] = k->entries[i];
    }
    k->n = w;
}

static const char *id_of_key(const char *key)
{
    size_t n = strlen(AUTH_KEYS_PREFIX);
    return strncmp(key, AUTH_KEYS_PREFIX, n) == 0 ? key + n : NULL;
}

static void on_events(void *ctx, const kv_event *ev, size_t n, int err)
{
    keyring *k = ctx;
    if (err) {
        pthread_mutex_lock(&k->mu);
        k->broken = true;
        pthread_cond_broadcast(&k->cv);
        pthread_mutex_unlock(&k->mu);
        return;
    }
    int rc = 0;
    pthread_rwlock_wrlock(&k->rw);
    for (size_t i = 0; i < n && rc == 0; i++) {
        const char *id = id_of_key(ev[i].kv.key);
        if (!id)
            continue;
        if (ev[i].type == KV_EVENT_DELETE) {
            map_delete(k, id, ev[i].kv.mod_revision);
        } else {
            kentry *e = entry_parse(&ev[i].kv, NULL);
            if (e)
                rc = map_put(k, e);
        }
    }
    if (n)
        map_sweep(k, ev[n - 1].kv.mod_revision);
    pthread_rwlock_unlock(&k->rw);
    if (rc < 0) {
        pthread_mutex_lock(&k->mu);
        k->broken = true; /* out of memory: the copy is wrong, reload it */
        pthread_cond_broadcast(&k->cv);
        pthread_mutex_unlock(&k->mu);
    }
}

static int load(keyring *k)
{
    store_watch_close(k->st, k->watch);
    k->watch = NULL;
    kv_range_req req = {.key = AUTH_KEYS_PREFIX, .prefix = true};
    kv_range_res res;
    int rc = store_range(k->st, &req, &res);
    if (rc < 0)
        return rc;
    kentry **v = calloc(res.count ? res.count : 1, sizeof(*v));
    size_t n = 0;
    for (size_t i = 0; v && i < res.count; i++)
        if ((v[n] = entry_parse(&res.items[i], NULL)))
            n++;
    int64_t rev = res.revision;
    kv_range_res_free(&res);
    if (!v)
        return CITRUS_ENOMEM;
    /* the store lists by key, and a key is its prefix and its id: sorted */
    pthread_rwlock_wrlock(&k->rw);
    for (size_t j = 0; j < n; j++) { /* keep this node's last uses (old copy: sorted) */
        bool found;
        size_t i = find_slot(k, v[j]->id, &found);
        if (found && atomic_load(&k->entries[i]->last_used_ms) > atomic_load(&v[j]->last_used_ms))
            atomic_store(&v[j]->last_used_ms, atomic_load(&k->entries[i]->last_used_ms));
    }
    for (size_t i = 0; i < k->n; i++)
        entry_free(k->entries[i]);
    free(k->entries);
    k->entries = v;
    k->n = n;
    k->cap = res.count ? res.count : 1;
    pthread_rwlock_unlock(&k->rw);
    int64_t compact;
    rc = store_watch_open(k->st, AUTH_KEYS_PREFIX, rev + 1, on_events, k, &k->watch, &compact);
    pthread_mutex_lock(&k->mu);
    k->loaded = true;
    k->broken = rc < 0;
    pthread_mutex_unlock(&k->mu);
    log_info("auth", "API keys loaded",
             json_pack("{s:I,s:I}", "revision", (json_int_t)rev, "keys", (json_int_t)n));
    return rc;
}

/* Writes the last use of each key used since its last write, at most once
 * per flush interval, as a CAS on the record (a key revoked meanwhile stays
 * revoked). */
static void flush_last_used(keyring *k)
{
    int64_t now = clock_mono_ms(k->clock);
    char ids[64][APIKEY_ID_LEN + 1];
    size_t nids = 0;
    pthread_rwlock_rdlock(&k->rw);
    for (size_t i = 0; i < k->n && nids < 64; i++) {
        kentry *e = k->entries[i];
        if (!e->deleted && atomic_load(&e->last_used_ms) > e->stored_used_ms &&
            (e->flushed_at == 0 || now - e->flushed_at >= k->flush_ms))
            memcpy(ids[nids++], e->id, APIKEY_ID_LEN + 1);
    }
    pthread_rwlock_unlock(&k->rw);
    for (size_t i = 0; i < nids; i++) {
        char key[64];
        snprintf(key, sizeof(key), AUTH_KEYS_PREFIX "%.16s", ids[i]);
        kv_range_req req = {.key = key};
        kv_range_res res;
        if (store_range(k->st, &req, &res) < 0)
            return;
        json_t *j = NULL;
        kentry *cur = res.count ? entry_parse(&res.items[0], &j) : NULL;
        int64_t used = 0;
        pthread_rwlock_rdlock(&k->rw);
        bool found;
        size_t slot = find_slot(k, ids[i], &found);
        if (found)
            used = atomic_load(&k->entries[slot]->last_used_ms);
        pthread_rwlock_unlock(&k->rw);
        if (cur && used > cur->stored_used_ms) {
            char *text = record_text(cur, json_string_value(json_object_get(j, "name")),
                                     json_integer_value(json_object_get(j, "created_ms")), used);
            int64_t r, m;
            kv_op_result o;
            if (text)
                store_put(k->st, key, (const unsigned char *)text, strlen(text), 0, cur->mod_rev,
                          &o, &r, &m);
            free(text);
        }
        pthread_rwlock_wrlock(&k->rw);
        slot = find_slot(k, ids[i], &found);
        if (found)
            k->entries[slot]->flushed_at = now;
        pthread_rwlock_unlock(&k->rw);
        entry_free(cur);
        json_decref(j);
        kv_range_res_free(&res);
    }
}

void keyring_run_once(keyring *k)
{
    pthread_mutex_lock(&k->mu);
    bool reload = !k->loaded || k->broken;
    pthread_mutex_unlock(&k->mu);
    if (reload && load(k) < 0)
        log_warn("auth", "cannot load the API keys; retrying", NULL);
    flush_last_used(k);
}

static void *keyring_main(void *arg)
{
    keyring *k = arg;
    pthread_mutex_lock(&k->mu);
    while (!k->stopping) {
        pthread_mutex_unlock(&k->mu);
        keyring_run_once(k);
        pthread_mutex_lock(&k->mu);
        struct timespec ts = clock_cond_deadline(k->check_ms);
        while (!k->stopping && !k->broken && pthread_cond_timedwait(&k->cv, &k->mu, &ts) == 0) {
        }
    }
    pthread_mutex_unlock(&k->mu);
    return NULL;
}

int keyring_start(const keyring_options *o, keyring **out, errdetail *e)
{
    keyring *k = calloc(1, sizeof(*k));
    if (!k || clock_cond_init(&k->cv) != 0) {
        free(k);
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    }
    k->st = o->st;
    k->clock = o->clock;
    k->flush_ms = o->flush_ms > 0 ? o->flush_ms : 60000;
    k->check_ms = o->check_ms > 0 ? o->check_ms : 1000;
    pthread_rwlock_init(&k->rw, NULL);
    pthread_mutex_init(&k->mu, NULL);
    keyring_run_once(k); /* the first load here: keys work once this returns */
    if (o->no_thread) {
    } else if (pthread_create(&k->th, NULL, keyring_main, k) == 0) {
        k->threaded = true;
    } else {
        keyring_stop(k);
        return errdetail_set(e, CITRUS_ENOMEM, "cannot start the API key loader");
    }
    *out = k;
    return 0;
}

void keyring_stop(keyring *k)
{
    if (!k)
        return;
    if (k->threaded) {
        pthread_mutex_lock(&k->mu);
        k->stopping = true;
        pthread_cond_broadcast(&k->cv);
        pthread_mutex_unlock(&k->mu);
        pthread_join(k->th, NULL);
    }
    store_watch_close(k->st, k->watch);
    for (size_t i = 0; i < k->n; i++)
        entry_free(k->entries[i]);
    free(k->entries);
    pthread_rwlock_destroy(&k->rw);
    pthread_mutex_destroy(&k->mu);
    pthread_cond_destroy(&k->cv);
    free(k);
}

bool keyring_loaded(keyring *k)
{
    pthread_mutex_lock(&k->mu);
    bool loaded = k->loaded;
    pthread_mutex_unlock(&k->mu);
    return loaded;
}

size_t keyring_count(keyring *k)
{
    size_t n = 0;
    pthread_rwlock_rdlock(&k->rw);
    for (size_t i = 0; i < k->n; i++)
        n += !k->entries[i]->deleted;
    pthread_rwlock_unlock(&k->rw);
    return n;
}

/* ---- checking a key ---- */

int keyring_verify(keyring *k, const char *token, size_t len, principal *p, errdetail *e)
{
    char id[APIKEY_ID_LEN + 1], hash[DIGEST_SHA256_HEX + 1];
    const char *secret;
    memset(p, 0, sizeof(*p));
    if (!token_parse(token, len, id, &secret))
        return errdetail_set(e, CITRUS_EUNAUTHENTICATED, "malformed API key");
    if (!keyring_loaded(k))
        return errdetail_set(e, CITRUS_EUNAVAILABLE, "the API keys are not loaded yet");
    if (digest_sha256_hex(secret, SECRET_HEX, hash) < 0)
        return errdetail_set(e, CITRUS_EINTERNAL, "SHA-256 unavailable");
    int rc = 0;
    pthread_rwlock_rdlock(&k->rw);
    bool found;
    size_t i = find_slot(k, id, &found);
    kentry *ke = found ? k->entries[i] : NULL;
    int64_t now = clock_wall_ms(k->clock);
    if (!ke || ke->deleted || CRYPTO_memcmp(ke->hash, hash, DIGEST_SHA256_HEX) != 0) {
        rc = errdetail_set(e, CITRUS_EUNAUTHENTICATED, "unknown or revoked API key");
    } else if (ke->expires_ms && now >= ke->expires_ms) {
        rc = errdetail_set(e, CITRUS_EUNAUTHENTICATED, "the API key expired");
    } else {
        principal *d = principal_dup(&ke->p);
        if (!d) {
            rc = errdetail_set(e, CITRUS_ENOMEM, "out of memory");
        } else {
            *p = *d;
            free(d);
            atomic_store(&ke->last_used_ms, now);
        }
    }
    pthread_rwlock_unlock(&k->rw);
    return rc;
}

/* ---- making, revoking, listing ---- */

static void random_hex(size_t bytes, char *out)
{
    unsigned char b[32];
    size_t got = 0;
    while (got < bytes) { /* getrandom of <= 256 bytes does not return short once seeded */
        ssize_t r = getrandom(b + got, bytes - got, 0);
        if (r > 0)
            got += (size_t)r;
    }
    digest_hex(b, bytes, out);
}

int keyring_create(keyring *k, const apikey_spec *spec, bool bootstrap,
                   char token[APIKEY_TOKEN_LEN + 1], json_t **view, int64_t *rev, errdetail *e)
{
    *view = NULL;
    if (keyring_count(k) >= KEYRING_MAX_KEYS)
        return errdetail_set(e, CITRUS_ETOOMANY, "at most %d API keys", KEYRING_MAX_KEYS);
    kentry *ke = calloc(1, sizeof(*ke));
    if (!ke)
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    char secret[SECRET_HEX + 1];
    random_hex(APIKEY_ID_LEN / 2, ke->id);
    random_hex(SECRET_HEX / 2, secret);
    snprintf(token, APIKEY_TOKEN_LEN + 1, TOKEN_PREFIX "%s_%s", ke->id, secret);
    int rc = digest_sha256_hex(secret, SECRET_HEX, ke->hash);
    OPENSSL_cleanse(secret, sizeof(secret));
    principal tmp = {.name = (char *)"",
                     .roles = spec->roles,
                     .scopes = (char **)spec->scopes,
                     .nscopes = spec->nscopes,
                     .grants = (auth_grant *)spec->grants,
                     .ngrants = spec->ngrants};
    principal *d = rc == 0 ? principal_dup(&tmp) : NULL;
    if (!d) {
        entry_free(ke);
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    }
    ke->p = *d;
    free(d);
    ke->p.method = "api_key";
    ke->expires_ms = spec->expires_ms;
    int64_t now = clock_wall_ms(k->clock);
    char *text = record_text(ke, spec->name, now, 0);
    char key[64], marker[128];
    snprintf(key, sizeof(key), AUTH_KEYS_PREFIX "%s", ke->id);
    snprintf(marker, sizeof(marker), "{\"id\":\"%s\",\"at_ms\":%lld}", ke->id, (long long)now);
    kv_compare cmp[2] = {
        {.key = key, .target = KV_CMP_VERSION, .op = KV_CMP_EQ, .number = 0},
        {.key = AUTH_BOOTSTRAP_KEY, .target = KV_CMP_VERSION, .op = KV_CMP_EQ, .number = 0},
    };
    kv_op ops[2] = {
        {.type = KV_OP_PUT,
         .key = key,
         .value = (const unsigned char *)text,
         .value_len = text ? strlen(text) : 0},
        {.type = KV_OP_PUT,
         .key = AUTH_BOOTSTRAP_KEY,
         .value = (const unsigned char *)marker,
         .value_len = strlen(marker)},
    };
    kv_txn txn = {.compares = cmp,
                  .ncompares = bootstrap ? 2 : 1,
                  .success = ops,
                  .nsuccess = bootstrap ? 2 : 1};
    kv_txn_res res = {0};
    rc = text ? store_txn(k->st, &txn, &res) : CITRUS_ENOMEM;
    if (rc == 0 && !res.succeeded)
        rc = bootstrap ? errdetail_set(e, CITRUS_EFORBIDDEN,
                                       "the cluster was bootstrapped already: make keys with "
                                       "an sm-admin key (POST /v1/auth/keys)")
                       : errdetail_set(e, CITRUS_EEXISTS, "key id collision; retry");
    else if (rc < 0)
        errdetail_set(e, rc, "cannot store the API key: %s", citrus_strerror(rc));
    if (rc == 0) {
        *rev = res.revision;
        ke->mod_rev = res.revision;
        size_t nlen = strlen(spec->name) + APIKEY_ID_LEN + 6;
        free(ke->p.name); /* principal_dup's "" */
        ke->p.name = malloc(nlen);
        if (ke->p.name)
            snprintf(ke->p.name, nlen, "key:%s/%s", ke->id, spec->name);
        *view = entry_view(ke, spec->name, now, 0);
        /* usable on this node at once, before the watch brings it */
        pthread_rwlock_wrlock(&k->rw);
        if (!ke->p.name || map_put(k, ke) < 0)
            entry_free(ke);
        pthread_rwlock_unlock(&k->rw);
        ke = NULL;
    }
    if (rc < 0)
        memset(token, 0, APIKEY_TOKEN_LEN + 1);
    entry_free(ke);
    free(text);
    kv_txn_res_free(&res);
    return rc;
}

int keyring_delete(keyring *k, const char *id, int64_t *rev, errdetail *e)
{
    if (!apikey_id_valid(id))
        return errdetail_set(e, CITRUS_ENOTFOUND, "no API key with that id");
    char key[64];
    snprintf(key, sizeof(key), AUTH_KEYS_PREFIX "%s", id);
    int64_t deleted = 0, cur;
    int rc = store_delete(k->st, key, false, -1, &deleted, rev, &cur);
    if (rc < 0)
        return errdetail_set(e, rc, "cannot delete the API key: %s", citrus_strerror(rc));
    if (deleted == 0)
        return errdetail_set(e, CITRUS_ENOTFOUND, "no API key %s", id);
    pthread_rwlock_wrlock(&k->rw); /* refused on this node at once */
    map_delete(k, id, *rev);
    pthread_rwlock_unlock(&k->rw);
    return 0;
}

int keyring_list(keyring *k, json_t **items, int64_t *rev, errdetail *e)
{
    kv_range_req req = {.key = AUTH_KEYS_PREFIX, .prefix = true, .limit = KEYRING_MAX_KEYS};
    kv_range_res res;
    int rc = store_range(k->st, &req, &res);
    if (rc < 0)
        return errdetail_set(e, rc, "cannot read the API keys: %s", citrus_strerror(rc));
    *items = json_array();
    *rev = res.revision;
    for (size_t i = 0; *items && i < res.count; i++) {
        json_t *j = NULL;
        kentry *ke = entry_parse(&res.items[i], &j);
        if (!ke)
            continue;
        int64_t used = ke->stored_used_ms;
        pthread_rwlock_rdlock(&k->rw);
        bool found;
        size_t slot = find_slot(k, ke->id, &found);
        if (found && atomic_load(&k->entries[slot]->last_used_ms) > used)
            used = atomic_load(&k->entries[slot]->last_used_ms);
        pthread_rwlock_unlock(&k->rw);
        json_array_append_new(
            *items, entry_view(ke, json_string_value(json_object_get(j, "name")),
                               json_integer_value(json_object_get(j, "created_ms")), used));
        entry_free(ke);
        json_decref(j);
    }
    kv_range_res_free(&res);
    return *items ? 0 : errdetail_set(e, CITRUS_ENOMEM, "out of memory");
}
