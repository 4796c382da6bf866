/* wire/regmsg.h — the message of an asynchronous registration on
 * bus.topics.registrations (docs/events.md, "Registration queue"): made by
 * the API when it queues a registration and by the registration worker's
 * sweeper for each retry, read by the registration worker. A CloudEvents
 * envelope whose data is {registrationId, businessId, locationId,
 * businessType}. */
#ifndef CITRUS_WIRE_REGMSG_H
#define CITRUS_WIRE_REGMSG_H

#include <stddef.h>
#include <stdint.h>

#include "core/errdetail.h"

typedef struct regmsg {
    const char *registration_id, *business_id, *location_id, *business_type;
    const char *type;          /* the event type (records/registrations.h's) */
    const char *event_id;      /* NULL: a new UUID */
    const char *source;        /* who publishes it */
    const char *correlationid; /* NULL: none */
    int64_t time_ms;           /* the wall clock's reading */
} regmsg;

/* 0 with *text the envelope's JSON text (caller frees) and *len its
 * length; else an envelope_build error (CITRUS_ENOMEM too), *text NULL. */
int regmsg_encode(const regmsg *m, char **text, size_t *len, errdetail *e);

#endif
