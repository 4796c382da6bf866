/* wire/regmsg.c — a registration's message (see regmsg.h). */
#include "wire/regmsg.h"

#include <jansson.h>

#include "citrus/errors.h"
#include "wire/envelope.h"

int regmsg_encode(const regmsg *m, char **text, size_t *len, errdetail *e)
{
    *text = NULL;
    json_t *data =
        json_pack("{s:s,s:s,s:s,s:s}", "registrationId", m->registration_id, "businessId",
                  m->business_id, "locationId", m->location_id, "businessType", m->business_type);
    if (!data)
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    envelope_spec s = {.id = m->event_id,
                       .type = m->type,
                       .source = m->source,
                       .subject = m->registration_id,
                       .time_ms = m->time_ms,
                       .correlationid = m->correlationid,
                       .data = data};
    envelope ev;
    int rc = envelope_build(&s, &ev, e);
    json_decref(data);
    if (rc != 0)
        return rc;
    *text = envelope_encode(&ev, len);
    envelope_clear(&ev);
    return *text ? 0 : errdetail_set(e, CITRUS_ENOMEM, "out of memory");
}
