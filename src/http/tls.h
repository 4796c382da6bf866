/* http/tls.h — the HTTPS side of the server (GnuTLS, which libmicrohttpd is
 * built with): a certificate chain and key read from PEM files, an optional
 * client CA that every client certificate must chain to, and reload from
 * the same files.
 *
 * Reload without dropping connections: the credentials are a generation,
 * a refcounted object; the server hands libmicrohttpd a certificate
 * callback (MHD_OPTION_HTTPS_CERT_CALLBACK) that gives each new handshake
 * the current generation, and a reload swaps the current one under a
 * mutex. A connection holds the generation its handshake used until it
 * closes (GnuTLS keeps pointing at its certificate for the session's
 * life), so open connections, keep-alive ones included, go on untouched
 * while new ones get the new certificate. Restarting the daemon instead
 * would close every connection.
 *
 * Client certificates are verified in the handshake (a session verify
 * function against our own trust list, so the client CA reloads with the
 * rest): none, one from another CA, an expired or not yet valid one all
 * fail the handshake; nothing reaches a handler. */
#ifndef CITRUS_HTTP_TLS_H
#define CITRUS_HTTP_TLS_H

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <stddef.h>

#include "core/errdetail.h"

typedef struct http_tls http_tls;
/* Per connection: the generation it uses and what its verified client
 * certificate names. */
typedef struct http_tls_conn http_tls_conn;

/* Names of a verified client certificate kept per connection. */
#define HTTP_TLS_MAX_NAMES 8
#define HTTP_TLS_NAME_MAX 256

/* Reads the files (cert_file: the chain, leaf first; key_file: its key;
 * client_ca_file: NULL or the CAs client certificates must chain to).
 * what names the setting in messages ("server.tls"). Errors name the file
 * and the problem, never the key's contents: CITRUS_EINVAL. */
int http_tls_new(const char *what, const char *cert_file, const char *key_file,
                 const char *client_ca_file, http_tls **out, errdetail *e);
/* Reads the files again; on success new handshakes use them, on failure
 * the current ones stay (e says why). Any thread. */
int http_tls_reload(http_tls *t, errdetail *e);
/* Once every connection is closed. NULL is a no-op. */
void http_tls_free(http_tls *t);

/* A connection began (before its handshake): sets up its session (the
 * callback's context, the client certificate requirement). Returns the connection's state, or NULL
 * (out of memory: the handshake then fails). */
http_tls_conn *http_tls_conn_start(http_tls *t, gnutls_session_t session);
/* The connection closed: releases its generation. NULL is a no-op. */
void http_tls_conn_end(http_tls_conn *c);
/* The verified client certificate's CN and DNS/email/URI SANs (pointers
 * valid while the connection lives); returns how many were stored, at
 * most max. */
size_t http_tls_conn_subjects(const http_tls_conn *c, const char **out, size_t max);

/* For MHD_OPTION_HTTPS_CERT_CALLBACK (a gnutls_certificate_retrieve_function2). */
int http_tls_retrieve(gnutls_session_t session, const gnutls_datum_t *req_ca_rdn, int nreqs,
                      const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                      gnutls_pcert_st **pcert, unsigned int *pcert_length,
                      gnutls_privkey_t *privkey);

#endif
