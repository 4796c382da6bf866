/* bus/bus.c — argument checks, the partition of a key, the retry backoff
 * and the dispatch to a backend's bus_ops (see bus.h). */
#include "bus/bus.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "citrus/errors.h"
#include "core/hash.h"

#define DEFAULT_MAX_MESSAGE ((size_t)1024 * 1024)
#define DEFAULT_MAX_TOPICS 256
#define DEFAULT_MAX_PARTITIONS 64
#define DEFAULT_POLL_MAX 1000
#define DEFAULT_MAX_ATTEMPTS 5
#define DEFAULT_BACKOFF_BASE_MS 1000
#define DEFAULT_BACKOFF_CAP_MS 300000

static void bus_config_default(bus_config *c)
{
    *c = (bus_config){.max_message_bytes = DEFAULT_MAX_MESSAGE,
                      .max_topics = DEFAULT_MAX_TOPICS,
                      .max_partitions = DEFAULT_MAX_PARTITIONS,
                      .poll_max = DEFAULT_POLL_MAX,
                      .max_attempts = DEFAULT_MAX_ATTEMPTS,
                      .backoff_base_ms = DEFAULT_BACKOFF_BASE_MS,
                      .backoff_cap_ms = DEFAULT_BACKOFF_CAP_MS};
}

int bus_config_complete(const bus_config *c, bus_config *out, errdetail *e)
{
    bus_config d;
    bus_config_default(&d);
    if (c) {
        d.clock = c->clock;
        d.random = c->random;
        d.random_ctx = c->random_ctx;
        if (c->max_message_bytes)
            d.max_message_bytes = c->max_message_bytes;
        if (c->max_topics)
            d.max_topics = c->max_topics;
        if (c->max_partitions)
            d.max_partitions = c->max_partitions;
        if (c->poll_max)
            d.poll_max = c->poll_max;
        if (c->max_attempts)
            d.max_attempts = c->max_attempts;
        if (c->backoff_base_ms)
            d.backoff_base_ms = c->backoff_base_ms;
        if (c->backoff_cap_ms)
            d.backoff_cap_ms = c->backoff_cap_ms;
    }
    if (d.max_topics < 0 || d.max_partitions < 0 || d.max_attempts < 0 || d.backoff_base_ms < 0 ||
        d.backoff_cap_ms < d.backoff_base_ms || d.backoff_cap_ms > BUS_BACKOFF_MAX_MS)
        return errdetail_set(e, CITRUS_EINVAL,
                             "bus: bad config (a negative limit, or a backoff"
                             " cap below its base or past a day)");
    *out = d;
    return 0;
}

int bus_partition_for(const void *key, size_t key_len, int n)
{
    uint64_t h = citrus_hash(CITRUS_HASH_MURMUR3, key_len ? key : "", key_len);
    return n > 0 ? (int)(h % (uint64_t)n) : 0;
}

static uint64_t random_default(void)
{
    uint64_t r = 0;
    if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
        r = 0;
    return r;
}

int64_t bus_backoff_ms(const bus_config *cfg, int attempt)
{
    int64_t d = cfg->backoff_base_ms;
    for (int i = 1; i < attempt && d < cfg->backoff_cap_ms; i++)
        d = d > cfg->backoff_cap_ms / 2 ? cfg->backoff_cap_ms : d * 2;
    if (d > cfg->backoff_cap_ms)
        d = cfg->backoff_cap_ms;
    uint64_t r = cfg->random ? cfg->random(cfg->random_ctx) : random_default();
    int64_t h = d / 2;
    return d - h + (int64_t)(r % (uint64_t)(h + 1));
}

/* ---- argument checks ---- */

static bool name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > BUS_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

bool bus_topic_is_dlq(const char *name)
{
    size_t n = strlen(name), k = strlen(BUS_DLQ_SUFFIX);
    return n > k && strcmp(name + n - k, BUS_DLQ_SUFFIX) == 0;
}

/* what: "topic" or "group". */
static int check_name(const char *what, const char *name, errdetail *e)
{
    if (!name_ok(name))
        return errdetail_set(e, CITRUS_EINVAL,
                             "bus: a %s name is 1..%d characters of A-Z a-z 0-9 . _ -", what,
                             BUS_NAME_MAX);
    return 0;
}

#define check_topic(t, e) check_name("topic", (t), (e))
#define check_group(g, e) check_name("group", (g), (e))

static int check_message(const bus_message *m, errdetail *e)
{
    if (!m)
        return errdetail_set(e, CITRUS_EINVAL, "bus: no message");
    int rc = check_topic(m->topic, e);
    if (rc == 0 && (m->partition < 0 || m->offset < 0))
        rc = errdetail_set(e, CITRUS_EINVAL, "bus: negative partition or offset");
    return rc;
}

static int check_limit(const bus *b, size_t max, errdetail *e)
{
    if (max == 0)
        return errdetail_set(e, CITRUS_EINVAL, "bus: a poll or read asks for at least 1 message");
    if (max > b->cfg.poll_max)
        return errdetail_set(e, CITRUS_ETOOMANY, "bus: at most %zu messages per poll or read",
                             b->cfg.poll_max);
    return 0;
}

/* ---- the calls ---- */

int bus_topic_create(bus *b, const char *name, const bus_topic_opts *o, errdetail *e)
{
    int rc = check_topic(name, e);
    if (rc < 0)
        return rc;
    if (strlen(name) + strlen(BUS_DLQ_SUFFIX) > BUS_NAME_MAX || bus_topic_is_dlq(name))
        return errdetail_set(
            e, CITRUS_EINVAL,
            "bus: %s: a topic name leaves room for, and does not end in, " BUS_DLQ_SUFFIX
            " (its dead-letter topic)",
            name);
    if (!o || o->partitions < 1 || o->partitions > b->cfg.max_partitions)
        return errdetail_set(e, CITRUS_EINVAL, "bus: %s: partitions must be 1..%d", name,
                             b->cfg.max_partitions);
    if (o->retention_ms < 0 || o->retention_bytes < 0)
        return errdetail_set(e, CITRUS_EINVAL, "bus: %s: negative retention", name);
    return b->ops->topic_create(b, name, o, e);
}

int bus_topic_describe(bus *b, const char *name, bus_topic_info *out, errdetail *e)
{
    int rc = check_topic(name, e);
    if (rc == 0 && !out)
        rc = errdetail_set(e, CITRUS_EINVAL, "bus: no output");
    return rc < 0 ? rc : b->ops->topic_describe(b, name, out, e);
}

/* One message's key and value. */
static int check_record(const bus *b, const void *key, size_t key_len, const void *value,
                        size_t value_len, errdetail *e)
{
    if ((!key && key_len) || (!value && value_len))
        return errdetail_set(e, CITRUS_EINVAL, "bus: NULL key or value with a length");
    if (key_len > BUS_KEY_MAX)
        return errdetail_set(e, CITRUS_ETOOBIGVAL, "bus: a key is at most %d bytes", BUS_KEY_MAX);
    if (key_len > b->cfg.max_message_bytes || value_len > b->cfg.max_message_bytes - key_len)
        return errdetail_set(e, CITRUS_ETOOBIGVAL,
                             "bus: a message (key and value) is at most %zu bytes",
                             b->cfg.max_message_bytes);
    return 0;
}

int bus_publish(bus *b, const char *topic, const void *key, size_t key_len, const void *value,
                size_t value_len, int *partition, int64_t *offset, errdetail *e)
{
    int rc = check_topic(topic, e);
    if (rc == 0)
        rc = check_record(b, key, key_len, value, value_len, e);
    if (rc < 0)
        return rc;
    int p = -1;
    int64_t off = -1;
    rc = b->ops->publish(b, topic, key_len ? key : "", key_len, value_len ? value : "", value_len,
                         &p, &off, e);
    if (rc == 0 && partition)
        *partition = p;
    if (rc == 0 && offset)
        *offset = off;
    return rc;
}

int bus_publish_batch(bus *b, const char *topic, const bus_record *recs, size_t n, int *partitions,
                      int64_t *offsets, size_t *done, errdetail *e)
{
    if (done)
        *done = 0;
    int rc = check_topic(topic, e);
    if (rc == 0 && !recs)
        rc = errdetail_set(e, CITRUS_EINVAL, "bus: no records");
    if (rc == 0)
        rc = check_limit(b, n, e);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = check_record(b, recs[i].key, recs[i].key_len, recs[i].value, recs[i].value_len, e);
    if (rc < 0)
        return rc;
    if (!b->ops->publish_batch) {
        for (size_t i = 0; i < n; i++) {
            rc = bus_publish(b, topic, recs[i].key, recs[i].key_len, recs[i].value,
                             recs[i].value_len, partitions ? &partitions[i] : NULL,
                             offsets ? &offsets[i] : NULL, e);
            if (rc < 0)
                return rc;
            if (done)
                *done = i + 1;
        }
        return 0;
    }
    int *p = calloc(n, sizeof(*p));
    int64_t *o = calloc(n, sizeof(*o));
    if (!p || !o)
        rc = errdetail_set(e, CITRUS_ENOMEM, "bus: out of memory for a batch");
    bus_record *r = rc == 0 ? calloc(n, sizeof(*r)) : NULL;
    if (rc == 0 && !r)
        rc = errdetail_set(e, CITRUS_ENOMEM, "bus: out of memory for a batch");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        r[i] = recs[i];
        r[i].key = recs[i].key_len ? recs[i].key : "";
        r[i].value = recs[i].value_len ? recs[i].value : "";
    }
    if (rc == 0)
        rc = b->ops->publish_batch(b, topic, r, n, p, o, e);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (partitions)
            partitions[i] = p[i];
        if (offsets)
            offsets[i] = o[i];
    }
    if (rc == 0 && done)
        *done = n;
    free(r);
    free(p);
    free(o);
    return rc;
}

int bus_poll(bus *b, const char *group, const char *topic, size_t max, int64_t visibility_ms,
             bus_message **out, size_t *n, errdetail *e)
{
    if (out)
        *out = NULL;
    if (n)
        *n = 0;
    int rc = check_group(group, e);
    if (rc == 0)
        rc = check_topic(topic, e);
    if (rc == 0)
        rc = check_limit(b, max, e);
    if (rc == 0 && (!out || !n || visibility_ms <= 0 || visibility_ms > BUS_VISIBILITY_MAX_MS))
        rc = errdetail_set(e, CITRUS_EINVAL,
                           "bus: poll needs outputs and a visibility timeout of 1 ms to 12 h");
    if (rc < 0)
        return rc;
    rc = b->ops->poll(b, group, topic, max, visibility_ms, out, n, e);
    if (rc < 0) {
        bus_messages_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

int bus_commit(bus *b, const char *group, const bus_message *m, errdetail *e)
{
    int rc = check_group(group, e);
    if (rc == 0)
        rc = check_message(m, e);
    return rc < 0 ? rc : b->ops->commit(b, group, m, e);
}

int bus_commit_batch(bus *b, const char *group, const bus_message *const *msgs, size_t n, int *rcs,
                     errdetail *e)
{
    int rc = check_group(group, e);
    if (rc == 0 && !msgs)
        rc = errdetail_set(e, CITRUS_EINVAL, "bus: no messages");
    if (rc == 0)
        rc = check_limit(b, n, e);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = check_message(msgs[i], e);
    for (size_t i = 0; rc < 0 && rcs && i < n; i++)
        rcs[i] = rc; /* refused as a whole: none committed */
    if (rc < 0)
        return rc;
    int *out = rcs ? rcs : calloc(n, sizeof(*out));
    if (!out)
        return errdetail_set(e, CITRUS_ENOMEM, "bus: out of memory for a batch");
    if (b->ops->commit_batch) {
        rc = b->ops->commit_batch(b, group, msgs, n, out, e);
    } else { /* one commit after another; the first error kept */
        errdetail first = {0};
        for (size_t i = 0; i < n; i++) {
            errdetail ei = {0};
            out[i] = b->ops->commit(b, group, msgs[i], &ei);
            if (out[i] < 0 && rc == 0) {
                rc = out[i];
                first = ei;
            }
        }
        if (rc < 0 && e)
            *e = first;
    }
    if (out != rcs)
        free(out);
    return rc;
}

int bus_nack(bus *b, const char *group, const bus_message *m, const char *error, errdetail *e)
{
    int rc = check_group(group, e);
    if (rc == 0)
        rc = check_message(m, e);
    if (rc == 0 && m->attempt < 1)
        rc = errdetail_set(e, CITRUS_EINVAL, "bus: nack of a message that was not polled");
    if (rc < 0)
        return rc;
    bool dead = m->attempt >= b->cfg.max_attempts && !bus_topic_is_dlq(m->topic);
    int64_t retry_at = clock_wall_ms(b->cfg.clock);
    if (!dead)
        retry_at += bus_backoff_ms(&b->cfg, m->attempt);
    return b->ops->nack(b, group, m, error ? error : "", retry_at, dead, e);
}

int bus_dead_letter(bus *b, const char *group, const bus_message *m, const char *error,
                    errdetail *e)
{
    if (m && bus_topic_is_dlq(m->topic))
        return bus_nack(b, group, m, error, e);
    int rc = check_group(group, e);
    if (rc == 0)
        rc = check_message(m, e);
    if (rc == 0 && m->attempt < 1)
        rc = errdetail_set(e, CITRUS_EINVAL, "bus: dead letter of a message that was not polled");
    if (rc < 0)
        return rc;
    return b->ops->nack(b, group, m, error ? error : "", clock_wall_ms(b->cfg.clock), true, e);
}

int bus_read(bus *b, const char *topic, int partition, int64_t from_offset, size_t limit,
             bus_message **out, size_t *n, errdetail *e)
{
    if (out)
        *out = NULL;
    if (n)
        *n = 0;
    int rc = check_topic(topic, e);
    if (rc == 0)
        rc = check_limit(b, limit, e);
    if (rc == 0 && (!out || !n))
        rc = errdetail_set(e, CITRUS_EINVAL, "bus: read needs outputs");
    if (rc == 0 && (partition < 0 || from_offset < 0))
        rc = errdetail_set(e, CITRUS_EINVAL, "bus: negative partition or offset");
    if (rc < 0)
        return rc;
    rc = b->ops->read(b, topic, partition, from_offset, limit, out, n, e);
    if (rc < 0) {
        bus_messages_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

static int unsupported(const bus *b, const char *what, errdetail *e)
{
    return errdetail_set(e, CITRUS_EUNSUPPORTED, "bus: the %s backend does not support %s",
                         b->ops->name, what);
}

int bus_topics_list(bus *b, bus_topic_entry **out, size_t *n, errdetail *e)
{
    if (!out || !n)
        return errdetail_set(e, CITRUS_EINVAL, "bus: listing topics needs outputs");
    *out = NULL;
    *n = 0;
    if (!b->ops->topics_list)
        return unsupported(b, "listing topics", e);
    int rc = b->ops->topics_list(b, out, n, e);
    if (rc < 0 || *n == 0) {
        bus_topics_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

int bus_groups_describe(bus *b, const char *group, size_t max, bus_group_entry **out, size_t *n,
                        bool *more, errdetail *e)
{
    bool m = false;
    if (out)
        *out = NULL;
    if (n)
        *n = 0;
    if (more)
        *more = false;
    int rc = group ? check_group(group, e) : 0;
    if (rc == 0)
        rc = check_limit(b, max, e);
    if (rc == 0 && (!out || !n))
        rc = errdetail_set(e, CITRUS_EINVAL, "bus: describing groups needs outputs");
    if (rc < 0)
        return rc;
    if (!b->ops->groups_describe)
        return unsupported(b, "describing consumer groups", e);
    rc = b->ops->groups_describe(b, group, max, out, n, &m, e);
    if (rc < 0 || *n == 0) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    if (rc == 0 && more)
        *more = m;
    return rc;
}

int bus_trim(bus *b, int64_t *deleted, errdetail *e)
{
    int64_t d = 0;
    int rc = b->ops->trim(b, &d, e);
    if (deleted)
        *deleted = d;
    return rc;
}

void bus_close(bus *b)
{
    if (b)
        b->ops->close(b);
}

void bus_messages_free(bus_message *m, size_t n)
{
    if (!m)
        return;
    for (size_t i = 0; i < n; i++) {
        free(m[i].key);
        free(m[i].value);
        free(m[i].error);
    }
    free(m);
}

void bus_topics_free(bus_topic_entry *t, size_t n)
{
    if (!t)
        return;
    for (size_t i = 0; i < n; i++)
        free(t[i].parts);
    free(t);
}
