/* catalog/etcd_client.h — HTTP/JSON transport to etcd's v3 gRPC gateway.
 *
 * One I/O thread runs a libcurl multi loop. Every call, unary or streaming,
 * is a transfer on it; the multi's connection cache keeps HTTP/1.1
 * connections open for reuse, so concurrent calls use concurrent
 * connections and none pays a new handshake. Synchronous calls enqueue and
 * wait; asynchronous ones complete through a callback on the I/O thread.
 *
 * Endpoints: a call goes to the endpoint that last worked. When it cannot
 * connect (nothing was sent), or the member refuses it for having no leader,
 * it moves on to the next endpoint, and the one that answers is remembered
 * for later calls. After a request was sent, what a failure means depends
 * on the call's kind (etcd_call_kind).
 *
 * Every request but ETCD_LOCAL ones carries the gRPC metadata
 * hasleader=true: a member without a leader refuses it at once
 * ("etcdserver: no leader") instead of holding it until a timeout, and a
 * watch stream on such a member ends.
 *
 * Ownership: paths are static strings; request bodies are copied or, where
 * said, transferred. Callbacks run on the I/O thread and must not block;
 * they must not make synchronous calls (those return CITRUS_EINTERNAL
 * there). */
#ifndef CITRUS_CATALOG_ETCD_CLIENT_H
#define CITRUS_CATALOG_ETCD_CLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/errdetail.h"
#include "sys/clock.h"

typedef struct etcd_client etcd_client;
typedef struct etcd_stream etcd_stream;

typedef struct etcd_client_options {
    const char *const *endpoints; /* "http://host:port", at least one; copied */
    size_t nendpoints;
    int64_t connect_timeout_ms; /* per connection attempt; 0 = 1000 */
    int64_t request_timeout_ms; /* per unary attempt, connect included; 0 = 5000 */
    long max_connections;       /* idle connections kept for reuse; 0 = 32 */
    const sysclock *clock;      /* how long an endpoint that failed is avoided; NULL = real */
    /* TLS for https endpoints (NULL or "": unused; copied): the CA bundle
     * to verify members with (else the system's), the client certificate
     * and its key (PEM). Peers are always verified, host names included. */
    const char *ca_file;
    const char *cert_file;
    const char *key_file;
} etcd_client_options;

/* What a unary call may do after its request was (perhaps) sent. */
typedef enum {
    /* Idempotent: any transport failure tries the next endpoint; when every
     * endpoint failed the call fails with CITRUS_EUNAVAILABLE. */
    ETCD_READ,
    /* Not idempotent: retried elsewhere only when it surely was not sent.
     * A failure after sending (timeout, connection lost, a rewind curl
     * would need to send it again) is CITRUS_ETIMEOUT: outcome unknown. */
    ETCD_WRITE,
    /* A read of a member's own view (member list, maintenance status),
     * which a member without a leader answers too: as ETCD_READ, but sent
     * without the hasleader metadata. */
    ETCD_LOCAL,
} etcd_call_kind;

/* How a unary call ended at the transport level. */
typedef struct etcd_result {
    int rc;      /* 0: an HTTP answer arrived; else CITRUS_E* */
    long status; /* HTTP status when rc == 0 */
    char *body;  /* the answer (NUL-terminated); the callback may take it (set NULL, free later) */
    size_t len;  /* bytes in body */
    const char *errmsg; /* transport detail when rc != 0 */
} etcd_result;

typedef void (*etcd_client_done_cb)(void *ctx, etcd_result *res);

/* Starts the I/O thread. On failure returns a negative code and writes a
 * message to err. */
int etcd_client_new(const etcd_client_options *o, etcd_client **out, errdetail *err);

/* Stops the I/O thread. New calls are refused (CITRUS_ECLOSED); calls
 * already accepted run to their end first, each within its timeouts, so
 * their outcome is known. Every stream must have been closed before.
 * NULL is a no-op. */
void etcd_client_free(etcd_client *c);

/* POSTs body (JSON text, malloc'd; ownership transferred, freed by the
 * client in every case) to path; cb runs exactly once on the I/O thread
 * (or on the caller's thread if the client is closing). */
void etcd_client_call_async(etcd_client *c, const char *path, char *body, etcd_call_kind kind,
                            etcd_client_done_cb cb, void *ctx);

/* As etcd_client_call_async (ETCD_LOCAL), but one attempt at member_url (a
 * member's client URL, as /v3/cluster/member/list gives it) instead of the
 * endpoints, bounded by timeout_ms: for questions to one member, such as
 * its /v3/maintenance/status. */
void etcd_client_call_member_async(etcd_client *c, const char *member_url, const char *path,
                                   char *body, int64_t timeout_ms, etcd_client_done_cb cb,
                                   void *ctx);

/* Turns a finished call into the answer's JSON object (*out, owned by the
 * caller) or an error: etcd's gRPC errors are mapped to CITRUS_E* codes
 * (see etcd_client_error), with etcd's message in err. A streamed answer
 * ({"result": ...}, as /v3/lease/keepalive gives) is unwrapped. */
int etcd_client_decode(etcd_client *c, const etcd_result *res, etcd_call_kind kind, json_t **out,
                       errdetail *err);

/* Synchronous call: req is serialized (borrowed), the answer decoded into
 * *out (owned by the caller) as by etcd_client_decode. */
int etcd_client_call(etcd_client *c, const char *path, json_t *req, etcd_call_kind kind,
                     json_t **out, errdetail *err);

/* Maps an etcd error (its gRPC message and code) to a CITRUS_E* code:
 * lease not found -> CITRUS_ENOLEASE, duplicate key in txn -> CITRUS_EINVAL,
 * compacted -> CITRUS_ECOMPACTED, no leader -> CITRUS_EUNAVAILABLE, timeouts
 * -> CITRUS_ETIMEOUT for writes (CITRUS_EUNAVAILABLE for reads), ... */
int etcd_client_error(const char *message, long grpc_code, etcd_call_kind kind);

/* A streaming call (watch). on_msg gets each message's "result" object
 * (borrowed) in order; returning 1 pauses the stream until
 * etcd_client_stream_resume. on_end runs once when the stream ends by
 * itself (server closed it, an error message, connection lost; rc says
 * which), never after etcd_client_stream_close. Streams have no request
 * timeout; TCP keepalive finds dead peers. */
typedef int (*etcd_stream_msg_cb)(void *ctx, json_t *result);
typedef void (*etcd_stream_end_cb)(void *ctx, int rc, const char *msg);

/* Opens a stream (req is serialized, borrowed). 0 or CITRUS_ECLOSED /
 * CITRUS_ENOMEM; *out must be closed with etcd_client_stream_close. */
int etcd_client_stream_open(etcd_client *c, const char *path, json_t *req,
                            etcd_stream_msg_cb on_msg, etcd_stream_end_cb on_end, void *ctx,
                            etcd_stream **out);
/* Resumes a stream paused by its on_msg. Any thread; does not wait. */
void etcd_client_stream_resume(etcd_stream *st);
/* Ends the stream and frees it; when it returns no callback of it runs or
 * will run. Any thread but from the stream's own on_msg. NULL is a no-op. */
void etcd_client_stream_close(etcd_stream *st);

/* The stream's member stopped sending (its owner knows of newer
 * revisions): later calls avoid that endpoint for a while, as after a
 * timeout. The owner then closes the stream and opens another. Any thread. */
void etcd_client_stream_stalled(etcd_stream *st);

/* The highest header revision seen in any decoded answer (0 before any):
 * at least the revision of every write this client saw succeed. */
int64_t etcd_client_revision(etcd_client *c);
/* The endpoint calls go to first (the one that last worked). */
const char *etcd_client_endpoint(etcd_client *c);
/* True on the client's I/O thread (where callbacks run). */
bool etcd_client_on_io_thread(etcd_client *c);

#endif
