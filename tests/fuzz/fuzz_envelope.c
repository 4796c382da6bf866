/* tests/fuzz/fuzz_envelope.c — envelope_parse over arbitrary bytes.
 *
 * Invariants: it never crashes or leaks; it returns 0 or one of the codes
 * wire/envelope.h names, with a message on failure and nothing held; an
 * event it accepts is encoded, and that text parses again to the same
 * event (equal JSON, the same members read), encodes to the same bytes (a
 * fixed point) and passes envelope_from_json too. The first byte, when the
 * input has more than one, picks a size limit (0: none) so the limit's
 * edge is explored as well. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "citrus/errors.h"
#include "wire/envelope.h"

static int same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t limit = data[0] < 128 ? 0 : (size_t)(data[0] - 128) * 8;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    envelope ev;
    errdetail e = {0};
    int rc = envelope_parse(text, len, limit, &ev, &e);
    if (rc < 0) {
        FUZZ_CHECK(rc == CITRUS_EBADJSON || rc == CITRUS_EINVAL || rc == CITRUS_ETOOBIG ||
                       rc == CITRUS_ENOMEM,
                   "code %d", rc);
        FUZZ_CHECK(e.message[0] != '\0', "no message for code %d", rc);
        FUZZ_CHECK(ev.doc == NULL, "a refused event holds a document");
        FUZZ_CHECK(rc != CITRUS_ETOOBIG || (limit && len > limit), "ETOOBIG within the limit");
        return 0;
    }
    FUZZ_CHECK(!limit || len <= limit, "accepted %zu bytes over a limit of %zu", len, limit);
    FUZZ_CHECK(ev.id && ev.source && ev.type && ev.datacontenttype, "a required member is NULL");
    size_t n1;
    char *once = envelope_encode(&ev, &n1);
    FUZZ_CHECK(once != NULL, "encode failed");
    envelope again;
    rc = envelope_parse(once, n1, 0, &again, &e);
    FUZZ_CHECK(rc == 0, "the encoding does not parse: %s\n%s", e.message, once);
    FUZZ_CHECK(json_equal(ev.doc, again.doc), "parse -> encode -> parse changed the event\n%s",
               once);
    FUZZ_CHECK(same_str(ev.id, again.id) && same_str(ev.source, again.source) &&
                   same_str(ev.type, again.type) && same_str(ev.subject, again.subject) &&
                   same_str(ev.time, again.time) &&
                   same_str(ev.datacontenttype, again.datacontenttype) &&
                   same_str(ev.correlationid, again.correlationid) &&
                   same_str(ev.traceparent, again.traceparent) && ev.time_ms == again.time_ms &&
                   ev.schemaversion == again.schemaversion,
               "a member reads differently after encoding\n%s", once);
    FUZZ_CHECK((ev.data == NULL) == (again.data == NULL), "data appeared or vanished");
    size_t n2;
    char *twice = envelope_encode(&again, &n2);
    FUZZ_CHECK(twice && n1 == n2 && memcmp(once, twice, n1) == 0, "encoding is not a fixed point");
    envelope viajson;
    rc = envelope_from_json(again.doc, n1, &viajson, &e);
    FUZZ_CHECK(rc == 0, "envelope_from_json refused what parsed: %s", e.message);
    envelope_clear(&viajson);
    free(once);
    free(twice);
    envelope_clear(&again);
    envelope_clear(&ev);
    return 0;
}
