/* support_fake_http.c — scripted loopback HTTP server (see the header). */
#include "support_fake_http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct fake_http {
    struct MHD_Daemon *d;
    fake_http_fn fn;
    void *ctx;
    char url[64];
    pthread_mutex_t mu;
    unsigned next_conn;
};

/* Per request: the raw target and the body gathered so far. */
typedef struct pending {
    char *target;
    char *body;
    size_t len;
    int calls;
} pending;

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    pending *p = calloc(1, sizeof(*p));
    if (p)
        p->target = strdup(uri);
    return p;
}

static void on_done(void *cls, struct MHD_Connection *conn, void **req_cls,
                    enum MHD_RequestTerminationCode code)
{
    pending *p = *req_cls;
    if (p) {
        free(p->target);
        free(p->body);
        free(p);
    }
    *req_cls = NULL;
}

static void on_conn(void *cls, struct MHD_Connection *conn, void **socket_ctx,
                    enum MHD_ConnectionNotificationCode code)
{
    fake_http *f = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        pthread_mutex_lock(&f->mu);
        *socket_ctx = (void *)(uintptr_t)++f->next_conn;
        pthread_mutex_unlock(&f->mu);
    }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **req_cls)
{
    fake_http *f = cls;
    pending *p = *req_cls;
    if (!p)
        return MHD_NO;
    if (p->calls++ == 0)
        return MHD_YES; /* headers only: the body (if any) comes next */
    if (*upload_size) {
        char *b = realloc(p->body, p->len + *upload_size + 1);
        if (!b)
            return MHD_NO;
        memcpy(b + p->len, upload_data, *upload_size);
        p->len += *upload_size;
        b[p->len] = '\0';
        p->body = b;
        *upload_size = 0;
        return MHD_YES;
    }
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    fake_http_req req = {
        .method = method,
        .target = p->target,
        .content_type = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type"),
        .accept = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Accept"),
        .body = p->body ? p->body : "",
        .body_len = p->len,
        .conn_id = ci ? (unsigned)(uintptr_t)ci->socket_context : 0,
    };
    fake_http_reply out = {0};
    f->fn(f->ctx, &req, &out);
    if (out.delay_ms) {
        struct timespec ts = {out.delay_ms / 1000, (long)(out.delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    size_t len = out.body ? (out.body_len ? out.body_len : strlen(out.body)) : 0;
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        len, (void *)(out.body ? out.body : ""), MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    if (out.header) {
        const char *colon = strchr(out.header, ':');
        char name[128];
        snprintf(name, sizeof(name), "%.*s", (int)(colon - out.header), out.header);
        MHD_add_response_header(resp, name, colon + 2);
    }
    enum MHD_Result r = MHD_queue_response(conn, out.status ? out.status : 200, resp);
    MHD_destroy_response(resp);
    return r;
}

fake_http *fake_http_start(fake_http_fn fn, void *ctx)
{
    fake_http *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->fn = fn;
    f->ctx = ctx;
    pthread_mutex_init(&f->mu, NULL);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    f->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0,
                            NULL, NULL, on_request, f, MHD_OPTION_SOCK_ADDR, &sa,
                            MHD_OPTION_URI_LOG_CALLBACK, on_uri, f, MHD_OPTION_NOTIFY_COMPLETED,
                            on_done, f, MHD_OPTION_NOTIFY_CONNECTION, on_conn, f, MHD_OPTION_END);
    const union MHD_DaemonInfo *di =
        f->d ? MHD_get_daemon_info(f->d, MHD_DAEMON_INFO_BIND_PORT) : NULL;
    if (!di) {
        fake_http_stop(f);
        return NULL;
    }
    snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%u", (unsigned)di->port);
    return f;
}

const char *fake_http_url(const fake_http *f)
{
    return f->url;
}

void fake_http_stop(fake_http *f)
{
    if (!f)
        return;
    if (f->d)
        MHD_stop_daemon(f->d);
    pthread_mutex_destroy(&f->mu);
    free(f);
}
