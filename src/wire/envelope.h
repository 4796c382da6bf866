/* wire/envelope.h — the event envelope every topic carries: a CloudEvents
 * 1.0 event in its JSON format (docs/events.md, "Envelope"), shared by the
 * server (which publishes and consumes) and clients (which publish).
 *
 *   {"specversion":"1.0","id","source","type","subject","time",
 *    "datacontenttype","schemaversion","correlationid","traceparent",
 *    "data" | "data_base64", ...extensions}
 *
 * Required: specversion ("1.0"), id, source, type. Optional: subject, time
 * (RFC 3339), datacontenttype (absent means application/json), dataschema,
 * data or data_base64 (not both), and the extensions Citrus reads:
 * correlationid (as X-Correlation-Id: 1-128 of [A-Za-z0-9._:-]),
 * traceparent (W3C trace context) and schemaversion (an integer from 1 to
 * ENVELOPE_SCHEMA_VERSION; absent means 1). Any other member is an
 * extension attribute: its name must be 1-64 of [a-z0-9] (CloudEvents'
 * naming rule), its value any JSON; it is kept, in its place and with its
 * value, when the event is encoded again, so a forwarder never drops what
 * it does not know.
 *
 * Errors name the member: CITRUS_EBADJSON for text that is not a JSON
 * object, a missing required member or a wrong type; CITRUS_EINVAL for a
 * value outside its rules (length, characters, format); CITRUS_ETOOBIG for
 * an event over the caller's size limit; CITRUS_ENOMEM. */
#ifndef CITRUS_WIRE_ENVELOPE_H
#define CITRUS_WIRE_ENVELOPE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/errdetail.h"

#define ENVELOPE_SPECVERSION "1.0"
#define ENVELOPE_SCHEMA_VERSION 1 /* the newest envelope schema this build knows */
#define ENVELOPE_DEFAULT_CONTENT_TYPE "application/json"
/* Bounds, in bytes. */
#define ENVELOPE_ID_MAX 256
#define ENVELOPE_TYPE_MAX 256
#define ENVELOPE_SOURCE_MAX 1024
#define ENVELOPE_SUBJECT_MAX 1024
#define ENVELOPE_CONTENT_TYPE_MAX 256
#define ENVELOPE_CORRELATION_MAX 128
#define ENVELOPE_EXT_NAME_MAX 64
/* Kafka's topic name rule: 1-249 of [A-Za-z0-9._-], not "." or "..". */
#define ENVELOPE_TOPIC_MAX 249

/* A checked event. doc owns everything; the pointers below borrow from it
 * and live as long as it does. Absent optional members are NULL (time_ms
 * then 0), but datacontenttype, which is then the default. */
typedef struct envelope {
    json_t *doc;
    const char *id, *source, *type, *subject, *time, *datacontenttype;
    const char *correlationid, *traceparent;
    int64_t time_ms; /* time as Unix milliseconds (UTC), fraction truncated */
    int64_t schemaversion;
    json_t *data; /* the "data" member, NULL when absent */
} envelope;

/* Parses and checks text[0..len) (need not be NUL-terminated). An event of
 * more than max_bytes bytes (0: no limit) is CITRUS_ETOOBIG before it is
 * parsed. On success out holds the event (release with envelope_clear); on
 * error out is zeroed and e names what is wrong. */
int envelope_parse(const char *text, size_t len, size_t max_bytes, envelope *out, errdetail *e);

/* The same checks on an already parsed value (one item of a batch). j is
 * borrowed: out keeps its own reference. The size limit applies to j's
 * compact encoding. */
int envelope_from_json(json_t *j, size_t max_bytes, envelope *out, errdetail *e);

/* What the server needs to make an event. Strings are copied. */
typedef struct envelope_spec {
    const char *id;              /* NULL: a new UUIDv4 (from random) */
    const unsigned char *random; /* 16 bytes for that UUID; NULL: getrandom */
    const char *type, *source;   /* required */
    const char *subject;         /* NULL: none */
    int64_t time_ms;             /* the wall clock's reading, Unix ms (injected) */
    const char *datacontenttype; /* NULL: application/json */
    const char *correlationid;   /* NULL: none */
    const char *traceparent;     /* NULL: none */
    json_t *data;                /* borrowed (out keeps a reference); NULL: no data */
} envelope_spec;

/* A new random (version 4) UUID in its 36-character form: 0, or
 * CITRUS_EIO when there are no random bytes. */
int envelope_new_id(char out[37], errdetail *e);

/* Makes an event of schema version ENVELOPE_SCHEMA_VERSION with every
 * member checked as envelope_parse checks it; time is always set. */
int envelope_build(const envelope_spec *s, envelope *out, errdetail *e);

/* The event as compact JSON text, members in their order (parsed events
 * keep theirs); malloc'd (caller frees), its length in *len (may be NULL).
 * NULL on ENOMEM. Parsing it again gives the same event. */
char *envelope_encode(const envelope *ev, size_t *len);

/* Releases what out holds and zeroes it; a zeroed envelope is fine. */
void envelope_clear(envelope *ev);

/* 0 when s is a W3C traceparent ("00-<32 hex>-<16 hex>-<2 hex>", lower
 * case, ids not all zero; a later version may append "-..."), else
 * CITRUS_EINVAL naming name. */
int envelope_traceparent_check(const char *name, const char *s, errdetail *e);

/* 0 when s is a valid topic name (Kafka's rule above; consumer group ids
 * follow it too), else CITRUS_EINVAL naming name. */
int envelope_topic_check(const char *name, const char *s, errdetail *e);

#endif
