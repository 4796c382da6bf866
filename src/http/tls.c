/* http/tls.c — HTTPS credentials: PEM files into GnuTLS, generations
 * swapped on reload, client certificates verified in the handshake (see
 * tls.h). */
#include "http/tls.h"

#include <errno.h>
#include <gnutls/x509.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "citrus/errors.h"
#include "obs/log.h"

#define MAX_CHAIN 16

/* One reading of the files. refs: the server's current pointer and every
 * connection whose handshake took it; guarded by the owner's mu. */
typedef struct tls_gen {
    unsigned refs;
    gnutls_pcert_st pcert[MAX_CHAIN];
    unsigned npcert;
    gnutls_privkey_t key;
    gnutls_x509_trust_list_t ca; /* NULL without a client CA */
} tls_gen;

struct http_tls {
    char *what; /* "server.tls": names the settings in messages */
    char *cert_file, *key_file, *ca_file;
    pthread_mutex_t mu;
    tls_gen *cur;
};

struct http_tls_conn {
    http_tls *t;
    tls_gen *gen; /* taken by the handshake's certificate callback */
    char names[HTTP_TLS_MAX_NAMES][HTTP_TLS_NAME_MAX];
    size_t nnames;
};

static void gen_free(tls_gen *g)
{
    if (!g)
        return;
    for (unsigned i = 0; i < g->npcert; i++)
        gnutls_pcert_deinit(&g->pcert[i]);
    if (g->key)
        gnutls_privkey_deinit(g->key);
    if (g->ca)
        gnutls_x509_trust_list_deinit(g->ca, 1);
    free(g);
}

static void gen_release(http_tls *t, tls_gen *g)
{
    if (!g)
        return;
    pthread_mutex_lock(&t->mu);
    bool last = --g->refs == 0;
    pthread_mutex_unlock(&t->mu);
    if (last)
        gen_free(g);
}

/* Reads a whole file; the message names the setting and the path (and why
 * it cannot be read), never the contents. */
static int load(const http_tls *t, const char *field, const char *path, gnutls_datum_t *d,
                errdetail *e)
{
    d->data = NULL;
    d->size = 0;
    if (access(path, R_OK) < 0)
        return errdetail_set(e, CITRUS_EINVAL, "%s.%s %s: cannot read: %s", t->what, field, path,
                             strerror(errno));
    int rc = gnutls_load_file(path, d);
    if (rc < 0)
        return errdetail_set(e, CITRUS_EINVAL, "%s.%s %s: cannot read: %s", t->what, field, path,
                             gnutls_strerror(rc));
    return 0;
}

static void unload(gnutls_datum_t *d, bool secret)
{
    if (d->data && secret)
        gnutls_memset(d->data, 0, d->size);
    gnutls_free(d->data);
    d->data = NULL;
}

/* Whether the key is the certificate's: their public keys' ids match. */
static bool key_matches(gnutls_privkey_t key, gnutls_pubkey_t cert_pub)
{
    gnutls_pubkey_t pub;
    if (gnutls_pubkey_init(&pub) < 0)
        return false;
    unsigned char a[64], b[64];
    size_t na = sizeof(a), nb = sizeof(b);
    bool ok = gnutls_pubkey_import_privkey(pub, key, 0, 0) == 0 &&
              gnutls_pubkey_get_key_id(pub, 0, a, &na) == 0 &&
              gnutls_pubkey_get_key_id(cert_pub, 0, b, &nb) == 0 && na == nb &&
              memcmp(a, b, na) == 0;
    gnutls_pubkey_deinit(pub);
    return ok;
}

static int load_chain(const http_tls *t, tls_gen *g, errdetail *e)
{
    gnutls_datum_t d;
    int rc = load(t, "cert_file", t->cert_file, &d, e);
    if (rc < 0)
        return rc;
    unsigned n = MAX_CHAIN;
    int grc = gnutls_pcert_list_import_x509_raw(g->pcert, &n, &d, GNUTLS_X509_FMT_PEM, 0);
    unload(&d, false);
    if (grc < 0 || n == 0)
        return errdetail_set(e, CITRUS_EINVAL, "%s.cert_file %s: not a PEM certificate chain%s%s",
                             t->what, t->cert_file, grc < 0 ? ": " : "",
                             grc < 0 ? gnutls_strerror(grc) : "");
    g->npcert = n;
    return 0;
}

static int load_key(const http_tls *t, tls_gen *g, errdetail *e)
{
    gnutls_datum_t d;
    int rc = load(t, "key_file", t->key_file, &d, e);
    if (rc < 0)
        return rc;
    int grc = gnutls_privkey_init(&g->key);
    if (grc == 0)
        grc = gnutls_privkey_import_x509_raw(g->key, &d, GNUTLS_X509_FMT_PEM, NULL, 0);
    unload(&d, true);
    if (grc < 0)
        return errdetail_set(e, CITRUS_EINVAL,
                             "%s.key_file %s: not an unencrypted PEM private key: %s", t->what,
                             t->key_file, gnutls_strerror(grc));
    if (!key_matches(g->key, g->pcert[0].pubkey))
        return errdetail_set(e, CITRUS_EINVAL, "%s.key_file %s: not the key of %s.cert_file %s",
                             t->what, t->key_file, t->what, t->cert_file);
    return 0;
}

static int load_ca(const http_tls *t, tls_gen *g, errdetail *e)
{
    gnutls_datum_t d;
    int rc = load(t, "client_ca_file", t->ca_file, &d, e);
    if (rc < 0)
        return rc;
    int grc = gnutls_x509_trust_list_init(&g->ca, 0);
    if (grc == 0)
        grc = gnutls_x509_trust_list_add_trust_mem(g->ca, &d, NULL, GNUTLS_X509_FMT_PEM, 0, 0);
    unload(&d, false);
    if (grc <= 0)
        return errdetail_set(e, CITRUS_EINVAL, "%s.client_ca_file %s: no PEM certificate%s%s",
                             t->what, t->ca_file, grc < 0 ? ": " : "",
                             grc < 0 ? gnutls_strerror(grc) : "");
    return 0;
}

/* A new generation from the files, with the caller's reference. */
static int gen_load(const http_tls *t, tls_gen **out, errdetail *e)
{
    *out = NULL;
    tls_gen *g = calloc(1, sizeof(*g));
    if (!g)
        return errdetail_set(e, CITRUS_ENOMEM, "%s: out of memory", t->what);
    g->refs = 1;
    int rc = load_chain(t, g, e);
    if (rc == 0)
        rc = load_key(t, g, e);
    if (rc == 0 && t->ca_file)
        rc = load_ca(t, g, e);
    if (rc < 0) {
        gen_free(g);
        return rc;
    }
    *out = g;
    return 0;
}

int http_tls_new(const char *what, const char *cert_file, const char *key_file,
                 const char *client_ca_file, http_tls **out, errdetail *e)
{
    *out = NULL;
    if (!cert_file || !*cert_file || !key_file || !*key_file)
        return errdetail_set(e, CITRUS_EINVAL, "%s: cert_file and key_file go together", what);
    if (gnutls_check_version("3.6.0") == NULL)
        return errdetail_set(e, CITRUS_EINVAL, "%s: GnuTLS 3.6 or later is needed", what);
    http_tls *t = calloc(1, sizeof(*t));
    if (!t)
        return errdetail_set(e, CITRUS_ENOMEM, "%s: out of memory", what);
    pthread_mutex_init(&t->mu, NULL);
    t->what = strdup(what);
    t->cert_file = strdup(cert_file);
    t->key_file = strdup(key_file);
    t->ca_file = client_ca_file && *client_ca_file ? strdup(client_ca_file) : NULL;
    int rc = 0;
    if (!t->what || !t->cert_file || !t->key_file ||
        (client_ca_file && *client_ca_file && !t->ca_file))
        rc = errdetail_set(e, CITRUS_ENOMEM, "%s: out of memory", what);
    if (rc == 0)
        rc = gen_load(t, &t->cur, e);
    if (rc < 0) {
        http_tls_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

int http_tls_reload(http_tls *t, errdetail *e)
{
    tls_gen *g;
    int rc = gen_load(t, &g, e);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&t->mu);
    tls_gen *old = t->cur;
    t->cur = g;
    pthread_mutex_unlock(&t->mu);
    gen_release(t, old); /* freed now, or by the last connection that uses it */
    return 0;
}

void http_tls_free(http_tls *t)
{
    if (!t)
        return;
    if (t->cur)
        gen_release(t, t->cur);
    pthread_mutex_destroy(&t->mu);
    free(t->what);
    free(t->cert_file);
    free(t->key_file);
    free(t->ca_file);
    free(t);
}

/* ---- per connection ---- */

static void add_name(http_tls_conn *c, const char *name, size_t len)
{
    /* A name with a NUL inside ("admin\0.evil.example") or too long for the
     * mapping is never anyone's. */
    if (len == 0 || len >= HTTP_TLS_NAME_MAX || strlen(name) != len ||
        c->nnames >= HTTP_TLS_MAX_NAMES)
        return;
    memcpy(c->names[c->nnames], name, len);
    c->names[c->nnames][len] = '\0';
    c->nnames++;
}

/* The CN and the DNS, email and URI SANs of the verified leaf. */
static void collect_names(http_tls_conn *c, gnutls_x509_crt_t crt)
{
    char buf[HTTP_TLS_NAME_MAX];
    size_t size = sizeof(buf);
    if (gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, buf, &size) == 0)
        add_name(c, buf, size);
    for (unsigned seq = 0; seq < 64; seq++) {
        size = sizeof(buf) - 1;
        int type = gnutls_x509_crt_get_subject_alt_name(crt, seq, buf, &size, NULL);
        if (type == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
            break;
        if (type == GNUTLS_E_SHORT_MEMORY_BUFFER)
            continue; /* too long to be mapped */
        if (type < 0)
            break;
        buf[size] = '\0';
        if (type == GNUTLS_SAN_DNSNAME || type == GNUTLS_SAN_RFC822NAME || type == GNUTLS_SAN_URI)
            add_name(c, buf, size);
    }
}

static void log_refused(const http_tls_conn *c, const char *why)
{
    log_warn("http", "client certificate refused",
             json_pack("{s:s,s:s}", "listener", c ? c->t->what : "?", "reason", why));
}

/* The session's verify function: runs in the handshake once the client's
 * chain arrived; non-zero fails the handshake. */
static int verify_peer(gnutls_session_t session)
{
    http_tls_conn *c = gnutls_session_get_ptr(session);
    if (!c || !c->gen || !c->gen->ca) {
        log_refused(c, "no client CA for this connection");
        return -1;
    }
    unsigned n = 0;
    const gnutls_datum_t *raw = gnutls_certificate_get_peers(session, &n);
    if (!raw || n == 0) {
        log_refused(c, "no client certificate");
        return -1;
    }
    if (n > MAX_CHAIN) {
        log_refused(c, "client certificate chain too long");
        return -1;
    }
    gnutls_x509_crt_t crts[MAX_CHAIN] = {0};
    unsigned have = 0;
    int rc = 0;
    for (unsigned i = 0; i < n && rc == 0; i++) {
        rc = gnutls_x509_crt_init(&crts[i]);
        if (rc == 0) {
            have = i + 1;
            rc = gnutls_x509_crt_import(crts[i], &raw[i], GNUTLS_X509_FMT_DER);
        }
    }
    unsigned status = 0;
    gnutls_typed_vdata_st purpose = {.type = GNUTLS_DT_KEY_PURPOSE_OID,
                                     .data = (unsigned char *)GNUTLS_KP_TLS_WWW_CLIENT};
    if (rc == 0)
        rc = gnutls_x509_trust_list_verify_crt2(c->gen->ca, crts, n, &purpose, 1, 0, &status, NULL);
    bool ok = rc == 0 && status == 0;
    if (ok) {
        collect_names(c, crts[0]);
    } else if (rc < 0) {
        log_refused(c, gnutls_strerror(rc));
    } else {
        gnutls_datum_t why = {0};
        if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &why, 0) == 0) {
            log_refused(c, (const char *)why.data);
            gnutls_free(why.data);
        } else {
            log_refused(c, "not verified");
        }
    }
    for (unsigned i = 0; i < have; i++)
        gnutls_x509_crt_deinit(crts[i]);
    return ok ? 0 : -1;
}

http_tls_conn *http_tls_conn_start(http_tls *t, gnutls_session_t session)
{
    http_tls_conn *c = calloc(1, sizeof(*c));
    /* libmicrohttpd reads the session pointer only for PSK credentials,
     * which this server does not use; NULL makes the handshake fail. */
    gnutls_session_set_ptr(session, c);
    if (!c)
        return NULL;
    c->t = t;
    if (t->ca_file) {
        gnutls_certificate_server_set_request(session, GNUTLS_CERT_REQUIRE);
        gnutls_session_set_verify_function(session, verify_peer);
    }
    return c;
}

void http_tls_conn_end(http_tls_conn *c)
{
    if (!c)
        return;
    gen_release(c->t, c->gen);
    free(c);
}

size_t http_tls_conn_subjects(const http_tls_conn *c, const char **out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; c && i < c->nnames && n < max; i++)
        out[n++] = c->names[i];
    return n;
}

int http_tls_retrieve(gnutls_session_t session, const gnutls_datum_t *req_ca_rdn, int nreqs,
                      const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                      gnutls_pcert_st **pcert, unsigned int *pcert_length,
                      gnutls_privkey_t *privkey)
{
    (void)req_ca_rdn;
    (void)nreqs;
    (void)pk_algos;
    (void)pk_algos_length;
    http_tls_conn *c = gnutls_session_get_ptr(session);
    if (!c)
        return -1;
    if (!c->gen) { /* the first handshake of the connection fixes its generation */
        pthread_mutex_lock(&c->t->mu);
        c->gen = c->t->cur;
        c->gen->refs++;
        pthread_mutex_unlock(&c->t->mu);
    }
    *pcert = c->gen->pcert;
    *pcert_length = c->gen->npcert;
    *privkey = c->gen->key;
    return 0;
}
