/* tests/fuzz/fuzz_audit_params.c — GET /v1/audit's query parameters
 * (api_audit_query_parse).
 *
 * The input is six fields separated by '\n' (since, principal, action,
 * target, limit, after); a field that is exactly "-" is absent. Each
 * verdict is compared with an oracle written from the rules in api/audit.h,
 * not from audit.c: limit and after are plain decimal numbers in range,
 * the filters 1..1024 bytes; on success the query holds exactly those
 * values and points at the caller's strings. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/audit.h"
#include "check.h"
#include "citrus/errors.h"
#include "records/records.h"

/* A decimal number in lo..hi: optional '-', 1-18 digits (no overflow). */
static bool oracle_number(const char *s, long long lo, long long hi, long long *v)
{
    bool neg = *s == '-';
    const char *d = s + neg;
    size_t n = strlen(d);
    if (n == 0 || n > 18)
        return false;
    long long x = 0;
    for (size_t i = 0; i < n; i++) {
        if (d[i] < '0' || d[i] > '9')
            return false;
        x = x * 10 + (d[i] - '0');
    }
    *v = neg ? -x : x;
    return *v >= lo && *v <= hi;
}

static bool oracle_filter(const char *s)
{
    return !s || (strlen(s) >= 1 && strlen(s) <= RECORDS_MAX_TARGET);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 8192)
        return 0;
    char *buf = malloc(size + 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    if (strlen(buf) != size) { /* a NUL cannot reach us inside a query string */
        free(buf);
        return 0;
    }
    const char *f[6] = {NULL, NULL, NULL, NULL, NULL, NULL};
    char *p = buf;
    for (int i = 0; i < 6 && p; i++) {
        char *nl = strchr(p, '\n');
        if (nl)
            *nl = '\0';
        f[i] = strcmp(p, "-") == 0 ? NULL : p;
        p = nl ? nl + 1 : NULL;
    }
    for (int i = 0; i < 6; i++) /* 19+ digits: past what the oracle reads exactly */
        if (f[i] && strspn(f[i] + (f[i][0] == '-'), "0123456789") > 18) {
            free(buf);
            return 0;
        }
    api_audit_params in = {.since = f[0],
                           .principal = f[1],
                           .action = f[2],
                           .target = f[3],
                           .limit = f[4],
                           .after = f[5]};
    audit_query q;
    errdetail e;
    int rc = api_audit_query_parse(&in, &q, &e);
    long long limit = 100, after = 0;
    bool want = oracle_filter(in.principal) && oracle_filter(in.action) &&
                oracle_filter(in.target) &&
                (!in.limit || oracle_number(in.limit, 1, RECORDS_QUERY_MAX_LIMIT, &limit)) &&
                (!in.after || oracle_number(in.after, 0, INT64_MAX / 10, &after));
    if (rc == 0) {
        FUZZ_CHECK(want, "accepted what the rules refuse");
        FUZZ_CHECK(q.limit == (size_t)limit, "limit %zu, want %lld", q.limit, limit);
        FUZZ_CHECK(q.after_id == after, "after %lld, want %lld", (long long)q.after_id, after);
        FUZZ_CHECK(q.principal == in.principal && q.action == in.action && q.target == in.target,
                   "filters are not the caller's strings");
        FUZZ_CHECK(q.since_ms >= 0, "since %lld", (long long)q.since_ms);
        long long s;
        if (in.since && oracle_number(in.since, 0, INT64_MAX / 10, &s))
            FUZZ_CHECK(q.since_ms == s, "since %lld, want %lld", (long long)q.since_ms, s);
        if (!in.since)
            FUZZ_CHECK(q.since_ms == 0, "since without since");
    } else {
        FUZZ_CHECK(rc == CITRUS_EINVAL, "rc %d", rc);
        FUZZ_CHECK(e.message[0] != '\0', "no message");
        /* only since's RFC 3339 form is beyond the oracle: a refusal the
         * oracle accepts must be since's */
        FUZZ_CHECK(!want || in.since, "refused what the rules accept: %s", e.message);
    }
    free(buf);
    return 0;
}
