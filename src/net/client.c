/* net/client.c — blocking HTTP requests over one reused libcurl handle. */
#include "net/client.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "citrus/errors.h"
#include "core/strbuf.h"

struct client {
    CURL *curl;
    char *endpoint; /* no trailing '/' */
    long timeout_ms;
    long connect_timeout_ms;
    const atomic_bool *abort_flag; /* kept, read on the requesting thread */
    char *auth_header;             /* "Authorization: Bearer ...", or NULL */
    char *cacert, *cert, *key;     /* TLS files, or NULL */
    /* The socket libcurl opened last and has not closed, for
     * client_interrupt (from another thread): guarded by sock_mu. */
    pthread_mutex_t sock_mu;
    curl_socket_t sock;
    char curl_err[CURL_ERROR_SIZE]; /* libcurl's detail for the last transfer */
    char errbuf[CURL_ERROR_SIZE + 512];
};

/* Where a request in flight collects its answer: the body, and the
 * headers as "name\0value\0" one after the other (split at the end). */
typedef struct collect {
    strbuf body;
    strbuf heads;
    size_t nheaders;
} collect;

static size_t on_body(char *p, size_t size, size_t n, void *ctx)
{
    collect *k = ctx;
    return strbuf_add(&k->body, p, size * n) == 0 ? size * n : 0;
}

static bool is_blank(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* Called once per header line, status lines included. A status line starts a
 * new response (after a 100 Continue, say), so it drops what came before.
 * A line holding a NUL is not HTTP: it is left out. */
static size_t on_header(char *p, size_t size, size_t n, void *ctx)
{
    collect *k = ctx;
    size_t len = size * n;
    if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) {
        strbuf_reset(&k->heads);
        k->nheaders = 0;
        return len;
    }
    const char *colon = memchr(p, ':', len);
    if (!colon || memchr(p, '\0', len))
        return len; /* the blank line ending the headers */
    const char *v = colon + 1, *end = p + len;
    while (v < end && is_blank(*v))
        v++;
    while (end > v && is_blank(end[-1]))
        end--;
    strbuf_add(&k->heads, p, (size_t)(colon - p));
    strbuf_add(&k->heads, "", 1);
    strbuf_add(&k->heads, v, (size_t)(end - v));
    strbuf_add(&k->heads, "", 1);
    k->nheaders++;
    return k->heads.err ? 0 : len;
}

/* Hands the collected headers over to resp: one block of text, and the
 * array of names and values pointing into it. */
static int collect_headers(collect *k, client_response *resp)
{
    resp->header_text = strbuf_take(&k->heads, NULL);
    resp->headers = calloc(k->nheaders ? k->nheaders : 1, sizeof(*resp->headers));
    if (!resp->header_text || !resp->headers)
        return CITRUS_ENOMEM;
    const char *t = resp->header_text;
    for (; resp->nheaders < k->nheaders; resp->nheaders++) {
        client_header *h = &resp->headers[resp->nheaders];
        h->name = t;
        h->value = t + strlen(t) + 1;
        t = h->value + strlen(h->value) + 1;
    }
    return 0;
}

static int on_progress(void *ctx, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    const client *c = ctx;
    return c->abort_flag && atomic_load(c->abort_flag) ? 1 : 0;
}

/* libcurl opens and closes its sockets through these, so that the one in
 * use is known to client_interrupt. */
static curl_socket_t on_open_socket(void *ctx, curlsocktype purpose, struct curl_sockaddr *a)
{
    (void)purpose;
    client *c = ctx;
    if (c->abort_flag && atomic_load(c->abort_flag))
        return CURL_SOCKET_BAD; /* interrupted already: no new connection */
    curl_socket_t s = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    if (s == CURL_SOCKET_BAD)
        return s;
    pthread_mutex_lock(&c->sock_mu);
    c->sock = s;
    pthread_mutex_unlock(&c->sock_mu);
    return s;
}

static int on_close_socket(void *ctx, curl_socket_t s)
{
    client *c = ctx;
    pthread_mutex_lock(&c->sock_mu);
    if (c->sock == s)
        c->sock = CURL_SOCKET_BAD;
    int rc = close(s);
    pthread_mutex_unlock(&c->sock_mu);
    return rc;
}

void client_interrupt(client *c)
{
    pthread_mutex_lock(&c->sock_mu);
    if (c->sock != CURL_SOCKET_BAD)
        shutdown(c->sock, SHUT_RDWR); /* the transfer sees the end at once */
    pthread_mutex_unlock(&c->sock_mu);
}

const char *client_default_endpoint(void)
{
    const char *env = getenv("CITRUS_ENDPOINT");
    return env && env[0] ? env : CLIENT_DEFAULT_ENDPOINT;
}

client *client_new(const char *endpoint)
{
    if (strncmp(endpoint, "http://", 7) != 0 && strncmp(endpoint, "https://", 8) != 0)
        return NULL;
    client *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->endpoint = strdup(endpoint);
    if (!c->endpoint)
        goto fail_client;
    size_t n = strlen(c->endpoint);
    while (n > 0 && c->endpoint[n - 1] == '/')
        c->endpoint[--n] = '\0';
    /* Reference-counted by libcurl; balanced in client_free. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        goto fail_endpoint;
    c->curl = curl_easy_init();
    if (!c->curl)
        goto fail_global;
    c->timeout_ms = CLIENT_REQUEST_TIMEOUT_MS;
    c->connect_timeout_ms = CLIENT_CONNECT_TIMEOUT_MS;
    c->sock = CURL_SOCKET_BAD;
    pthread_mutex_init(&c->sock_mu, NULL);
    return c;

fail_global:
    curl_global_cleanup();
fail_endpoint:
    free(c->endpoint);
fail_client:
    free(c);
    return NULL;
}

/* Frees a string that holds a secret, wiping it first. */
static void free_secret(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

void client_free(client *c)
{
    if (!c)
        return;
    free_secret(c->auth_header);
    free(c->cacert);
    free(c->cert);
    free(c->key);
    curl_easy_cleanup(c->curl);
    curl_global_cleanup();
    pthread_mutex_destroy(&c->sock_mu);
    free(c->endpoint);
    free(c);
}

const char *client_endpoint(const client *c)
{
    return c->endpoint;
}

void client_set_timeout_ms(client *c, long ms)
{
    c->timeout_ms = ms;
}

void client_set_connect_timeout_ms(client *c, long ms)
{
    c->connect_timeout_ms = ms;
}

int client_check_token(const char *token)
{
    size_t n = strnlen(token, CLIENT_TOKEN_MAX + 1);
    if (n > CLIENT_TOKEN_MAX)
        return CITRUS_EINVAL;
    /* A token is one word of visible ASCII: anything else could end the
     * header line and start another. */
    for (size_t i = 0; i < n; i++)
        if (token[i] <= ' ' || token[i] > '~')
            return CITRUS_EINVAL;
    return 0;
}

int client_set_token(client *c, const char *token)
{
    char *h = NULL;
    if (token && token[0]) {
        if (client_check_token(token) < 0)
            return CITRUS_EINVAL;
        static const char prefix[] = "Authorization: Bearer ";
        size_t n = strlen(token);
        if (!(h = malloc(sizeof(prefix) + n)))
            return CITRUS_ENOMEM;
        memcpy(h, prefix, sizeof(prefix) - 1);
        memcpy(h + sizeof(prefix) - 1, token, n + 1);
    }
    free_secret(c->auth_header);
    c->auth_header = h;
    return 0;
}

/* *dst = a copy of src (NULL or "" for none); false out of memory. */
static bool copy_path(char **dst, const char *src)
{
    *dst = src && src[0] ? strdup(src) : NULL;
    return *dst || !(src && src[0]);
}

int client_set_tls(client *c, const char *cacert, const char *cert, const char *key)
{
    char *ca, *ce, *k;
    bool ok = copy_path(&ca, cacert);
    ok = copy_path(&ce, cert) && ok;
    ok = copy_path(&k, key) && ok;
    if (!ok) {
        free(ca);
        free(ce);
        free(k);
        return CITRUS_ENOMEM;
    }
    free(c->cacert);
    free(c->cert);
    free(c->key);
    c->cacert = ca;
    c->cert = ce;
    c->key = k;
    return 0;
}

void client_set_abort_flag(client *c, const atomic_bool *flag)
{
    c->abort_flag = flag;
}

const char *client_error(const client *c)
{
    return c->errbuf;
}

/* Maps a transport failure to a Citrus code, with the message in c->errbuf. */
static int transport_error(client *c, CURLcode cc, const char *url)
{
    const char *detail = c->curl_err[0] ? c->curl_err : curl_easy_strerror(cc);
    switch (cc) {
    case CURLE_OPERATION_TIMEDOUT:
        snprintf(c->errbuf, sizeof(c->errbuf), "%s: timed out: %s", url, detail);
        return CITRUS_ETIMEOUT;
    case CURLE_ABORTED_BY_CALLBACK:
        snprintf(c->errbuf, sizeof(c->errbuf), "%s: interrupted", url);
        return CITRUS_ECLOSED;
    case CURLE_OUT_OF_MEMORY:
        snprintf(c->errbuf, sizeof(c->errbuf), "out of memory");
        return CITRUS_ENOMEM;
    default:
        snprintf(c->errbuf, sizeof(c->errbuf), "%s: %s", url, detail);
        return CITRUS_EUNAVAILABLE;
    }
}

int client_request(client *c, const char *method, const char *path, const void *body, size_t len,
                   const char *const *headers, client_response *resp)
{
    memset(resp, 0, sizeof(*resp));
    c->errbuf[0] = c->curl_err[0] = '\0';
    if (path[0] != '/') {
        snprintf(c->errbuf, sizeof(c->errbuf), "path must start with '/': %s", path);
        return CITRUS_EINVAL;
    }
    int rc = CITRUS_ENOMEM;
    collect k = {0};
    struct curl_slist *hl = NULL, *tmp;
    size_t ulen = strlen(c->endpoint) + strlen(path) + 1;
    char *url = malloc(ulen);
    if (!url)
        goto out;
    snprintf(url, ulen, "%s%s", c->endpoint, path);

    /* "Expect:" stops libcurl from waiting for 100 Continue on big bodies. */
    if (!(tmp = curl_slist_append(hl, "Expect:")))
        goto out_headers;
    hl = tmp;
    if (c->auth_header) {
        /* libcurl copies the string into the list: wiped with it below. */
        if (!(tmp = curl_slist_append(hl, c->auth_header)))
            goto out_headers;
        hl = tmp;
    }
    bool typed = false;
    for (size_t i = 0; headers && headers[i]; i++) {
        if (!(tmp = curl_slist_append(hl, headers[i])))
            goto out_headers;
        hl = tmp;
        typed |= strncasecmp(headers[i], "Content-Type:", 13) == 0;
    }
    /* libcurl would call a POST's body a form, which the server refuses as
     * a cross-site request: every POST body of ours is JSON (or none). */
    if (!typed && strcmp(method, "POST") == 0) {
        if (!(tmp = curl_slist_append(hl, "Content-Type: application/json")))
            goto out_headers;
        hl = tmp;
    }

    /* Reset drops the previous request's options but keeps live connections. */
    CURL *h = c->curl;
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->curl_err);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "citrus-cli/" CITRUS_VERSION);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    /* Peer and host verification stay on (libcurl's default, reset above):
     * these only say what to verify against and what to present. */
    if (c->cacert)
        curl_easy_setopt(h, CURLOPT_CAINFO, c->cacert);
    if (c->cert) {
        curl_easy_setopt(h, CURLOPT_SSLCERT, c->cert);
        curl_easy_setopt(h, CURLOPT_SSLKEY, c->key ? c->key : c->cert);
    }
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &k);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &k);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, c);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, c);
    curl_easy_setopt(h, CURLOPT_CLOSESOCKETFUNCTION, on_close_socket);
    curl_easy_setopt(h, CURLOPT_CLOSESOCKETDATA, c);
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
        if (body || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
            /* POSTFIELDS sends the body as is, with a Content-Length. */
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
        }
    }

    CURLcode cc = curl_easy_perform(h);
    if (cc != CURLE_OK && c->abort_flag && atomic_load(c->abort_flag))
        cc = CURLE_ABORTED_BY_CALLBACK; /* client_interrupt cut it short */
    if (k.heads.err || k.body.err) {
        snprintf(c->errbuf, sizeof(c->errbuf), "out of memory");
        rc = CITRUS_ENOMEM;
        goto out_collect;
    }
    if (cc != CURLE_OK) {
        rc = transport_error(c, cc, url);
        goto out_collect;
    }
    /* An empty body is "" too (strbuf_take allocates it). */
    if (!(resp->body = strbuf_take(&k.body, &resp->body_len)) || collect_headers(&k, resp) < 0) {
        client_response_free(resp);
        goto out_collect;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
    rc = 0;

out_collect:
    strbuf_free(&k.heads);
    strbuf_free(&k.body);
out_headers:
    for (struct curl_slist *l = hl; l; l = l->next)
        if (strncasecmp(l->data, "Authorization:", 14) == 0)
            explicit_bzero(l->data, strlen(l->data));
    curl_slist_free_all(hl);
    free(url);
out:
    if (rc == CITRUS_ENOMEM && !c->errbuf[0])
        snprintf(c->errbuf, sizeof(c->errbuf), "out of memory");
    return rc;
}

void client_response_free(client_response *r)
{
    if (!r)
        return;
    free(r->headers);
    free(r->header_text);
    free(r->body);
    memset(r, 0, sizeof(*r));
}

const char *client_response_header(const client_response *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    return NULL;
}

json_t *client_response_json(const client_response *r, errdetail *e)
{
    json_error_t je;
    json_t *j = json_loadb(r->body, r->body_len, 0, &je);
    if (!j) {
        errdetail_set(e, CITRUS_EBADJSON, "response is not JSON: %s", je.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        errdetail_set(e, CITRUS_EBADJSON, "response is not a JSON object");
        return NULL;
    }
    return j;
}

void client_response_error(const client_response *r, char *out, size_t len)
{
    json_t *j = json_loadb(r->body, r->body_len, 0, NULL);
    json_t *e = json_object_get(j, "error");
    const char *code = json_string_value(json_object_get(e, "code"));
    const char *msg = json_string_value(json_object_get(e, "message"));
    if (!code) {
        /* Not one of ours (a proxy, say): show the start of the body. */
        int n = (int)(r->body_len < 200 ? r->body_len : 200);
        while (n > 0 && is_blank(r->body[n - 1]))
            n--;
        snprintf(out, len, "http_%ld: %.*s", r->status, n, n ? r->body : "(empty response)");
        json_decref(j);
        return;
    }
    int n = snprintf(out, len, "%s: %s", code, msg ? msg : "");
    static const char *const extras[] = {"mod_revision", "compact_revision"};
    for (size_t i = 0; i < sizeof(extras) / sizeof(extras[0]); i++) {
        json_t *x = json_object_get(e, extras[i]);
        if (json_is_integer(x) && n >= 0 && (size_t)n < len)
            n += snprintf(out + n, len - (size_t)n, " (%s %" JSON_INTEGER_FORMAT ")", extras[i],
                          json_integer_value(x));
    }
    json_decref(j);
}

static bool is_unreserved(unsigned char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '.' || ch == '_' || ch == '~';
}

/* Percent-encodes s, leaving '/' literal when keep_slash. */
static char *escape(const char *s, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *out = malloc(3 * n + 1), *o = out;
    if (!out)
        return NULL;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (is_unreserved(*p) || (keep_slash && *p == '/')) {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    *o = '\0';
    return out;
}

char *client_escape_path(const char *s)
{
    return escape(s, true);
}

char *client_escape_query(const char *s)
{
    return escape(s, false);
}
