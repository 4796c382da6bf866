/* bus/bus_kafka.c — the Kafka bus: bus.h on librdkafka.
 *
 * Publish: one idempotent producer (enable.idempotence, acks=all) per
 * handle. A message goes to the partition bus_partition_for(key) picks (as
 * the embedded log's), with the injected clock's wall time as its
 * timestamp, and bus_publish returns only after its delivery report: the
 * (partition, offset) the brokers acknowledged, or an error once
 * message.timeout.ms (publish_timeout_ms) passed without one.
 *
 * Consumer groups: one rd_kafka consumer per (group, topic), made on the
 * first poll and kept in the handle, with group.id = the group, no
 * auto-commit and no auto offset store: a member of the group through
 * Kafka's group protocol (subscribe, cooperative-sticky), so the members
 * of a group, in this process or others, share the topic's partitions and
 * take over those of a member gone. Each partition assigned to the member
 * (rebalance_cb) starts at the group's committed offset and is fetched
 * from its own queue, taken out of the consumer queue (so a poll takes
 * exactly what one partition needs, and librdkafka's prefetch,
 * queued.max.messages.kbytes, bounds what waits); a partition revoked
 * drops its window.
 * What Kafka has no word for is kept in the process, on the injected clock,
 * as bus.h says: each partition's window of fetched messages from the
 * committed offset on, with their delivery attempts, lease ends (or retry
 * times), done flags and last errors; the blocking of a partition behind a
 * leased or retrying message; the dead-lettering after max_attempts. The
 * group's Kafka offset moves (rd_kafka_commit with explicit offsets,
 * synchronous) to one past the done prefix of the window. A new process
 * resumes from that offset: at least once, with attempts counted from 1
 * again (leases are not in Kafka).
 *
 * Dead letters: produced (and acknowledged) to <topic>.dlq, same partition,
 * key and value, with headers citrus-error, citrus-attempts,
 * citrus-src-partition and citrus-src-offset, before the message counts as
 * done.
 *
 * Reads: a group-less consumer (the simple consumer API: rd_kafka_assign
 * needs a group.id) started at (partition, offset) for one read at a time.
 *
 * Topics: created through Kafka's Admin API (CreateTopics with
 * retention.ms and retention.bytes; DescribeConfigs to read them back), or
 * through bus_kafka_opts.admin where the cluster has no Admin API (the mock
 * cluster).
 *
 * Describing groups: the cluster's groups (ListGroups), the ones
 * named in bus_kafka_opts.groups and the handle's own, each group's
 * committed offsets by ListConsumerGroupOffsets, as kafka-consumer-groups
 * --describe. Topic existence comes from a full metadata listing (never a
 * per-topic request, which may auto-create the topic), cached per handle.
 * Retention is the brokers': bus_trim deletes nothing.
 *
 * Locks: tmu guards the topic cache (and serializes topic creation); dmu
 * the delivery waiters' outcomes; gmu every group's state (polls, commits
 * and nacks run one at a time per handle); rmu the reader. Never two of
 * them at once, except gmu then tmu (a poll looks up its topic) and gmu
 * then dmu (a dead letter is published under gmu). */
#include "bus/bus_kafka.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "citrus/errors.h"
#include "obs/log.h"

#define DEFAULT_PUBLISH_TIMEOUT_MS 30000
#define DEFAULT_REQUEST_TIMEOUT_MS 10000
#define DEFAULT_SESSION_TIMEOUT_MS 10000
#define DELIVERY_POLL_MS 5
#define CREATE_WAIT_STEP_MS 20
#define MAX_KNOWN_GROUPS 1024  /* bus_kafka_opts.groups */
#define PREFETCH_KBYTES "4096" /* librdkafka's queue per consumer (all partitions) */
#define HDR_ERROR "citrus-error"
#define HDR_ATTEMPTS "citrus-attempts"
#define HDR_SRC_PARTITION "citrus-src-partition"
#define HDR_SRC_OFFSET "citrus-src-offset"

/* One fetched message of a group's partition window. */
typedef struct kmsg {
    bus_message m;      /* its data; m.attempt unused */
    int attempts;       /* deliveries so far (0: fetched, not yet handed out) */
    int64_t visible_ms; /* when it may be handed out again */
    bool done;          /* committed or dead-lettered */
    char *error;        /* the last nack's error */
} kmsg;

typedef struct kpart {
    int64_t committed; /* every message below is done */
    int64_t stored;    /* what Kafka holds as the group's offset */
    int64_t fetched;   /* the offset after the last message fetched */
    kmsg *w;           /* the window: fetched messages from committed on */
    size_t n, cap;
    bool owned;          /* assigned to this member by the group */
    int64_t lost;        /* below: fetched under an earlier assignment (leases lost) */
    rd_kafka_queue_t *q; /* its fetch queue (owned), not forwarded */
} kpart;

typedef struct bk bk;

typedef struct kgroup {
    struct kgroup *next;
    bk *k;
    char group[BUS_NAME_MAX + 1], topic[BUS_NAME_MAX + 1];
    bool dlq;
    int partitions;
    rd_kafka_t *c; /* a member of the group, subscribed to topic */
    bool joined;   /* its first assignment came */
    kpart *parts;
    unsigned rr; /* the partition the next poll starts at */
} kgroup;

typedef struct ktopic {
    char name[BUS_NAME_MAX + 1];
    int partitions;
} ktopic;

struct bk {
    bus b; /* first: a bk is a bus */
    char *bootstrap, *client_id, *protocol, *mechanism, *username, *password, *ca_file;
    int publish_timeout_ms, request_timeout_ms, replication;
    bus_kafka_admin admin;
    bool has_admin;
    rd_kafka_t *p; /* the producer */
    rd_kafka_t *r; /* the reader (no group) */
    pthread_mutex_t tmu, dmu, gmu, rmu;
    ktopic *topics;
    size_t ntopics;
    kgroup *groups;
    char **known; /* bus_kafka_opts.groups (NULL-terminated), or NULL */
    int session_timeout_ms;
};

/* A publish waiting for its delivery report. */
typedef struct waiter {
    bool done;
    rd_kafka_resp_err_t err;
    int32_t partition;
    int64_t offset;
} waiter;

/* ---- helpers ---- */

static char *dup_bytes(const void *p, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        if (n)
            memcpy(d, p, n);
        d[n] = '\0';
    }
    return d;
}

/* An optional setting: NULL for NULL or "" (a config's unset string). */
static char *dup_opt(const char *s)
{
    return s && *s ? dup_bytes(s, strlen(s)) : NULL;
}

static bool is_dlq(const char *name)
{
    size_t n = strlen(name), k = strlen(BUS_DLQ_SUFFIX);
    return n > k && strcmp(name + n - k, BUS_DLQ_SUFFIX) == 0;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A librdkafka error as a Citrus one: what a caller can act on. */
static int kerr(rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
        return CITRUS_ENOTFOUND;
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
        return CITRUS_ETOOBIGVAL;
    case RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE:
        return CITRUS_ECOMPACTED;
    case RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS:
        return CITRUS_EEXISTS;
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
    case RD_KAFKA_RESP_ERR_INVALID_CONFIG:
    case RD_KAFKA_RESP_ERR_INVALID_PARTITIONS:
    case RD_KAFKA_RESP_ERR_INVALID_REPLICATION_FACTOR:
        return CITRUS_EINVAL;
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
        return CITRUS_ETOOMANY;
    case RD_KAFKA_RESP_ERR__NOENT:
        return CITRUS_ENOTFOUND;
    case RD_KAFKA_RESP_ERR__FATAL:
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
    case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
        return CITRUS_EIO;
    default:
        /* timeouts, brokers down, leaders moving: the cluster is not there */
        return CITRUS_EUNAVAILABLE;
    }
}

static int kfail(errdetail *e, rd_kafka_resp_err_t err, const char *fmt_what, const char *name)
{
    return errdetail_set(e, kerr(err), "bus: kafka: %s %s: %s", fmt_what, name,
                         rd_kafka_err2str(err));
}

/* ---- configuration ---- */

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    log_level l = level <= 3 ? LOG_ERROR : level == 4 ? LOG_WARN : LOG_DEBUG;
    if (log_enabled(l))
        log_emit(l, "bus.kafka", buf, json_pack("{s:s}", "facility", fac));
}

/* Sets one property; a bad value names the property, never a secret's
 * value. */
static int set(rd_kafka_conf_t *c, const char *name, const char *value, errdetail *e)
{
    char err[512];
    if (!value || rd_kafka_conf_set(c, name, value, err, sizeof(err)) == RD_KAFKA_CONF_OK)
        return 0;
    if (strstr(name, "password"))
        return errdetail_set(e, CITRUS_EINVAL, "bus: kafka: %s: refused", name);
    return errdetail_set(e, CITRUS_EINVAL, "bus: kafka: %s: %s", name, err);
}

/* Sets names[i] = values[i] until the first NULL name; a NULL value
 * leaves librdkafka's default. */
static int set_all(rd_kafka_conf_t *c, const char *const *names, const char *const *values,
                   errdetail *e)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && names[i]; i++)
        rc = set(c, names[i], values[i], e);
    return rc;
}

/* What every client of the handle shares. */
static int conf_common(bk *k, rd_kafka_conf_t **out, errdetail *e)
{
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    *out = NULL;
    if (!c)
        return errdetail_set(e, CITRUS_ENOMEM, "bus: kafka: out of memory");
    rd_kafka_conf_set_log_cb(c, log_cb);
    char sock[24], maxb[24], recvb[24];
    int64_t mb = (int64_t)k->b.cfg.max_message_bytes + 65536;
    snprintf(sock, sizeof(sock), "%d", k->request_timeout_ms > 1100 ? k->request_timeout_ms : 1100);
    snprintf(maxb, sizeof(maxb), "%lld", (long long)mb);
    snprintf(recvb, sizeof(recvb), "%lld", (long long)(2 * mb > 100000000 ? 2 * mb : 100000000));
    static const char *const names[] = {"bootstrap.servers",
                                        "client.id",
                                        "security.protocol",
                                        "sasl.mechanisms",
                                        "sasl.username",
                                        "sasl.password",
                                        "ssl.ca.location",
                                        "allow.auto.create.topics",
                                        "reconnect.backoff.ms",
                                        "reconnect.backoff.max.ms",
                                        "socket.timeout.ms",
                                        "message.max.bytes",
                                        "receive.message.max.bytes",
                                        NULL};
    const char *const values[] = {k->bootstrap, k->client_id ? k->client_id : "citrus",
                                  k->protocol,  k->mechanism,
                                  k->username,  k->password,
                                  k->ca_file,   "false",
                                  "50",         "1000",
                                  sock,         maxb,
                                  recvb};
    int rc = set_all(c, names, values, e);
    if (rc < 0) {
        rd_kafka_conf_destroy(c);
        return rc;
    }
    *out = c;
    return 0;
}

/* Starts a client of c (taken in every case). */
static int client_new(rd_kafka_type_t type, rd_kafka_conf_t *c, rd_kafka_t **out, errdetail *e)
{
    char err[512];
    *out = rd_kafka_new(type, c, err, sizeof(err));
    if (*out)
        return 0;
    rd_kafka_conf_destroy(c);
    return errdetail_set(e, CITRUS_EINVAL, "bus: kafka: cannot start a client: %s", err);
}

static void rebalance_cb(rd_kafka_t *c, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *l,
                         void *opaque);

/* A consumer: g's member of g->group (committing by hand; its partitions
 * come from the group protocol, cooperative-sticky, through
 * rebalance_cb), or group-less when g is NULL. */
static int consumer_new(bk *k, kgroup *g, rd_kafka_t **out, errdetail *e)
{
    rd_kafka_conf_t *c;
    int rc = conf_common(k, &c, e);
    if (rc < 0)
        return rc;
    const char *group = g ? g->group : NULL;
    char session[24], heartbeat[24];
    snprintf(session, sizeof(session), "%d", k->session_timeout_ms);
    snprintf(heartbeat, sizeof(heartbeat), "%d",
             k->session_timeout_ms / 10 > 100 ? k->session_timeout_ms / 10 : 100);
    static const char *const member[] = {"partition.assignment.strategy", "session.timeout.ms",
                                         "heartbeat.interval.ms", NULL};
    const char *const member_values[] = {"cooperative-sticky", session, heartbeat};
    if (g && (rc = set_all(c, member, member_values, e)) < 0) {
        rd_kafka_conf_destroy(c);
        return rc;
    }
    if (g) {
        rd_kafka_conf_set_opaque(c, g);
        rd_kafka_conf_set_rebalance_cb(c, rebalance_cb);
    }
    static const char *const names[] = {"group.id",
                                        "enable.auto.commit",
                                        "enable.auto.offset.store",
                                        "auto.offset.reset",
                                        "fetch.wait.max.ms",
                                        "fetch.error.backoff.ms",
                                        "queued.max.messages.kbytes",
                                        NULL};
    const char *const values[] = {group, "false", "false", "earliest", "50", "50", PREFETCH_KBYTES};
    rc = set_all(c, names, values, e);
    if (rc < 0) {
        rd_kafka_conf_destroy(c);
        return rc;
    }
    return client_new(RD_KAFKA_CONSUMER, c, out, e);
}

/* ---- the topic cache ---- */

/* Lists the cluster's topics into the cache (tmu held). A full listing:
 * a request naming one topic could auto-create it. */
static int topics_refresh(bk *k, errdetail *e)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(k->p, 1, NULL, &md, k->request_timeout_ms);
    if (err)
        return errdetail_set(e, kerr(err), "bus: kafka: cannot list the topics: %s",
                             rd_kafka_err2str(err));
    ktopic *t = calloc((size_t)md->topic_cnt + 1, sizeof(*t));
    if (!t) {
        rd_kafka_metadata_destroy(md);
        return errdetail_set(e, CITRUS_ENOMEM, "bus: kafka: out of memory");
    }
    size_t n = 0;
    for (int i = 0; i < md->topic_cnt; i++) {
        const rd_kafka_metadata_topic_t *mt = &md->topics[i];
        if (mt->err || mt->partition_cnt < 1 || strlen(mt->topic) > BUS_NAME_MAX)
            continue;
        snprintf(t[n].name, sizeof(t[n].name), "%s", mt->topic);
        t[n++].partitions = mt->partition_cnt;
    }
    rd_kafka_metadata_destroy(md);
    free(k->topics);
    k->topics = t;
    k->ntopics = n;
    return 0;
}

static int topic_find(const bk *k, const char *name)
{
    for (size_t i = 0; i < k->ntopics; i++)
        if (strcmp(k->topics[i].name, name) == 0)
            return k->topics[i].partitions;
    return 0;
}

/* The partitions of topic name: CITRUS_ENOTFOUND when the cluster has no
 * such topic. */
static int topic_partitions(bk *k, const char *name, int *partitions, errdetail *e)
{
    pthread_mutex_lock(&k->tmu);
    int n = topic_find(k, name), rc = 0;
    if (n == 0 && (rc = topics_refresh(k, e)) == 0)
        n = topic_find(k, name);
    pthread_mutex_unlock(&k->tmu);
    if (rc < 0)
        return rc;
    if (n == 0)
        return errdetail_set(e, CITRUS_ENOTFOUND, "bus: no topic %s", name);
    *partitions = n;
    return 0;
}

static int topic_part(bk *k, const char *name, int part, int *partitions, errdetail *e)
{
    int rc = topic_partitions(k, name, partitions, e);
    if (rc == 0 && part >= *partitions)
        rc = errdetail_set(e, CITRUS_EINVAL, "bus: topic %s has partitions 0..%d, not %d", name,
                           *partitions - 1, part);
    return rc;
}

static int watermarks(bk *k, const char *topic, int part, int64_t *lo, int64_t *hi, errdetail *e)
{
    rd_kafka_resp_err_t err =
        rd_kafka_query_watermark_offsets(k->r, topic, part, lo, hi, k->request_timeout_ms);
    if (err)
        return errdetail_set(e, kerr(err), "bus: kafka: offsets of %s/%d: %s", topic, part,
                             rd_kafka_err2str(err));
    return 0;
}

/* ---- publish ---- */

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    bk *k = opaque;
    waiter *w = m->_private;
    pthread_mutex_lock(&k->dmu);
    w->err = m->err;
    w->partition = m->partition;
    w->offset = m->offset;
    w->done = true;
    pthread_mutex_unlock(&k->dmu);
}

/* Produces one message to (topic, part) and waits for its delivery report.
 * hdrs (may be NULL) is taken in every case. */
static int produce(bk *k, const char *topic, int part, const void *key, size_t key_len,
                   const void *value, size_t value_len, rd_kafka_headers_t *hdrs, int64_t *offset,
                   errdetail *e)
{
    /* set under dmu, like every access to it: the report may come on any
     * thread, handed over by librdkafka's queues, which TSan cannot see */
    waiter w;
    pthread_mutex_lock(&k->dmu);
    w = (waiter){0};
    pthread_mutex_unlock(&k->dmu);
    rd_kafka_resp_err_t err =
        rd_kafka_producev(k->p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(part),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, key_len),
                          RD_KAFKA_V_VALUE((void *)value, value_len),
                          RD_KAFKA_V_TIMESTAMP(clock_wall_ms(k->b.cfg.clock)),
                          RD_KAFKA_V_OPAQUE(&w), RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END);
    if (err) {
        if (hdrs)
            rd_kafka_headers_destroy(hdrs);
        return kfail(e, err, "publish to", topic);
    }
    /* Every message gets its report, at the latest when message.timeout.ms
     * ends; whichever thread polls runs the callback. */
    pthread_mutex_lock(&k->dmu);
    while (!w.done) {
        pthread_mutex_unlock(&k->dmu);
        rd_kafka_poll(k->p, DELIVERY_POLL_MS);
        pthread_mutex_lock(&k->dmu);
    }
    pthread_mutex_unlock(&k->dmu);
    if (w.err == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT)
        return errdetail_set(e, CITRUS_EUNAVAILABLE,
                             "bus: kafka: publish to %s not acknowledged within %d ms (are the "
                             "brokers up?)",
                             topic, k->publish_timeout_ms);
    if (w.err)
        return kfail(e, w.err, "publish to", topic);
    *offset = w.offset;
    return 0;
}

static int op_publish(bus *b, const char *topic, const void *key, size_t key_len, const void *value,
                      size_t value_len, int *partition, int64_t *offset, errdetail *e)
{
    bk *k = (bk *)b;
    int n;
    int rc = topic_partitions(k, topic, &n, e);
    if (rc < 0)
        return rc;
    *partition = bus_partition_for(key, key_len, n);
    return produce(k, topic, *partition, key, key_len, value, value_len, NULL, offset, e);
}

/* ---- topics ---- */

static int retention_config(int64_t v, char *buf, size_t len)
{
    return snprintf(buf, len, "%lld", v > 0 ? (long long)v : -1LL);
}

/* One Admin API request: its reply queue, options and answer. */
typedef struct admin_req {
    rd_kafka_queue_t *q;
    rd_kafka_AdminOptions_t *ao;
    rd_kafka_event_t *ev;
} admin_req;

/* The queue and options of a request of op, bounded by request_timeout_ms. */
static int admin_begin(bk *k, rd_kafka_admin_op_t op, admin_req *r, errdetail *e)
{
    char err[256];
    *r = (admin_req){.q = rd_kafka_queue_new(k->p)};
    r->ao = r->q ? rd_kafka_AdminOptions_new(k->p, op) : NULL;
    if (!r->ao)
        return errdetail_set(e, CITRUS_ENOMEM, "bus: kafka: out of memory");
    rd_kafka_AdminOptions_set_request_timeout(r->ao, k->request_timeout_ms, err, sizeof(err));
    if (op == RD_KAFKA_ADMIN_OP_CREATETOPICS)
        rd_kafka_AdminOptions_set_operation_timeout(r->ao, k->request_timeout_ms, err, sizeof(err));
    return 0;
}

/* Waits for the answer to the request sent on r (its bound and a margin):
 * CITRUS_EUNAVAILABLE when none came, the request's error when it failed
 * as a whole; "bus: kafka: <what> <name>: ..." says which. */
static int admin_answer(bk *k, admin_req *r, const char *what, const char *name, errdetail *e)
{
    if (!(r->ev = rd_kafka_queue_poll(r->q, k->request_timeout_ms + 2000)))
        return errdetail_set(e, CITRUS_EUNAVAILABLE, "bus: kafka: %s %s: no answer", what, name);
    if (rd_kafka_event_error(r->ev))
        return errdetail_set(e, kerr(rd_kafka_event_error(r->ev)), "bus: kafka: %s %s: %s", what,
                             name, rd_kafka_event_error_string(r->ev));
    return 0;
}

static void admin_end(admin_req *r)
{
    if (r->ev)
        rd_kafka_event_destroy(r->ev);
    if (r->ao)
        rd_kafka_AdminOptions_destroy(r->ao);
    if (r->q)
        rd_kafka_queue_destroy(r->q);
}

/* CreateTopics of name and name.dlq in one request. */
static int admin_create(bk *k, const char *name, const char *dlq, const bus_topic_opts *o,
                        errdetail *e)
{
    const char *names[2] = {name, dlq};
    rd_kafka_NewTopic_t *nt[2] = {NULL, NULL};
    char err[256], ms[32], bytes[32], maxb[32];
    retention_config(o->retention_ms, ms, sizeof(ms));
    retention_config(o->retention_bytes, bytes, sizeof(bytes));
    snprintf(maxb, sizeof(maxb), "%zu", k->b.cfg.max_message_bytes + 65536);
    int rc = 0;
    for (int i = 0; i < 2 && rc == 0; i++) {
        nt[i] = rd_kafka_NewTopic_new(names[i], o->partitions,
                                      k->replication > 0 ? k->replication : -1, err, sizeof(err));
        if (!nt[i] || rd_kafka_NewTopic_set_config(nt[i], "retention.ms", ms) ||
            rd_kafka_NewTopic_set_config(nt[i], "retention.bytes", bytes) ||
            rd_kafka_NewTopic_set_config(nt[i], "max.message.bytes", maxb))
            rc = errdetail_set(e, CITRUS_EINVAL, "bus: kafka: topic %s: %s", names[i],
                               nt[i] ? "bad config" : err);
    }
    admin_req r = {0};
    if (rc == 0)
        rc = admin_begin(k, RD_KAFKA_ADMIN_OP_CREATETOPICS, &r, e);
    if (rc == 0) {
        rd_kafka_CreateTopics(k->p, nt, 2, r.ao, r.q);
        rc = admin_answer(k, &r, "create topic", name, e);
    }
    size_t n = 0;
    const rd_kafka_topic_result_t **tr =
        rc == 0 ? rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(r.ev), &n)
                : NULL;
    for (size_t i = 0; i < n && rc == 0; i++) {
        rd_kafka_resp_err_t te = rd_kafka_topic_result_error(tr[i]);
        const char *tn = rd_kafka_topic_result_name(tr[i]);
        /* a dead-letter topic left from an earlier topic is reused */
        if (te && !(te == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS && strcmp(tn, dlq) == 0))
            rc = errdetail_set(e, kerr(te), "bus: kafka: create topic %s: %s", tn,
                               rd_kafka_topic_result_error_string(tr[i])
                                   ? rd_kafka_topic_result_error_string(tr[i])
                                   : rd_kafka_err2str(te));
    }
    admin_end(&r);
    for (int i = 0; i < 2; i++)
        if (nt[i])
            rd_kafka_NewTopic_destroy(nt[i]);
    return rc;
}

static int64_t config_int(const char *s)
{
    long long v = s ? strtoll(s, NULL, 10) : -1;
    return v > 0 ? (int64_t)v : 0;
}

/* DescribeConfigs of topic name: its retention. */
static int admin_retention(bk *k, const char *name, int64_t *ms, int64_t *bytes, errdetail *e)
{
    rd_kafka_ConfigResource_t *cr = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, name);
    admin_req r = {0};
    int rc = cr ? admin_begin(k, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS, &r, e)
                : errdetail_set(e, CITRUS_ENOMEM, "bus: kafka: out of memory");
    if (rc == 0) {
        rd_kafka_DescribeConfigs(k->p, &cr, 1, r.ao, r.q);
        rc = admin_answer(k, &r, "configs of", name, e);
    }
    if (rc == 0) {
        size_t n = 0, nc = 0;
        const rd_kafka_ConfigResource_t **res = rd_kafka_DescribeConfigs_result_resources(
            rd_kafka_event_DescribeConfigs_result(r.ev), &n);
        if (n != 1 || rd_kafka_ConfigResource_error(res[0]))
            rc = errdetail_set(e, n == 1 ? kerr(rd_kafka_ConfigResource_error(res[0])) : CITRUS_EIO,
                               "bus: kafka: configs of %s: %s", name,
                               n == 1 ? rd_kafka_err2str(rd_kafka_ConfigResource_error(res[0]))
                                      : "no answer");
        const rd_kafka_ConfigEntry_t **ce =
            rc == 0 ? rd_kafka_ConfigResource_configs(res[0], &nc) : NULL;
        for (size_t i = 0; i < nc; i++) {
            const char *cn = rd_kafka_ConfigEntry_name(ce[i]);
            if (strcmp(cn, "retention.ms") == 0)
                *ms = config_int(rd_kafka_ConfigEntry_value(ce[i]));
            else if (strcmp(cn, "retention.bytes") == 0)
                *bytes = config_int(rd_kafka_ConfigEntry_value(ce[i]));
        }
    }
    admin_end(&r);
    if (cr)
        rd_kafka_ConfigResource_destroy(cr);
    return rc;
}

static int op_topic_create(bus *b, const char *name, const bus_topic_opts *o, errdetail *e)
{
    bk *k = (bk *)b;
    char dlq[BUS_NAME_MAX + 8];
    snprintf(dlq, sizeof(dlq), "%s" BUS_DLQ_SUFFIX, name);
    pthread_mutex_lock(&k->tmu);
    int rc = topics_refresh(k, e);
    if (rc == 0 && topic_find(k, name))
        rc = errdetail_set(e, CITRUS_EEXISTS, "bus: topic %s exists", name);
    int count = 0;
    for (size_t i = 0; rc == 0 && i < k->ntopics; i++)
        count += !is_dlq(k->topics[i].name) && strncmp(k->topics[i].name, "__", 2) != 0;
    if (rc == 0 && count >= k->b.cfg.max_topics)
        rc = errdetail_set(e, CITRUS_ETOOMANY, "bus: at most %d topics", k->b.cfg.max_topics);
    if (rc == 0 && k->has_admin) {
        rc = k->admin.create(k->admin.ctx, name, o->partitions,
                             o->retention_ms > 0 ? o->retention_ms : -1,
                             o->retention_bytes > 0 ? o->retention_bytes : -1, e);
        if (rc == 0 && !topic_find(k, dlq))
            rc = k->admin.create(k->admin.ctx, dlq, o->partitions,
                                 o->retention_ms > 0 ? o->retention_ms : -1,
                                 o->retention_bytes > 0 ? o->retention_bytes : -1, e);
    } else if (rc == 0) {
        rc = admin_create(k, name, dlq, o, e);
    }
    /* Kafka creates topics asynchronously: wait until the metadata has both */
    for (int64_t end = mono_ms() + k->request_timeout_ms; rc == 0;) {
        if ((rc = topics_refresh(k, e)) < 0 || (topic_find(k, name) && topic_find(k, dlq)))
            break;
        if (mono_ms() >= end)
            rc = errdetail_set(e, CITRUS_EUNAVAILABLE,
                               "bus: kafka: topic %s created but not yet in the metadata", name);
        else
            sleep_ms(CREATE_WAIT_STEP_MS);
    }
    pthread_mutex_unlock(&k->tmu);
    return rc;
}

/* A topic of n partitions: its retention and messages; parts (NULL, or n
 * entries): each partition's retained range. */
static int topic_info(bk *k, const char *name, int n, bus_topic_info *out,
                      bus_partition_range *parts, errdetail *e)
{
    int64_t ms = 0, bytes = 0, msgs = 0;
    int rc;
    if (k->has_admin) {
        rc = k->admin.retention(k->admin.ctx, name, &ms, &bytes, e);
        ms = ms > 0 ? ms : 0;
        bytes = bytes > 0 ? bytes : 0;
    } else {
        rc = admin_retention(k, name, &ms, &bytes, e);
    }
    for (int p = 0; rc == 0 && p < n; p++) {
        int64_t lo, hi;
        if ((rc = watermarks(k, name, p, &lo, &hi, e)) == 0)
            msgs += hi - lo;
        if (rc == 0 && parts)
            parts[p] = (bus_partition_range){.low = lo, .high = hi};
    }
    if (rc < 0)
        return rc;
    *out = (bus_topic_info){
        .partitions = n, .retention_ms = ms, .retention_bytes = bytes, .messages = msgs};
    return 0;
}

static int op_topic_describe(bus *b, const char *name, bus_topic_info *out, errdetail *e)
{
    bk *k = (bk *)b;
    int n;
    int rc = topic_partitions(k, name, &n, e);
    return rc < 0 ? rc : topic_info(k, name, n, out, NULL, e);
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(((const ktopic *)a)->name, ((const ktopic *)b)->name);
}

/* A copy of the cluster's topics (not Kafka's own, "__..."), in name
 * order, freshly listed; *out NULL when *n is 0. */
static int topics_snapshot(bk *k, ktopic **out, size_t *n, errdetail *e)
{
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&k->tmu);
    int rc = topics_refresh(k, e);
    ktopic *names = rc == 0 ? calloc(k->ntopics + 1, sizeof(*names)) : NULL;
    if (rc == 0 && !names)
        rc = errdetail_set(e, CITRUS_ENOMEM, "bus: out of memory");
    for (size_t i = 0; rc == 0 && i < k->ntopics; i++)
        if (strncmp(k->topics[i].name, "__", 2) != 0)
            names[(*n)++] = k->topics[i];
    pthread_mutex_unlock(&k->tmu);
    if (rc < 0 || *n == 0) {
        free(names);
        *n = 0;
        return rc;
    }
    qsort(names, *n, sizeof(*names), name_cmp);
    *out = names;
    return 0;
}

/* Every topic of the cluster (not Kafka's own, "__..."), in name order.
 * Not one snapshot: Kafka has none; each partition's range is read in
 * turn. */
static int op_topics_list(bus *b, bus_topic_entry **out, size_t *n, errdetail *e)
{
    bk *k = (bk *)b;
    ktopic *names;
    size_t count;
    int rc = topics_snapshot(k, &names, &count, e);
    if (rc == 0 && count && !(*out = calloc(count, sizeof(**out))))
        rc = errdetail_set(e, CITRUS_ENOMEM, "bus: out of memory");
    for (size_t i = 0; rc == 0 && i < count; i++) {
        bus_topic_entry *t = &(*out)[i];
        snprintf(t->name, sizeof(t->name), "%s", names[i].name);
        t->dlq = is_dlq(t->name);
        if (!(t->parts = calloc((size_t)names[i].partitions, sizeof(*t->parts))))
            rc = errdetail_set(e, CITRUS_ENOMEM, "bus: out of memory");
        else
            rc = topic_info(k, t->name, names[i].partitions, &t->info, t->parts, e);
        *n = i + 1;
    }
    free(names);
    return rc;
}

/* ---- messages ---- */

static int hdr_int(rd_kafka_headers_t *h, const char *name, int64_t dflt)
{
    const void *v;
    size_t n;
    char buf[32];
    if (!h || rd_kafka_header_get_last(h, name, &v, &n) || n == 0 || n >= sizeof(buf))
        return (int)dflt;
    memcpy(buf, v, n);
    buf[n] = '\0';
    return (int)strtol(buf, NULL, 10);
}

static int64_t hdr_int64(rd_kafka_headers_t *h, const char *name, int64_t dflt)
{
    const void *v;
    size_t n;
    char buf[32];
    if (!h || rd_kafka_header_get_last(h, name, &v, &n) || n == 0 || n >= sizeof(buf))
        return dflt;
    memcpy(buf, v, n);
    buf[n] = '\0';
    return strtoll(buf, NULL, 10);
}

/* Copies a fetched message into d (zeroed). */
static int msg_copy(const char *topic, const rd_kafka_message_t *rm, bus_message *d, errdetail *e)
{
    snprintf(d->topic, sizeof(d->topic), "%s", topic);
    d->partition = rm->partition;
    d->offset = rm->offset;
    d->time_ms = rd_kafka_message_timestamp(rm, NULL);
    d->key_len = rm->key ? rm->key_len : 0;
    d->key = (uint8_t *)dup_bytes(rm->key, d->key_len);
    d->value_len = rm->payload ? rm->len : 0;
    d->value = (uint8_t *)dup_bytes(rm->payload, d->value_len);
    d->src_partition = -1;
    d->src_offset = -1;
    rd_kafka_headers_t *h = NULL;
    if (rd_kafka_message_headers(rm, &h) == RD_KAFKA_RESP_ERR_NO_ERROR && h) {
        const void *v;
        size_t n;
        if (rd_kafka_header_get_last(h, HDR_ERROR, &v, &n) == RD_KAFKA_RESP_ERR_NO_ERROR &&
            !(d->error = dup_bytes(v, v ? n : 0)))
            return errdetail_set(e, CITRUS_ENOMEM, "bus: out of memory copying a message");
        d->attempts = hdr_int(h, HDR_ATTEMPTS, 0);
        d->src_partition = hdr_int(h, HDR_SRC_PARTITION, -1);
        d->src_offset = hdr_int64(h, HDR_SRC_OFFSET, -1);
    }
    if (!d->key || !d->value)
        return errdetail_set(e, CITRUS_ENOMEM, "bus: out of memory copying a message");
    return 0;
}

static int msg_dup(const bus_message *s, bus_message *d, errdetail *e)
{
    *d = *s;
    d->key = (uint8_t *)dup_bytes(s->key, s->key_len);
    d->value = (uint8_t *)dup_bytes(s->value, s->value_len);
    d->error = s->error ? dup_bytes(s->error, strlen(s->error)) : NULL;
    if (!d->key || !d->value || (s->error && !d->error))
        return errdetail_set(e, CITRUS_ENOMEM, "bus: out of memory copying a message");
    return 0;
}

static void msg_clear(bus_message *m)
{
    free(m->key);
    free(m->value);
    free(m->error);
    memset(m, 0, sizeof(*m));
}

/* ---- reads ---- */

static int op_read(bus *b, const char *topic, int partition, int64_t from, size_t limit,
                   bus_message **out, size_t *n, errdetail *e)
{
    bk *k = (bk *)b;
    int parts;
    int64_t lo = 0, hi = 0;
    int rc = topic_part(k, topic, partition, &parts, e);
    if (rc == 0)
        rc = watermarks(k, topic, partition, &lo, &hi, e);
    if (rc < 0)
        return rc;
    if (from > hi)
        return errdetail_set(e, CITRUS_EINVAL, "bus: %s/%d has offsets below %lld, not %lld", topic,
                             partition, (long long)hi, (long long)from);
    if (from < lo)
        return errdetail_set(e, CITRUS_ECOMPACTED,
                             "bus: %s/%d keeps offsets from %lld; %lld was trimmed", topic,
                             partition, (long long)lo, (long long)from);
    if (from == hi)
        return 0;
    size_t want = (uint64_t)(hi - from) < limit ? (size_t)(hi - from) : limit;
    bus_message *msgs = calloc(want, sizeof(*msgs));
    if (!msgs)
        return errdetail_set(e, CITRUS_ENOMEM, "bus: out of memory for a read");
    *out = msgs;
    pthread_mutex_lock(&k->rmu);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(k->r, topic, NULL);
    if (!rkt || rd_kafka_consume_start(rkt, partition, from) != 0) {
        rc = errdetail_set(e, CITRUS_EUNAVAILABLE, "bus: kafka: cannot read %s/%d: %s", topic,
                           partition, rd_kafka_err2str(rd_kafka_last_error()));
    } else {
        int64_t end = mono_ms() + k->request_timeout_ms;
        while (rc == 0 && *n < want) {
            int64_t left = end - mono_ms();
            rd_kafka_message_t *rm = left > 0 ? rd_kafka_consume(rkt, partition, (int)left) : NULL;
            if (!rm) {
                rc = errdetail_set(e, CITRUS_EUNAVAILABLE,
                                   "bus: kafka: read of %s/%d got no answer within %d ms", topic,
                                   partition, k->request_timeout_ms);
                break;
            }
            if (rm->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE)
                rc = errdetail_set(e, CITRUS_ECOMPACTED, "bus: %s/%d: %lld was trimmed", topic,
                                   partition, (long long)from);
            else if (rm->err && rm->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                rc = kfail(e, rm->err, "read of", topic);
            else if (!rm->err && rm->offset >= from + (int64_t)*n)
                rc = msg_copy(topic, rm, &msgs[(*n)++], e);
            rd_kafka_message_destroy(rm);
        }
        rd_kafka_consume_stop(rkt, partition);
    }
    if (rkt)
        rd_kafka_topic_destroy(rkt);
    pthread_mutex_unlock(&k->rmu);
    return rc;
}

/* ---- consumer groups (gmu held) ---- */

static void window_pop(kpart *kp, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        msg_clear(&kp->w[i].m);
        free(kp->w[i].error);
    }
    if (count && count < kp->n)
        memmove(kp->w, kp->w + count, (kp->n - count) * sizeof(*kp->w));
    kp->n -= count;
}

/* Lets go of p's fetch queue and window: the partition is no longer this
 * member's (what was leased here will be delivered again by its new
 * owner: at least once). */
static void part_drop(kpart *kp)
{
    if (kp->owned && kp->fetched > kp->lost)
        kp->lost = kp->fetched;
    if (kp->q)
        rd_kafka_queue_destroy(kp->q);
    kp->q = NULL;
    kp->owned = false;
    window_pop(kp, kp->n);
}

static void group_free(kgroup *g)
{
    for (int p = 0; g->parts && p < g->partitions; p++)
        part_drop(&g->parts[p]);
    if (g->c) {
        /* leaves the group (its partitions go to the other members at
         * once, not after the session timeout); rebalance_cb runs for the
         * last revocation */
        rd_kafka_consumer_close(g->c);
        rd_kafka_destroy(g->c);
    }
    for (int p = 0; g->parts && p < g->partitions; p++)
        free(g->parts[p].w);
    free(g->parts);
    free(g);
}

/* The partitions l the group gives this member (in rebalance_cb, gmu
 * held: rebalance_cb runs inside rd_kafka_consumer_poll, which only
 * group_serve calls): each starts at the group's committed offset, asked
 * now (another member may have moved it), or the low watermark when it
 * has none, with its fetch queue taken out of the consumer queue so that
 * a poll takes exactly what one partition needs. l's offsets are set to
 * where each starts. */
static void parts_take(kgroup *g, rd_kafka_topic_partition_list_t *l)
{
    bk *k = g->k;
    rd_kafka_topic_partition_list_t *c = rd_kafka_topic_partition_list_copy(l);
    rd_kafka_resp_err_t err = c ? rd_kafka_committed(g->c, c, k->request_timeout_ms)
                                : RD_KAFKA_RESP_ERR__CRIT_SYS_RESOURCE;
    for (int i = 0; i < l->cnt; i++) {
        rd_kafka_topic_partition_t *x = &l->elems[i];
        int p = (int)x->partition;
        if (strcmp(x->topic, g->topic) != 0 || p < 0 || p >= g->partitions)
            continue; /* a partition added after the group began: not polled */
        kpart *kp = &g->parts[p];
        part_drop(kp);
        int64_t off = err ? -1 : c->elems[i].offset, lo = 0, hi = 0;
        errdetail e;
        if (off < 0 && err == RD_KAFKA_RESP_ERR_NO_ERROR &&
            watermarks(k, g->topic, p, &lo, &hi, &e) == 0)
            off = lo;
        if (off < 0) /* the cluster did not say: from the last offset known here */
            off = kp->committed > 0 ? kp->committed : 0;
        else if (err == RD_KAFKA_RESP_ERR_NO_ERROR && c->elems[i].offset >= 0)
            kp->stored = c->elems[i].offset;
        kp->committed = kp->fetched = off;
        x->offset = off;
        if ((kp->q = rd_kafka_queue_get_partition(g->c, g->topic, p)) != NULL) {
            rd_kafka_queue_forward(kp->q, NULL);
            kp->owned = true;
        }
    }
    if (c)
        rd_kafka_topic_partition_list_destroy(c);
    if (err && log_enabled(LOG_WARN))
        log_emit(LOG_WARN, "bus.kafka", "committed offsets not read at an assignment",
                 json_pack("{s:s,s:s}", "group", g->group, "error", rd_kafka_err2str(err)));
}

/* The group protocol's word (cooperative-sticky: increments): partitions
 * given to this member, or taken (revoked, or lost after a session
 * timeout). */
static void rebalance_cb(rd_kafka_t *c, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *l,
                         void *opaque)
{
    kgroup *g = opaque;
    rd_kafka_error_t *x;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        parts_take(g, l);
        x = rd_kafka_incremental_assign(c, l);
        g->joined = true;
    } else {
        for (int i = 0; i < l->cnt; i++)
            if (strcmp(l->elems[i].topic, g->topic) == 0 && l->elems[i].partition >= 0 &&
                l->elems[i].partition < g->partitions)
                part_drop(&g->parts[l->elems[i].partition]);
        x = rd_kafka_incremental_unassign(c, l);
    }
    if (x && log_enabled(LOG_WARN))
        log_emit(LOG_WARN, "bus.kafka", "rebalance not applied",
                 json_pack("{s:s,s:s}", "group", g->group, "error", rd_kafka_error_string(x)));
    if (x)
        rd_kafka_error_destroy(x);
}

/* Runs the group protocol's events queued for g's member (rebalance_cb);
 * true when there were any. */
static bool member_serve(kgroup *g, int wait_ms)
{
    bool any = false;
    rd_kafka_message_t *rm;
    while ((rm = rd_kafka_consumer_poll(g->c, any ? 0 : wait_ms)) != NULL) {
        /* an error or event (messages come on the partition queues) */
        if (rm->err && log_enabled(LOG_DEBUG))
            log_emit(LOG_DEBUG, "bus.kafka", "consumer event",
                     json_pack("{s:s,s:s}", "group", g->group, "error", rd_kafka_err2str(rm->err)));
        rd_kafka_message_destroy(rm);
        any = true;
    }
    return any;
}

/* Serves g's member. Before its first assignment, waits for it: the
 * group's join takes a few seconds (a rebalance of every member), at most
 * twice the session timeout and a request timeout; meanwhile the other
 * members of the group in this handle (other topics) are served too, so
 * that they rejoin at once. The first poll so sees what was published
 * before it. */
static int group_serve(bk *k, kgroup *g, errdetail *e)
{
    int bound = 2 * k->session_timeout_ms + k->request_timeout_ms;
    int64_t end = mono_ms() + bound;
    member_serve(g, 0);
    while (!g->joined) {
        if (mono_ms() >= end)
            return errdetail_set(e, CITRUS_EUNAVAILABLE,
                                 "bus: kafka: group %s got no partitions of %s within %d ms",
                                 g->group, g->topic, bound);
        for (kgroup *o = k->groups; o; o = o->next)
            if (o != g && strcmp(o->group, g->group) == 0)
                member_serve(o, 0);
        member_serve(g, 50);
    }
    return 0;
}

/* The group's member consuming topic: NULL in *out (and 0) when create is
 * false and the group never polled it. A new one asks the group's
 * committed offsets (which also shows that the cluster answers) and
 * subscribes; its partitions come in group_serve. */
static int group_get(bk *k, const char *group, const char *topic, bool create, kgroup **out,
                     errdetail *e)
{
    *out = NULL;
    for (kgroup *g = k->groups; g; g = g->next)
        if (strcmp(g->group, group) == 0 && strcmp(g->topic, topic) == 0) {
            *out = g;
            return 0;
        }
    if (!create)
        return 0;
    int n;
    int rc = topic_partitions(k, topic, &n, e);
    if (rc < 0)
        return rc;
    kgroup *g = calloc(1, sizeof(*g));
    if (!g || !(g->parts = calloc((size_t)n, sizeof(*g->parts)))) {
        free(g);
        return errdetail_set(e, CITRUS_ENOMEM, "bus: out of memory");
    }
    g->k = k;
    snprintf(g->group, sizeof(g->group), "%s", group);
    snprintf(g->topic, sizeof(g->topic), "%s", topic);
    g->dlq = is_dlq(topic);
    g->partitions = n;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
    rc = l ? consumer_new(k, g, &g->c, e) : errdetail_set(e, CITRUS_ENOMEM, "bus: out of memory");
    if (rc == 0) {
        for (int p = 0; p < n; p++)
            rd_kafka_topic_partition_list_add(l, topic, p);
        rd_kafka_resp_err_t err = rd_kafka_committed(g->c, l, k->request_timeout_ms);
        if (err)
            rc = errdetail_set(e, kerr(err), "bus: kafka: committed offsets of group %s: %s", group,
                               rd_kafka_err2str(err));
    }
    for (int p = 0; rc == 0 && p < n; p++) {
        kpart *kp = &g->parts[p];
        int64_t c = l->elems[p].offset, lo = 0, hi = 0;
        if (c < 0 && (rc = watermarks(k, topic, p, &lo, &hi, e)) < 0)
            break;
        kp->committed = kp->fetched = c >= 0 ? c : lo;
        kp->stored = c >= 0 ? c : -1;
    }
    if (rc == 0) {
        rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
        rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR__CRIT_SYS_RESOURCE;
        if (sub) {
            rd_kafka_topic_partition_list_add(sub, topic, RD_KAFKA_PARTITION_UA);
            err = rd_kafka_subscribe(g->c, sub);
            rd_kafka_topic_partition_list_destroy(sub);
        }
        if (err)
            rc = kfail(e, err, "subscribe to", topic);
    }
    if (l)
        rd_kafka_topic_partition_list_destroy(l);
    if (rc < 0) {
        group_free(g);
        return rc;
    }
    g->next = k->groups;
    k->groups = g;
    *out = g;
    return 0;
}

/* Commits offset for (group, p) and waits for the answer at most
 * request_timeout_ms (rd_kafka_commit would wait for a coordinator for
 * ever). A commit that timed out may still land later: at worst it moves
 * Kafka's offset back to an older one (more redelivered after a crash:
 * still at least once). */
static rd_kafka_resp_err_t commit_offset(bk *k, kgroup *g, int p, int64_t offset)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_queue_t *q = rd_kafka_queue_new(g->c);
    if (!l || !q) {
        if (l)
            rd_kafka_topic_partition_list_destroy(l);
        return RD_KAFKA_RESP_ERR__CRIT_SYS_RESOURCE;
    }
    rd_kafka_topic_partition_list_add(l, g->topic, p)->offset = offset;
    rd_kafka_resp_err_t err = rd_kafka_commit_queue(g->c, l, q, NULL, NULL);
    rd_kafka_event_t *ev = err ? NULL : rd_kafka_queue_poll(q, k->request_timeout_ms);
    if (!err && !ev)
        err = RD_KAFKA_RESP_ERR__TIMED_OUT;
    if (ev) {
        err = rd_kafka_event_error(ev);
        const rd_kafka_topic_partition_list_t *r = rd_kafka_event_topic_partition_list(ev);
        if (!err && r && r->cnt == 1)
            err = r->elems[0].err;
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_queue_destroy(q);
    rd_kafka_topic_partition_list_destroy(l);
    return err;
}

/* Kafka's offset for the group to one past the done prefix of p's window. */
static int advance(bk *k, kgroup *g, int p, errdetail *e)
{
    kpart *kp = &g->parts[p];
    size_t done = 0;
    while (done < kp->n && kp->w[done].done)
        done++;
    window_pop(kp, done);
    int64_t c = kp->n ? kp->w[0].m.offset : kp->fetched;
    if (c > kp->committed)
        kp->committed = c;
    if (kp->committed <= kp->stored)
        return 0;
    rd_kafka_resp_err_t err = commit_offset(k, g, p, kp->committed);
    if (err == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION || err == RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID ||
        err == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS ||
        err == RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID)
        /* done here, not yet in Kafka: the next commit or poll of a
         * partition still this member's after the rebalance stores it;
         * else its new owner delivers the messages again */
        return errdetail_set(e, CITRUS_ECONFLICT,
                             "bus: kafka: group %s is rebalancing: the offset of %s/%d is not "
                             "stored yet (%s)",
                             g->group, g->topic, p, rd_kafka_err2str(err));
    if (err)
        return errdetail_set(e, kerr(err), "bus: kafka: commit of group %s on %s/%d: %s", g->group,
                             g->topic, p, rd_kafka_err2str(err));
    kp->stored = kp->committed;
    return 0;
}

static int window_add(kpart *kp, const char *topic, const rd_kafka_message_t *rm, errdetail *e)
{
    if (kp->n == kp->cap) {
        size_t cap = kp->cap ? kp->cap * 2 : 16;
        kmsg *w = realloc(kp->w, cap * sizeof(*w));
        if (!w)
            return errdetail_set(e, CITRUS_ENOMEM, "bus: out of memory");
        kp->w = w;
        kp->cap = cap;
    }
    kmsg *m = &kp->w[kp->n];
    memset(m, 0, sizeof(*m));
    int rc = msg_copy(topic, rm, &m->m, e);
    if (rc < 0) {
        msg_clear(&m->m);
        return rc;
    }
    kp->n++;
    kp->fetched = rm->offset + 1;
    return 0;
}

/* Fetches up to want more messages into p's window, up to the
 * partition's end as it was when the fetch began. */
static int fill(bk *k, kgroup *g, int p, size_t want, errdetail *e)
{
    kpart *kp = &g->parts[p];
    int64_t lo = 0, hi = 0;
    int rc = watermarks(k, g->topic, p, &lo, &hi, e);
    int64_t end = mono_ms() + k->request_timeout_ms;
    for (size_t got = 0; rc == 0 && got < want && kp->fetched < hi;) {
        int64_t left = end - mono_ms();
        rd_kafka_message_t *rm = left > 0 ? rd_kafka_consume_queue(kp->q, (int)left) : NULL;
        if (!rm)
            return errdetail_set(e, CITRUS_EUNAVAILABLE,
                                 "bus: kafka: fetch of %s/%d got no answer within %d ms", g->topic,
                                 p, k->request_timeout_ms);
        if (rm->err && rm->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            rc = kfail(e, rm->err, "fetch of", g->topic);
        else if (!rm->err && rm->offset >= kp->fetched) {
            /* past a gap (retention, compaction): the window starts there */
            if (kp->n == 0 && rm->offset > kp->committed)
                kp->committed = rm->offset;
            rc = window_add(kp, g->topic, rm, e);
            got += rc == 0;
        }
        rd_kafka_message_destroy(rm);
    }
    return rc;
}

/* A message of a dead-letter topic: to <topic>.dlq with its last error. */
static int dead_letter(bk *k, const char *topic, const bus_message *m, const char *error,
                       int attempts, errdetail *e)
{
    char dlq[BUS_NAME_MAX + 8], a[16], sp[16], so[32], err[BUS_ERROR_MAX + 1];
    snprintf(dlq, sizeof(dlq), "%s" BUS_DLQ_SUFFIX, topic);
    snprintf(err, sizeof(err), "%s", error);
    snprintf(a, sizeof(a), "%d", attempts);
    snprintf(sp, sizeof(sp), "%d", m->partition);
    snprintf(so, sizeof(so), "%lld", (long long)m->offset);
    rd_kafka_headers_t *h = rd_kafka_headers_new(4);
    if (!h)
        return errdetail_set(e, CITRUS_ENOMEM, "bus: out of memory");
    rd_kafka_header_add(h, HDR_ERROR, -1, err, (ssize_t)strlen(err));
    rd_kafka_header_add(h, HDR_ATTEMPTS, -1, a, -1);
    rd_kafka_header_add(h, HDR_SRC_PARTITION, -1, sp, -1);
    rd_kafka_header_add(h, HDR_SRC_OFFSET, -1, so, -1);
    int n;
    int rc = topic_partitions(k, dlq, &n, e);
    if (rc < 0) {
        rd_kafka_headers_destroy(h);
        return rc;
    }
    int64_t off;
    return produce(k, dlq, m->partition % n, m->key, m->key_len, m->value, m->value_len, h, &off,
                   e);
}

/* One partition of a poll: nothing when a message not done is still
 * leased or waiting for its retry; else the window's messages in order,
 * after fetching what the poll may take. */
static int poll_partition(bk *k, kgroup *g, int p, size_t max, int64_t vis, int64_t now,
                          bus_message *out, size_t *n, errdetail *e)
{
    kpart *kp = &g->parts[p];
    if (!kp->owned) /* another member's */
        return 0;
    for (size_t i = 0; i < kp->n; i++)
        if (!kp->w[i].done && kp->w[i].attempts > 0 && kp->w[i].visible_ms > now)
            return 0;
    int rc = 0;
    for (size_t i = 0; rc == 0 && *n < max; i++) {
        if (i == kp->n) {
            size_t had = kp->n;
            if ((rc = fill(k, g, p, max - *n, e)) < 0 || kp->n == had)
                break;
        }
        kmsg *m = &kp->w[i];
        if (m->done)
            continue;
        if (m->attempts >= k->b.cfg.max_attempts && !g->dlq) {
            /* its last lease ended with no answer: a handler that never
             * returns must not hold the partition forever */
            char why[BUS_ERROR_MAX + 64];
            snprintf(why, sizeof(why), "%s%svisibility timeout after attempt %d",
                     m->error ? m->error : "", m->error && m->error[0] ? "; then " : "",
                     m->attempts);
            if ((rc = dead_letter(k, g->topic, &m->m, why, m->attempts, e)) == 0)
                m->done = true;
            continue;
        }
        if ((rc = msg_dup(&m->m, &out[*n], e)) < 0) {
            msg_clear(&out[*n]);
            break;
        }
        m->attempts++;
        m->visible_ms = now + vis;
        out[(*n)++].attempt = m->attempts;
    }
    errdetail e2;
    int rc2 = advance(k, g, p, &e2);
    if (rc2 < 0 && rc == 0 && rc2 != CITRUS_ECONFLICT && e) /* a rebalance: stored later */
        *e = e2;
    return rc < 0 ? rc : rc2 == CITRUS_ECONFLICT ? 0 : rc2;
}

static int op_poll(bus *b, const char *group, const char *topic, size_t max, int64_t vis,
                   bus_message **out, size_t *n, errdetail *e)
{
    bk *k = (bk *)b;
    bus_message *msgs = calloc(max, sizeof(*msgs));
    if (!msgs)
        return errdetail_set(e, CITRUS_ENOMEM, "bus: out of memory for a poll");
    *out = msgs;
    pthread_mutex_lock(&k->gmu);
    kgroup *g;
    int rc = group_get(k, group, topic, true, &g, e);
    if (rc == 0)
        rc = group_serve(k, g, e);
    int64_t now = clock_wall_ms(k->b.cfg.clock);
    unsigned start = rc == 0 ? g->rr++ : 0;
    for (int i = 0; rc == 0 && i < g->partitions && *n < max; i++)
        rc = poll_partition(k, g, (int)((start + (unsigned)i) % (unsigned)g->partitions), max, vis,
                            now, msgs, n, e);
    pthread_mutex_unlock(&k->gmu);
    if (rc == 0 && *n == 0) {
        free(msgs);
        *out = NULL;
    }
    return rc;
}

/* What commit and nack share: the topic, the partition, the offset below
 * the partition's end, the group having polled the topic. *w: the window's
 * entry (NULL when m is below the committed offset). */
static int lease_find(bk *k, const char *group, const bus_message *m, kgroup **gout, kmsg **w,
                      errdetail *e)
{
    int parts;
    int64_t lo = 0, hi = 0;
    *w = NULL;
    int rc = topic_part(k, m->topic, m->partition, &parts, e);
    if (rc == 0)
        rc = group_get(k, group, m->topic, false, gout, e);
    if (rc == 0 && *gout && m->partition >= (*gout)->partitions)
        rc = errdetail_set(e, CITRUS_EINVAL, "bus: topic %s had %d partitions when group %s began",
                           m->topic, (*gout)->partitions, group);
    /* below what was fetched, the offset exists: no need to ask the brokers */
    bool known = rc == 0 && *gout && m->offset < (*gout)->parts[m->partition].fetched;
    if (rc == 0 && !known)
        rc = watermarks(k, m->topic, m->partition, &lo, &hi, e);
    if (rc == 0 && !known && m->offset >= hi)
        rc = errdetail_set(e, CITRUS_EINVAL, "bus: %s/%d has offsets below %lld, not %lld",
                           m->topic, m->partition, (long long)hi, (long long)m->offset);
    if (rc == 0 && !*gout)
        rc = errdetail_set(e, CITRUS_ENOTFOUND, "bus: group %s never polled %s", group, m->topic);
    if (rc < 0)
        return rc;
    kpart *kp = &(*gout)->parts[m->partition];
    if (m->offset < kp->committed)
        return 0;
    for (size_t i = 0; i < kp->n; i++) /* empty when the partition is not this member's */
        if (kp->w[i].m.offset == m->offset && kp->w[i].attempts > 0) {
            *w = &kp->w[i];
            return 0;
        }
    if (!kp->owned || m->offset < kp->lost)
        return errdetail_set(e, CITRUS_ECONFLICT,
                             "bus: %s/%d was taken from this member of group %s by a rebalance: "
                             "@%lld will be delivered again",
                             m->topic, m->partition, group, (long long)m->offset);
    return errdetail_set(e, CITRUS_ENOTFOUND, "bus: %s/%d@%lld was never delivered to group %s",
                         m->topic, m->partition, (long long)m->offset, group);
}

static int op_commit(bus *b, const char *group, const bus_message *m, errdetail *e)
{
    bk *k = (bk *)b;
    pthread_mutex_lock(&k->gmu);
    kgroup *g = NULL;
    kmsg *w;
    int rc = lease_find(k, group, m, &g, &w, e);
    if (rc == 0 && w)
        w->done = true;
    if (rc == 0) /* also for one done before: Kafka's offset may lag after a failed commit */
        rc = advance(k, g, m->partition, e);
    pthread_mutex_unlock(&k->gmu);
    return rc;
}

static int op_nack(bus *b, const char *group, const bus_message *m, const char *error,
                   int64_t retry_at, bool dead, errdetail *e)
{
    bk *k = (bk *)b;
    pthread_mutex_lock(&k->gmu);
    kgroup *g = NULL;
    kmsg *w;
    int rc = lease_find(k, group, m, &g, &w, e);
    if (rc == 0 && (!w || w->done || w->attempts != m->attempt))
        rc = errdetail_set(e, CITRUS_ECONFLICT,
                           "bus: the lease of %s/%d@%lld attempt %d is over (committed, or"
                           " delivered again)",
                           m->topic, m->partition, (long long)m->offset, m->attempt);
    if (rc == 0 && !dead) {
        char *err = dup_bytes(error, strnlen(error, BUS_ERROR_MAX));
        if (!err)
            rc = errdetail_set(e, CITRUS_ENOMEM, "bus: out of memory");
        else {
            free(w->error);
            w->error = err;
            w->visible_ms = retry_at;
        }
    } else if (rc == 0) {
        /* the fetched message, not the caller's copy, goes to the dead letters */
        rc = dead_letter(k, m->topic, &w->m, error, m->attempt, e);
        if (rc == 0) {
            w->done = true;
            rc = advance(k, g, m->partition, e);
        }
    }
    pthread_mutex_unlock(&k->gmu);
    return rc;
}

static int row_cmp(const void *a, const void *b)
{
    const bus_group_entry *x = a, *y = b;
    int c = strcmp(x->group, y->group);
    if (c == 0)
        c = strcmp(x->topic, y->topic);
    return c ? c : (x->partition > y->partition) - (x->partition < y->partition);
}

/* ---- describing groups ---- */

/* Rows being gathered. */
typedef struct rows {
    bus_group_entry *v;
    size_t n, cap;
} rows;

static bus_group_entry *row_add(rows *r, const char *group, const char *topic, int p,
                                int64_t committed, errdetail *e)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        bus_group_entry *v = realloc(r->v, cap * sizeof(*v));
        if (!v) {
            errdetail_set(e, CITRUS_ENOMEM, "bus: out of memory");
            return NULL;
        }
        r->v = v;
        r->cap = cap;
    }
    bus_group_entry *x = &r->v[r->n++];
    memset(x, 0, sizeof(*x));
    snprintf(x->group, sizeof(x->group), "%s", group);
    snprintf(x->topic, sizeof(x->topic), "%s", topic);
    x->partition = p;
    x->committed = committed;
    return x;
}

static bool row_has(const rows *r, size_t n, const char *group, const char *topic, int p)
{
    for (size_t i = 0; i < n; i++)
        if (r->v[i].partition == p && strcmp(r->v[i].group, group) == 0 &&
            strcmp(r->v[i].topic, topic) == 0)
            return true;
    return false;
}

/* Group names being gathered, each once. */
typedef struct gnames {
    char **v;
    size_t n, cap;
} gnames;

static int gname_add(gnames *s, const char *name, errdetail *e)
{
    if (!*name || strlen(name) > BUS_NAME_MAX) /* not a group Citrus could name */
        return 0;
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i], name) == 0)
            return 0;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        char **v = realloc(s->v, cap * sizeof(*v));
        if (!v)
            return errdetail_set(e, CITRUS_ENOMEM, "bus: out of memory");
        s->v = v;
        s->cap = cap;
    }
    if (!(s->v[s->n] = dup_bytes(name, strlen(name))))
        return errdetail_set(e, CITRUS_ENOMEM, "bus: out of memory");
    s->n++;
    return 0;
}

static void gnames_free(gnames *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
}

/* Adds the cluster's consumer groups (rd_kafka_list_groups: ListGroups
 * and DescribeGroups per broker) to s. A cluster that does not answer (the mock cluster has
 * no ListGroups; brokers down) leaves s as it was: the describe goes on
 * with the groups the handle knows, and the offsets query then says
 * whether the cluster is there. */
static int groups_list(bk *k, gnames *s, errdetail *e)
{
    /* rd_kafka_list_groups, not the Admin API's ListConsumerGroups: the
     * latter leaks three of the handle's queues in librdkafka 2.0.2
     * (Debian 12) when a broker cannot answer (LeakSanitizer, on the mock
     * cluster) */
    const struct rd_kafka_group_list *l = NULL;
    rd_kafka_resp_err_t err = rd_kafka_list_groups(k->p, NULL, &l, k->request_timeout_ms);
    int rc = 0;
    for (int i = 0; rc == 0 && !err && l && i < l->group_cnt; i++)
        if (!l->groups[i].protocol_type || !*l->groups[i].protocol_type ||
            strcmp(l->groups[i].protocol_type, "consumer") == 0)
            rc = gname_add(s, l->groups[i].group, e);
    if (rc == 0 && err && log_enabled(LOG_DEBUG))
        log_emit(LOG_DEBUG, "bus.kafka", "the cluster did not list (all) its consumer groups",
                 json_pack("{s:s}", "error", rd_kafka_err2str(err)));
    if (l)
        rd_kafka_group_list_destroy(l);
    return rc;
}

/* The committed offsets of group on every partition of topics t (nt
 * topics, ListConsumerGroupOffsets: one OffsetFetch to the group's
 * coordinator): a row for each partition that has one and no row in r's
 * first nlocal (the partitions this process polls). */
static int group_offsets(bk *k, const char *group, const ktopic *t, size_t nt, rows *r,
                         size_t nlocal, errdetail *e)
{
    int total = 0;
    for (size_t i = 0; i < nt; i++)
        total += t[i].partitions;
    if (total == 0)
        return 0;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(total);
    for (size_t i = 0; l && i < nt; i++)
        for (int p = 0; p < t[i].partitions; p++)
            rd_kafka_topic_partition_list_add(l, t[i].name, p);
    rd_kafka_ListConsumerGroupOffsets_t *req =
        l ? rd_kafka_ListConsumerGroupOffsets_new(group, l) : NULL;
    admin_req ar = {0};
    int rc = req ? admin_begin(k, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS, &ar, e)
                 : errdetail_set(e, CITRUS_ENOMEM, "bus: kafka: out of memory");
    if (rc == 0) {
        rd_kafka_ListConsumerGroupOffsets(k->p, &req, 1, ar.ao, ar.q);
        rc = admin_answer(k, &ar, "committed offsets of group", group, e);
    }
    size_t ng = 0;
    const rd_kafka_group_result_t **g =
        rc == 0 ? rd_kafka_ListConsumerGroupOffsets_result_groups(
                      rd_kafka_event_ListConsumerGroupOffsets_result(ar.ev), &ng)
                : NULL;
    const rd_kafka_error_t *ge = ng == 1 ? rd_kafka_group_result_error(g[0]) : NULL;
    if (rc == 0 && (ng != 1 || ge))
        rc = errdetail_set(e, ge ? kerr(rd_kafka_error_code(ge)) : CITRUS_EIO,
                           "bus: kafka: committed offsets of group %s: %s", group,
                           ge ? rd_kafka_error_string(ge) : "no answer");
    const rd_kafka_topic_partition_list_t *got =
        rc == 0 ? rd_kafka_group_result_partitions(g[0]) : NULL;
    for (int i = 0; got && rc == 0 && i < got->cnt; i++) {
        const rd_kafka_topic_partition_t *x = &got->elems[i];
        if (x->err == RD_KAFKA_RESP_ERR_NO_ERROR && x->offset >= 0 &&
            strlen(x->topic) <= BUS_NAME_MAX &&
            !row_has(r, nlocal, group, x->topic, (int)x->partition) &&
            !row_add(r, group, x->topic, (int)x->partition, x->offset, e))
            rc = CITRUS_ENOMEM;
    }
    admin_end(&ar);
    if (req)
        rd_kafka_ListConsumerGroupOffsets_destroy(req);
    if (l)
        rd_kafka_topic_partition_list_destroy(l);
    return rc;
}

/* What kafka-consumer-groups --describe shows: every consumer group of
 *  the cluster (ListGroups where the cluster answers it, the
 * groups of bus_kafka_opts.groups and those this handle polls), a row per
 * partition where the group has a committed Kafka offset, and per
 * partition this handle polls (its committed offset and the messages in
 * flight as this process holds them: leases are per process). */
static int op_groups_describe(bus *b, const char *group, size_t max, bus_group_entry **out,
                              size_t *n, bool *more, errdetail *e)
{
    bk *k = (bk *)b;
    rows r = {0};
    gnames names = {0};
    int rc = 0;
    pthread_mutex_lock(&k->gmu);
    for (kgroup *g = k->groups; rc == 0 && g; g = g->next) {
        if (group && strcmp(g->group, group) != 0)
            continue;
        rc = gname_add(&names, g->group, e);
        for (int p = 0; rc == 0 && p < g->partitions; p++) {
            const kpart *kp = &g->parts[p];
            if (!kp->owned) /* another member's: Kafka's committed offset */
                continue;
            bus_group_entry *x = row_add(&r, g->group, g->topic, p, kp->committed, e);
            if (!x) {
                rc = CITRUS_ENOMEM;
                break;
            }
            for (size_t i = 0; i < kp->n; i++)
                x->in_flight += !kp->w[i].done && kp->w[i].attempts > 0;
        }
    }
    pthread_mutex_unlock(&k->gmu);
    size_t nlocal = r.n;
    if (rc == 0 && group)
        rc = gname_add(&names, group, e);
    for (size_t i = 0; rc == 0 && !group && k->known && k->known[i]; i++)
        rc = gname_add(&names, k->known[i], e);
    if (rc == 0 && !group)
        rc = groups_list(k, &names, e);
    ktopic *topics = NULL;
    size_t nt = 0;
    if (rc == 0)
        rc = topics_snapshot(k, &topics, &nt, e);
    for (size_t i = 0; rc == 0 && i < names.n; i++)
        rc = group_offsets(k, names.v[i], topics, nt, &r, nlocal, e);
    free(topics);
    gnames_free(&names);
    if (rc == 0 && r.n)
        qsort(r.v, r.n, sizeof(*r.v), row_cmp);
    /* the watermarks of the rows shown only */
    for (size_t i = 0; rc == 0 && i < r.n && i < max; i++) {
        bus_group_entry *x = &r.v[i];
        int64_t lo = 0, hi = 0;
        if ((rc = watermarks(k, x->topic, x->partition, &lo, &hi, e)) == 0) {
            x->end = hi;
            x->lag = hi - (x->committed > lo ? x->committed : lo);
        }
    }
    if (rc < 0) {
        free(r.v);
        return rc;
    }
    *more = r.n > max;
    *n = r.n > max ? max : r.n;
    *out = r.v;
    return 0;
}

/* Retention is the brokers' (retention.ms and retention.bytes of each
 * topic): nothing to do here. */
static int op_trim(bus *b, int64_t *deleted, errdetail *e)
{
    (void)b;
    (void)e;
    *deleted = 0;
    return 0;
}

static void op_close(bus *b)
{
    bk *k = (bk *)b;
    while (k->groups) {
        kgroup *g = k->groups;
        k->groups = g->next;
        group_free(g);
    }
    if (k->r)
        rd_kafka_destroy(k->r);
    if (k->p) {
        rd_kafka_flush(k->p, k->publish_timeout_ms);
        rd_kafka_destroy(k->p);
    }
    free(k->topics);
    free(k->bootstrap);
    free(k->client_id);
    free(k->protocol);
    free(k->mechanism);
    free(k->username);
    if (k->password) {
        memset(k->password, 0, strlen(k->password));
        free(k->password);
    }
    free(k->ca_file);
    for (size_t i = 0; k->known && k->known[i]; i++)
        free(k->known[i]);
    free(k->known);
    pthread_mutex_destroy(&k->tmu);
    pthread_mutex_destroy(&k->dmu);
    pthread_mutex_destroy(&k->gmu);
    pthread_mutex_destroy(&k->rmu);
    free(k);
}

static const bus_ops kafka_ops = {.name = "kafka",
                                  .topic_create = op_topic_create,
                                  .topic_describe = op_topic_describe,
                                  .publish = op_publish,
                                  .poll = op_poll,
                                  .commit = op_commit,
                                  .nack = op_nack,
                                  .read = op_read,
                                  .trim = op_trim,
                                  .close = op_close,
                                  .topics_list = op_topics_list,
                                  .groups_describe = op_groups_describe};

static int clients_start(bk *k, errdetail *e)
{
    rd_kafka_conf_t *c;
    int rc = conf_common(k, &c, e);
    if (rc < 0)
        return rc;
    char timeout[24], request[24];
    snprintf(timeout, sizeof(timeout), "%d", k->publish_timeout_ms);
    snprintf(request, sizeof(request), "%d",
             k->request_timeout_ms < k->publish_timeout_ms ? k->request_timeout_ms
                                                           : k->publish_timeout_ms);
    static const char *const names[] = {"enable.idempotence", "acks",
                                        "linger.ms",          "message.timeout.ms",
                                        "request.timeout.ms", NULL};
    const char *const values[] = {"true", "all", "1", timeout, request};
    rc = set_all(c, names, values, e);
    if (rc < 0) {
        rd_kafka_conf_destroy(c);
        return rc;
    }
    rd_kafka_conf_set_opaque(c, k);
    rd_kafka_conf_set_dr_msg_cb(c, dr_cb);
    rc = client_new(RD_KAFKA_PRODUCER, c, &k->p, e);
    return rc < 0 ? rc : consumer_new(k, NULL, &k->r, e);
}

/* Copies bus_kafka_opts.groups. */
static int known_groups(bk *k, const char *const *groups, errdetail *e)
{
    size_t n = 0;
    while (groups && groups[n])
        if (n++ == MAX_KNOWN_GROUPS)
            return errdetail_set(e, CITRUS_EINVAL, "bus: kafka: more than %d groups to describe",
                                 MAX_KNOWN_GROUPS);
    if (n == 0)
        return 0;
    if (!(k->known = calloc(n + 1, sizeof(*k->known))))
        return errdetail_set(e, CITRUS_ENOMEM, "bus: out of memory");
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(groups[i]);
        if (len == 0 || len > BUS_NAME_MAX)
            return errdetail_set(e, CITRUS_EINVAL, "bus: kafka: a group to describe of %zu bytes",
                                 len);
        if (!(k->known[i] = dup_bytes(groups[i], len)))
            return errdetail_set(e, CITRUS_ENOMEM, "bus: out of memory");
    }
    return 0;
}

int bus_open_kafka(const bus_kafka_opts *o, const bus_config *cfg, bus **out, errdetail *e)
{
    *out = NULL;
    if (!o || !o->bootstrap_servers || !*o->bootstrap_servers)
        return errdetail_set(e, CITRUS_EINVAL, "bus: kafka: no bootstrap servers");
    if (o->publish_timeout_ms < 0 || o->request_timeout_ms < 0 || o->replication_factor < 0 ||
        o->session_timeout_ms < 0)
        return errdetail_set(e, CITRUS_EINVAL, "bus: kafka: negative timeout or replication");
    if (o->admin && (!o->admin->create || !o->admin->retention))
        return errdetail_set(e, CITRUS_EINVAL, "bus: kafka: an admin without its calls");
    bk *k = calloc(1, sizeof(*k));
    if (!k)
        return errdetail_set(e, CITRUS_ENOMEM, "bus: out of memory");
    k->b.ops = &kafka_ops;
    pthread_mutex_init(&k->tmu, NULL);
    pthread_mutex_init(&k->dmu, NULL);
    pthread_mutex_init(&k->gmu, NULL);
    pthread_mutex_init(&k->rmu, NULL);
    k->publish_timeout_ms =
        o->publish_timeout_ms ? o->publish_timeout_ms : DEFAULT_PUBLISH_TIMEOUT_MS;
    k->request_timeout_ms =
        o->request_timeout_ms ? o->request_timeout_ms : DEFAULT_REQUEST_TIMEOUT_MS;
    k->replication = o->replication_factor;
    k->session_timeout_ms =
        o->session_timeout_ms ? o->session_timeout_ms : DEFAULT_SESSION_TIMEOUT_MS;
    if (o->admin) {
        k->admin = *o->admin;
        k->has_admin = true;
    }
    int rc = bus_config_complete(cfg, &k->b.cfg, e);
    k->bootstrap = dup_opt(o->bootstrap_servers);
    k->client_id = dup_opt(o->client_id);
    k->protocol = dup_opt(o->security_protocol);
    k->mechanism = dup_opt(o->sasl_mechanism);
    k->username = dup_opt(o->sasl_username);
    k->password = dup_opt(o->sasl_password);
    k->ca_file = dup_opt(o->ssl_ca_file);
    const char *given[] = {o->client_id,     o->security_protocol, o->sasl_mechanism,
                           o->sasl_username, o->sasl_password,     o->ssl_ca_file};
    const char *kept[] = {k->client_id, k->protocol, k->mechanism,
                          k->username,  k->password, k->ca_file};
    for (size_t i = 0; rc == 0 && i < sizeof(given) / sizeof(given[0]); i++)
        if (given[i] && *given[i] && !kept[i])
            rc = errdetail_set(e, CITRUS_ENOMEM, "bus: out of memory");
    if (rc == 0 && !k->bootstrap)
        rc = errdetail_set(e, CITRUS_ENOMEM, "bus: out of memory");
    if (rc == 0)
        rc = known_groups(k, o->groups, e);
    if (rc == 0)
        rc = clients_start(k, e);
    if (rc < 0) {
        op_close(&k->b);
        return rc;
    }
    *out = &k->b;
    return 0;
}

int bus_kafka_member_config(bus *b, const char *group, const char *topic, const char *name,
                            char *buf, size_t len)
{
    if (!b || b->ops != &kafka_ops || !group || !topic || !name || !buf || len == 0)
        return CITRUS_EINVAL;
    bk *k = (bk *)b;
    pthread_mutex_lock(&k->gmu);
    kgroup *g = NULL;
    int rc = group_get(k, group, topic, false, &g, NULL);
    size_t n = len;
    if (rc == 0 && !g)
        rc = CITRUS_ENOTFOUND;
    if (rc == 0) {
        /* n: the value's full length, with its NUL (more than len: cut) */
        rd_kafka_conf_res_t res = rd_kafka_conf_get(rd_kafka_conf(g->c), name, buf, &n);
        rc = res != RD_KAFKA_CONF_OK ? CITRUS_ENOTFOUND : n > len ? CITRUS_EINVAL : 0;
    }
    pthread_mutex_unlock(&k->gmu);
    return rc;
}

/* ---- ThreadSanitizer ----
 *
 * librdkafka runs on C11 threads, and glibc's thrd_create calls its
 * pthread_create internally, where ThreadSanitizer's interceptor does not
 * see it: the thread would start unknown to TSan, which crashes on its
 * first allocation. Under TSan, thrd_create and thrd_join (which librdkafka
 * imports) are defined here on the pthread calls TSan intercepts, as glibc
 * defines them. librdkafka's own locks stay invisible to TSan (glibc's
 * mtx_lock is internal too), and tests/tsan.supp ignores what librdkafka
 * does through intercepted calls: TSan checks our code. Not in other
 * builds. */
#if defined(__SANITIZE_THREAD__)
#define BUS_KAFKA_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define BUS_KAFKA_TSAN 1
#endif
#endif

#ifdef BUS_KAFKA_TSAN
#include <errno.h>
#include <stdint.h>
#include <threads.h>

typedef struct c11_start {
    thrd_start_t fn;
    void *arg;
} c11_start;

static void *c11_main(void *p)
{
    c11_start s = *(c11_start *)p;
    free(p);
    return (void *)(intptr_t)s.fn(s.arg);
}

static int c11_err(int err)
{
    return err == 0           ? thrd_success
           : err == ENOMEM    ? thrd_nomem
           : err == ETIMEDOUT ? thrd_timedout
           : err == EBUSY     ? thrd_busy
                              : thrd_error;
}

int thrd_create(thrd_t *thr, thrd_start_t fn, void *arg)
{
    c11_start *s = malloc(sizeof(*s));
    if (!s)
        return thrd_nomem;
    *s = (c11_start){fn, arg};
    int err = pthread_create(thr, NULL, c11_main, s);
    if (err)
        free(s);
    return c11_err(err);
}

int thrd_join(thrd_t thr, int *res)
{
    void *r = NULL;
    int err = pthread_join(thr, &r);
    if (err == 0 && res)
        *res = (int)(intptr_t)r;
    return c11_err(err);
}

#endif
