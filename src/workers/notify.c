/* workers/notify.c — the event notification worker's filter and handler
 * (see notify.h). */
#include "workers/notify.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "citrus/errors.h"

enum { L_SOURCES, L_TYPES, L_SEVERITIES, L_COUNT };

static const char *const list_names[L_COUNT] = {"sources", "types", "severities"};
static const size_t list_max[L_COUNT] = {RECORDS_MAX_NOTIFY_SOURCE, RECORDS_MAX_NOTIFY_TYPE,
                                         RECORDS_MAX_NOTIFY_SEVERITY};

struct notify_filter {
    char *items[L_COUNT][NOTIFY_FILTER_MAX_ITEMS];
    size_t n[L_COUNT];
};

void notify_filter_free(notify_filter *f)
{
    if (!f)
        return;
    for (int l = 0; l < L_COUNT; l++)
        for (size_t i = 0; i < f->n[l]; i++)
            free(f->items[l][i]);
    free(f);
}

static int parse_list(notify_filter *f, int l, const char *text, errdetail *e)
{
    if (!text || !*text)
        return 0;
    const char *p = text;
    for (;;) {
        size_t len = strcspn(p, ",");
        if (len == 0)
            return errdetail_set(e, CITRUS_EINVAL, "workers.notification_filter.%s: an empty item",
                                 list_names[l]);
        if (len > list_max[l])
            return errdetail_set(e, CITRUS_EINVAL,
                                 "workers.notification_filter.%s: an item longer than %zu bytes",
                                 list_names[l], list_max[l]);
        if (f->n[l] >= NOTIFY_FILTER_MAX_ITEMS)
            return errdetail_set(e, CITRUS_EINVAL,
                                 "workers.notification_filter.%s: more than %d items",
                                 list_names[l], NOTIFY_FILTER_MAX_ITEMS);
        char *item = strndup(p, len);
        if (!item)
            return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
        f->items[l][f->n[l]++] = item;
        if (p[len] == '\0')
            return 0;
        p += len + 1;
    }
}

int notify_filter_new(const char *sources, const char *types, const char *severities,
                      notify_filter **out, errdetail *e)
{
    *out = NULL;
    notify_filter *f = calloc(1, sizeof(*f));
    if (!f)
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    const char *text[L_COUNT] = {sources, types, severities};
    int rc = 0;
    for (int l = 0; l < L_COUNT && rc == 0; l++)
        rc = parse_list(f, l, text[l], e);
    if (rc != 0) {
        notify_filter_free(f);
        return rc;
    }
    *out = f;
    return 0;
}

static bool item_match(const char *item, const char *v, bool nocase)
{
    size_t len = strlen(item);
    if (len > 0 && item[len - 1] == '*')
        return nocase ? strncasecmp(item, v, len - 1) == 0 : strncmp(item, v, len - 1) == 0;
    return nocase ? strcasecmp(item, v) == 0 : strcmp(item, v) == 0;
}

static bool list_match(const notify_filter *f, int l, const char *v)
{
    if (f->n[l] == 0)
        return true;
    for (size_t i = 0; i < f->n[l]; i++)
        if (item_match(f->items[l][i], v ? v : "", l == L_SEVERITIES))
            return true;
    return false;
}

bool notify_filter_match(const notify_filter *f, const char *source, const char *type,
                         const char *severity)
{
    return list_match(f, L_SOURCES, source) && list_match(f, L_TYPES, type) &&
           list_match(f, L_SEVERITIES, severity);
}

void notify_severity(const envelope *ev, char *buf, size_t len)
{
    const char *s = json_string_value(json_object_get(ev->doc, "severity"));
    if (!s && json_is_object(ev->data))
        s = json_string_value(json_object_get(ev->data, "severity"));
    if (!s || !*s)
        s = NOTIFY_DEFAULT_SEVERITY;
    size_t max = len - 1 < RECORDS_MAX_NOTIFY_SEVERITY ? len - 1 : RECORDS_MAX_NOTIFY_SEVERITY;
    size_t i = 0;
    /* ASCII lower-casing; other bytes as they are (the store cuts at a
     * character boundary, so a cut here may only end in a partial one
     * that the store then replaces). */
    for (; i < max && s[i]; i++)
        buf[i] = (char)tolower((unsigned char)s[i]);
    buf[i] = '\0';
}

int notify_handle(void *ctx, const envelope *ev, const bus_message *m, worker_effect *fx,
                  errdetail *e)
{
    const notify_filter *f = ctx;
    char severity[RECORDS_MAX_NOTIFY_SEVERITY + 1];
    notify_severity(ev, severity, sizeof(severity));
    if (!notify_filter_match(f, ev->source, ev->type, severity)) {
        fx->skipped = true;
        return 0;
    }
    char *sev = strdup(severity);
    char *data = NULL;
    if (ev->data) {
        data = json_dumps(ev->data, JSON_COMPACT | JSON_ENCODE_ANY);
        if (data && strlen(data) > RECORDS_MAX_NOTIFY_DATA) {
            size_t len = strlen(data);
            free(data);
            data = NULL;
            if (asprintf(&data, "{\"truncated\":true,\"bytes\":%zu}", len) < 0)
                data = NULL;
        }
    } else {
        data = strdup("null");
    }
    if (!sev || !data) {
        free(sev);
        free(data);
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    }
    fx->owned[0] = sev;
    fx->owned[1] = data;
    fx->has_notification = true;
    fx->notification =
        (notification_row){.time_ms = ev->time ? ev->time_ms : m->time_ms,
                           .event_id = ev->id,
                           .source = ev->source,
                           .type = ev->type,
                           .severity = sev,
                           .subject = ev->subject ? ev->subject : "",
                           .correlation_id = ev->correlationid ? ev->correlationid : "",
                           .data = data};
    return 0;
}
