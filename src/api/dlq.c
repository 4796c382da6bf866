/* api/dlq.c — /v1/dlq/{topic}: the dead letters of <topic>.dlq, and their
 * replay on <topic> (docs/events.md, "Operating the bus"). A dead letter's
 * id is "<partition>-<offset>" in the dead-letter topic.
 *
 * A replay is marked in the catalog (DLQ_REPLAYS, wire/catalog_keys.h) so
 * the listing shows what was replayed and a second replay is refused (409,
 * with where the first went) unless forced. Crash-safe without a
 * transaction across the catalog and the bus: the mark says "replaying"
 * (with the partition and its end offset) before the publish and
 * "replayed" (with the offset) after it. A mark left "replaying" by a
 * crash is settled by the next replay of that dead letter: it reads the
 * partition from the recorded offset for the dead letter's copy (same key,
 * same value) and records it as the replay when it is there, else
 * publishes; so a dead letter is never republished twice without force,
 * nor marked without being republished. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "api/events.h"
#include "api/handlers.h"
#include "catalog/txb.h"
#include "citrus/errors.h"
#include "obs/log.h"
#include "sys/clock.h"
#include "wire/catalog_keys.h"
#include "wire/shard_json.h"

/* A mark "replaying" for longer was cut short (the node crashed or the
 * request died): a replay may then take over. Meanwhile another replay
 * of the dead letter is refused as in progress. */
#define REPLAY_PENDING_MS 60000
/* Messages read after the recorded offset to find a cut-short replay's
 * copy; past it the dead letter is published again. */
#define REPLAY_SEARCH_MAX 10000
#define MARK_KEY_MAX (sizeof(DLQ_REPLAYS) + BUS_NAME_MAX + 32)
/* The longest text a mark keeps ("by", "correlation_id"), and what a
 * mark adds at most to a dead letter in a listing (counted against
 * server.max_response_bytes). */
#define MARK_TEXT_MAX 256
#define MARK_JSON_MAX 1024

/* name + ".dlq" into buf: false (replied 404) when it does not fit. */
static bool dlq_name(http_req *r, const char *topic, char *buf, size_t len)
{
    if ((size_t)snprintf(buf, len, "%s" BUS_DLQ_SUFFIX, topic) < len)
        return true;
    http_reply_errorf(r, CITRUS_ENOTFOUND, "no topic '%.200s'", topic);
    return false;
}

/* The topic and its dead-letter topic, from one listing: the dead-letter
 * entry, or NULL after a reply (404 for either unknown). */
static const bus_topic_entry *dlq_topic(http_req *r, app *a, const char *topic, const char *dlq,
                                        bus_topic_entry **all, size_t *n, int *rc)
{
    const bus_topic_entry *src = api_events_topic(r, a, topic, all, n, rc);
    if (!src)
        return NULL;
    if (src->dlq) {
        http_reply_errorf(r, CITRUS_ENOTFOUND, "'%s' is a dead-letter topic; name its source topic",
                          topic);
        *rc = CITRUS_ENOTFOUND;
        return NULL;
    }
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*all)[i].name, dlq) == 0)
            return &(*all)[i];
    http_reply_errorf(r, CITRUS_ENOTFOUND, "topic '%s' has no dead-letter topic", topic);
    *rc = CITRUS_ENOTFOUND;
    return NULL;
}

/* ---- replay marks ----------------------------------------------------- */

static void mark_key(char *buf, size_t len, const char *topic, int part, int64_t off)
{
    snprintf(buf, len, DLQ_REPLAYS "%s/%04d-%019lld", topic, part, (long long)off);
}

/* The mark at key: *doc (NULL: none; an unreadable one: {}) and its mod
 * revision. */
static int mark_get(app *a, const char *key, json_t **doc, int64_t *mod)
{
    kv_range_req req = {.key = key};
    kv_range_res res;
    *doc = NULL;
    *mod = 0;
    int rc = store_range(a->st, &req, &res);
    if (rc < 0)
        return rc;
    if (res.count == 1) {
        *doc = json_loadb((const char *)res.items[0].value, res.items[0].value_len, 0, NULL);
        *mod = res.items[0].mod_revision;
        if (!json_is_object(*doc)) {
            json_decref(*doc);
            *doc = json_object();
        }
    }
    kv_range_res_free(&res);
    return 0;
}

/* Writes doc (reference stolen; NULL deletes) at key when its mod
 * revision is still mod (0: absent): *ok whether it was, *rev the new. */
static int mark_put(app *a, const char *key, int64_t mod, json_t *doc, bool *ok, int64_t *rev)
{
    txb t;
    txb_init(&t);
    if (mod)
        txb_cmp_mod(&t, key, mod);
    else
        txb_cmp_version(&t, key, 0);
    if (doc)
        txb_put_json(&t, key, doc);
    else
        txb_del(&t, key, false);
    int rc = txb_commit(&t, a->st, ok, rev);
    txb_free(&t);
    return rc;
}

/* Annotates items (a page of dead letters of topic, in (partition,
 * offset) order) with their marks: "replay" the mark or null; without
 * who (the caller cannot replay: a reader) the mark's "by", the principal
 * that replayed, is left out, as the audit log is not a reader's. One range
 * read: the keys sort as the dead letters, and those from the first
 * item's key with its last digit cut up to the last item's are at most
 * the page's and the 9 before. */
static int marks_attach(app *a, const char *topic, json_t *items, bool who)
{
    size_t n = json_array_size(items);
    size_t i;
    json_t *v;
    json_array_foreach(items, i, v)
    {
        json_object_set_new(v, "replay", json_null());
    }
    if (n == 0)
        return 0;
    int part;
    int64_t off;
    char prefix[MARK_KEY_MAX], after[MARK_KEY_MAX];
    snprintf(prefix, sizeof(prefix), DLQ_REPLAYS "%s/", topic);
    json_t *first = json_array_get(items, 0);
    long long first_off;
    if (sscanf(json_string_value(json_object_get(first, "id")), "%d-%lld", &part, &first_off) != 2)
        return 0;
    off = first_off;
    mark_key(after, sizeof(after), topic, part, off);
    after[strlen(after) - 1] = 0;
    kv_range_req req = {.key = prefix, .prefix = true, .after = after, .limit = n + 10};
    kv_range_res res;
    int rc = store_range(a->st, &req, &res);
    if (rc < 0)
        return rc;
    for (size_t k = 0; k < res.count; k++) {
        char id[64];
        long long o;
        if (sscanf(res.items[k].key + strlen(prefix), "%d-%lld", &part, &o) != 2)
            continue;
        snprintf(id, sizeof(id), "%d-%lld", part, o);
        json_array_foreach(items, i, v)
        {
            const char *vid = json_string_value(json_object_get(v, "id"));
            if (vid && strcmp(vid, id) == 0) {
                json_t *m =
                    json_loadb((const char *)res.items[k].value, res.items[k].value_len, 0, NULL);
                if (json_is_object(m) && !who)
                    json_object_del(m, "by");
                json_object_set_new(v, "replay", json_is_object(m) ? m : json_object());
                if (!json_is_object(m))
                    json_decref(m);
            }
        }
    }
    kv_range_res_free(&res);
    return 0;
}

int api_dlq_list(http_req *r, void *ctx)
{
    APP_OFFLOAD(r, api_dlq_list, ctx);
    app *a = ctx;
    if (api_events_bus(r, a) < 0)
        return CITRUS_EUNAVAILABLE;
    const char *topic = http_req_param(r, "topic");
    char dlq[BUS_NAME_MAX + 8];
    if (!dlq_name(r, topic, dlq, sizeof(dlq)))
        return CITRUS_ENOTFOUND;
    bus_topic_entry *all = NULL;
    size_t nt = 0;
    int rc;
    const bus_topic_entry *t = dlq_topic(r, a, topic, dlq, &all, &nt, &rc);
    int part = 0;
    int64_t from = 0;
    size_t limit = 0;
    if (t)
        rc = api_events_page_args(r, a, t, false, &part, &from, &limit);
    if (rc < 0) {
        bus_topics_free(all, nt);
        return rc;
    }
    /* from (part, from) on, partition after partition, until limit or the
     * answer's bound */
    json_t *items = json_array();
    size_t bytes = 0;
    bool full = false;
    int p = part;
    int64_t off = from;
    errdetail e;
    while (rc == 0 && !full && p < t->info.partitions) {
        if (off >= t->parts[p].high) {
            if (++p < t->info.partitions)
                off = t->parts[p].low;
            continue;
        }
        bus_message *m = NULL;
        size_t n = 0;
        rc = bus_read(a->bus, dlq, p, off, limit - json_array_size(items), &m, &n, &e);
        for (size_t i = 0; rc == 0 && i < n && !full; i++) {
            full = !api_events_append(items, api_events_message_json(&m[i], true),
                                      a->max_response_bytes, &bytes);
            if (!full) {
                off = m[i].offset + 1;
                bytes += MARK_JSON_MAX; /* its replay mark, attached below */
            }
        }
        bus_messages_free(m, n);
        if (rc == 0 && n == 0)
            off = t->parts[p].high; /* nothing more in this partition */
        full = full || json_array_size(items) >= limit;
    }
    /* where the next page starts: the first partition from (p, off) with
     * something left */
    while (p < t->info.partitions && off >= t->parts[p].high)
        if (++p < t->info.partitions)
            off = t->parts[p].low;
    bool more = p < t->info.partitions;
    bus_topics_free(all, nt);
    if (rc < 0) { /* compacted: trimmed by retention meanwhile */
        json_decref(items);
        return http_reply_error(r, rc, e.message, NULL);
    }
    rc = marks_attach(a, topic, items, auth_level_allows(api_principal(r)->roles, AUTH_OPERATOR));
    if (rc < 0) {
        json_decref(items);
        return http_reply_error(r, rc, "cannot read the dead letters' replay marks", NULL);
    }
    json_t *body = json_pack("{s:s,s:s,s:o,s:b}", "topic", topic, "dead_letter_topic", dlq,
                             "dead_letters", items, "more", more);
    if (more)
        json_object_set_new(body, "next",
                            json_pack("{s:i,s:I}", "partition", p, "from_offset", (json_int_t)off));
    return http_reply_json(r, 200, body);
}

/* "<partition>-<offset>", both decimal without sign: false otherwise. */
static bool parse_id(const char *id, int *part, int64_t *off)
{
    const char *dash = strchr(id, '-');
    if (!dash || dash == id || !dash[1] || strspn(id, "0123456789") != (size_t)(dash - id) ||
        strspn(dash + 1, "0123456789") != strlen(dash + 1) || dash - id > 4)
        return false;
    errno = 0;
    char *end;
    long long o = strtoll(dash + 1, &end, 10);
    if (errno)
        return false;
    *part = atoi(id);
    *off = o;
    return true;
}

/* The offset of dl's copy (same key, same value) in partition part of
 * topic (range pr) from offset from on, at most REPLAY_SEARCH_MAX
 * messages: *found, -1 when not there. */
static int replay_find(app *a, const char *topic, int part, const bus_partition_range *pr,
                       int64_t from, const bus_message *dl, int64_t *found)
{
    *found = -1;
    size_t chunk = a->bus->cfg.poll_max < 256 ? a->bus->cfg.poll_max : 256;
    if (from < pr->low)
        from = pr->low;
    for (int64_t seen = 0; from < pr->high && seen < REPLAY_SEARCH_MAX && *found < 0;) {
        bus_message *m = NULL;
        size_t n = 0;
        errdetail e;
        int rc = bus_read(a->bus, topic, part, from, chunk, &m, &n, &e);
        if (rc < 0)
            return rc;
        for (size_t i = 0; i < n && *found < 0; i++)
            if (m[i].key_len == dl->key_len && m[i].value_len == dl->value_len &&
                memcmp(m[i].key, dl->key, dl->key_len) == 0 &&
                memcmp(m[i].value, dl->value, dl->value_len) == 0)
                *found = m[i].offset;
        from = n ? m[n - 1].offset + 1 : pr->high;
        seen += (int64_t)n;
        bus_messages_free(m, n);
    }
    return 0;
}

/* 409 already_exists with the mark (error.replay): the dead letter's
 * replay, done (where it went) or under way. Returns CITRUS_EEXISTS. */
static int replay_refuse(http_req *r, const char *topic, const char *id, json_t *mark)
{
    const char *state = json_string_value(json_object_get(mark, "state"));
    char msg[512];
    if (state && strcmp(state, "replayed") == 0)
        snprintf(msg, sizeof(msg),
                 "dead letter %s was replayed already, to %.200s partition %lld offset %lld at %s "
                 "by %s; add force=true to replay it again",
                 id, topic, (long long)json_integer_value(json_object_get(mark, "partition")),
                 (long long)json_integer_value(json_object_get(mark, "offset")),
                 json_string_value(json_object_get(mark, "time")) ?: "?",
                 json_string_value(json_object_get(mark, "by")) ?: "?");
    else
        snprintf(msg, sizeof(msg),
                 "a replay of dead letter %s is under way (since %s); try again in a minute", id,
                 json_string_value(json_object_get(mark, "time")) ?: "?");
    http_reply_error(r, CITRUS_EEXISTS, msg, json_pack("{s:O}", "replay", mark));
    return CITRUS_EEXISTS;
}

/* s cut to at most MARK_TEXT_MAX bytes at a UTF-8 boundary ("?" when it
 * is not UTF-8), so a mark stays within MARK_JSON_MAX. */
static json_t *mark_text(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n > MARK_TEXT_MAX)
        for (n = MARK_TEXT_MAX; n && ((unsigned char)s[n] & 0xC0) == 0x80;)
            n--;
    json_t *j = json_stringn(s ? s : "", n);
    return j ? j : json_string("?");
}

/* A mark: state, where (partition, and offset or from_offset), when, by
 * whom, the request's correlation id (its audit row's), replays so far. */
static json_t *mark_new(http_req *r, const char *state, int part, const char *where, int64_t off,
                        int64_t replays)
{
    int64_t now = clock_wall_ms(NULL);
    char when[40];
    shard_json_time(now, when, sizeof(when));
    return json_pack("{s:s,s:i,s:I,s:I,s:s,s:o,s:o,s:I}", "state", state, "partition", part, where,
                     (json_int_t)off, "at_ms", (json_int_t)now, "time", when, "by",
                     mark_text(api_principal(r)->name), "correlation_id",
                     mark_text(http_req_correlation(r)), "replays", (json_int_t)replays);
}

/* Replays dead letter dl (id, of dlq) onto topic (src: its listing
 * entry), as the file's header says. Replies; returns 0 or the error. */
static int replay(http_req *r, app *a, const char *topic, const char *id, const char *dlq,
                  const bus_topic_entry *src, const bus_message *dl, bool force)
{
    char key[MARK_KEY_MAX];
    mark_key(key, sizeof(key), topic, dl->partition, dl->offset);
    json_t *cur = NULL;
    int64_t mod = 0;
    int rc = mark_get(a, key, &cur, &mod);
    if (rc < 0)
        return api_events_fail(
            http_reply_error(r, rc, "cannot read the dead letter's replay mark", NULL), rc);
    const char *state = json_string_value(json_object_get(cur, "state"));
    bool ok = false;
    int64_t rev = 0;
    if (state && strcmp(state, "replaying") == 0) {
        /* cut short, or under way: did it publish? */
        int cp = (int)json_integer_value(json_object_get(cur, "partition"));
        int64_t found = -1;
        if (cp >= 0 && cp < src->info.partitions)
            rc = replay_find(a, topic, cp, &src->parts[cp],
                             json_integer_value(json_object_get(cur, "from_offset")), dl, &found);
        if (rc < 0) {
            json_decref(cur);
            return api_events_fail(http_reply_error(r, rc, "cannot read the topic", NULL), rc);
        }
        if (found >= 0) { /* it did: settle its mark, and go on as for a replayed one */
            json_object_set_new(cur, "state", json_string("replayed"));
            json_object_del(cur, "from_offset");
            json_object_set_new(cur, "offset", json_integer(found));
            json_object_set_new(
                cur, "replays",
                json_integer(json_integer_value(json_object_get(cur, "replays")) + 1));
            rc = mark_put(a, key, mod, json_incref(cur), &ok, &rev);
            if (rc < 0 || !ok) {
                json_decref(cur);
                return rc < 0 ? api_events_fail(http_reply_error(r, rc, NULL, NULL), rc)
                              : api_events_fail(http_reply_errorf(r, CITRUS_EEXISTS,
                                                                  "a replay of dead letter %s is "
                                                                  "under way",
                                                                  id),
                                                CITRUS_EEXISTS);
            }
            mod = rev;
            state = "replayed";
        } else if (clock_wall_ms(NULL) - json_integer_value(json_object_get(cur, "at_ms")) <
                   REPLAY_PENDING_MS) {
            rc = replay_refuse(r, topic, id, cur);
            json_decref(cur);
            return rc;
        }
        /* else cut short before it published: replay it now */
    }
    if (state && strcmp(state, "replayed") == 0 && !force) {
        rc = replay_refuse(r, topic, id, cur);
        json_decref(cur);
        return rc;
    }
    /* claim it, publish, then record where it went */
    int64_t replays = json_integer_value(json_object_get(cur, "replays"));
    int tp = bus_partition_for(dl->key, dl->key_len, src->info.partitions);
    rc = mark_put(a, key, mod,
                  mark_new(r, "replaying", tp, "from_offset", src->parts[tp].high, replays), &ok,
                  &rev);
    if (rc < 0 || !ok) {
        json_decref(cur);
        return rc < 0 ? api_events_fail(http_reply_error(r, rc, NULL, NULL), rc)
                      : api_events_fail(http_reply_errorf(r, CITRUS_EEXISTS,
                                                          "a replay of dead letter %s is under way",
                                                          id),
                                        CITRUS_EEXISTS);
    }
    int p = -1;
    int64_t o = -1;
    errdetail e;
    rc = bus_publish(a->bus, topic, dl->key, dl->key_len, dl->value, dl->value_len, &p, &o, &e);
    if (rc < 0) { /* not published: the mark back as it was */
        int64_t ignored;
        if (mark_put(a, key, rev, cur ? json_incref(cur) : NULL, &ok, &ignored) < 0 || !ok)
            log_warn("api",
                     "cannot take back a dead letter's replay mark; the next replay "
                     "settles it",
                     json_pack("{s:s,s:s}", "topic", topic, "id", id));
        json_decref(cur);
        return api_events_fail(http_reply_error(r, rc, e.message, NULL), rc);
    }
    json_decref(cur);
    json_t *done = mark_new(r, "replayed", p, "offset", o, replays + 1);
    int64_t ignored;
    if (mark_put(a, key, rev, json_incref(done), &ok, &ignored) < 0 || !ok)
        log_warn("api", "replayed a dead letter but cannot mark it; the next replay settles it",
                 json_pack("{s:s,s:s,s:i,s:I}", "topic", topic, "id", id, "partition", p, "offset",
                           (json_int_t)o));
    return http_reply_json(r, 200,
                           json_pack("{s:s,s:s,s:i,s:I,s:{s:s,s:i,s:I},s:o}", "topic", topic, "id",
                                     id, "partition", p, "offset", (json_int_t)o, "replayed_from",
                                     "topic", dlq, "partition", dl->partition, "offset",
                                     (json_int_t)dl->offset, "replay", done));
}

int api_dlq_replay(http_req *r, void *ctx)
{
    APP_OFFLOAD(r, api_dlq_replay, ctx);
    app *a = ctx;
    if (api_events_bus(r, a) < 0)
        return CITRUS_EUNAVAILABLE;
    const char *topic = http_req_param(r, "topic");
    const char *id = http_req_param(r, "id");
    int wrc = api_events_topic_writable(r, a, topic);
    if (wrc < 0)
        return wrc;
    int part;
    int64_t off;
    if (!parse_id(id, &part, &off))
        return http_reply_error(r, CITRUS_EINVAL,
                                "id: a dead letter's <partition>-<offset> (GET /v1/dlq/{topic} "
                                "lists them)",
                                NULL);
    char dlq[BUS_NAME_MAX + 8];
    if (!dlq_name(r, topic, dlq, sizeof(dlq)))
        return CITRUS_ENOTFOUND;
    bool force = false;
    if (http_req_query_bool(r, "force", false, &force) < 0)
        return CITRUS_EINVAL;
    bus_topic_entry *all = NULL;
    size_t nt = 0;
    int rc;
    const bus_topic_entry *t = dlq_topic(r, a, topic, dlq, &all, &nt, &rc);
    if (!t) {
        bus_topics_free(all, nt);
        return rc;
    }
    const bus_topic_entry *src = NULL;
    for (size_t i = 0; i < nt && !src; i++)
        if (strcmp(all[i].name, topic) == 0)
            src = &all[i];
    if (!src || part >= t->info.partitions || off >= t->parts[part].high) {
        bus_topics_free(all, nt);
        return http_reply_errorf(r, CITRUS_ENOTFOUND, "no dead letter %s in %s", id, dlq);
    }
    bus_message *m = NULL;
    size_t n = 0;
    errdetail e;
    rc = bus_read(a->bus, dlq, part, off, 1, &m, &n, &e);
    if (rc == CITRUS_ECOMPACTED)
        http_reply_errorf(r, rc, "dead letter %s of %s was trimmed by retention", id, dlq);
    else if (rc < 0)
        http_reply_error(r, rc, e.message, NULL);
    else if (n != 1 || m[0].offset != off)
        rc = api_events_fail(
            http_reply_errorf(r, CITRUS_ENOTFOUND, "no dead letter %s in %s", id, dlq),
            CITRUS_ENOTFOUND);
    else
        rc = replay(r, a, topic, id, dlq, src, &m[0], force);
    bus_messages_free(m, n);
    bus_topics_free(all, nt);
    return rc;
}
