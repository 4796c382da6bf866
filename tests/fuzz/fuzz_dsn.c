/* tests/fuzz/fuzz_dsn.c — core/dsn.c: parsing, the DSN rules, redaction.
 *
 * Any input goes through dsn_parse, dsn_check (with and without a policy),
 * dsn_redact and dsn_redact_text (memory safety; ASan and UBSan watch).
 * Then the input is planted as the password of a URL DSN (%-encoded) and
 * of a key=value DSN (quoted, escaped): dsn_redact and dsn_redact_text
 * must both give exactly the DSN with "***" for it, whatever it holds.
 * The URI form is a fixed point: dsn_to_uri(dsn_to_uri(x)) ==
 * dsn_to_uri(x), naming the same databases (dsn_identity), and a planted
 * password comes back from it unchanged (dsn_split). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/dsn.h"

/* The URI form of dsn is a fixed point naming the same databases. */
static void normalised(const char *dsn)
{
    char *u = dsn_to_uri(dsn, NULL);
    if (!u)
        return;
    errdetail e = {0};
    char *again = dsn_to_uri(u, &e), *a = dsn_identity(dsn, NULL), *b = dsn_identity(u, NULL);
    FUZZ_CHECK(again && strcmp(again, u) == 0, "dsn_to_uri(%s) = %s, then %s", dsn, u,
               again ? again : e.message);
    FUZZ_CHECK(a && b && strcmp(a, b) == 0, "dsn_identity(%s) = %s, of its URI %s", dsn,
               a ? a : "(null)", b ? b : "(null)");
    free(again);
    free(a);
    free(b);
    free(u);
}

/* The password of dsn's URI form is want. */
static void keeps_password(const char *dsn, const char *want)
{
    char *u = dsn_to_uri(dsn, NULL);
    dsn_parts p;
    FUZZ_CHECK(u && dsn_split(u, &p, NULL) == 0, "dsn_to_uri(%s) = %s", dsn, u ? u : "(null)");
    const char *pw = dsn_parts_get(&p, "password");
    FUZZ_CHECK(pw && strcmp(pw, want) == 0, "%s: password %s", u, pw ? pw : "(none)");
    dsn_parts_clear(&p);
    free(u);
}

static void expect(const char *dsn, const char *want)
{
    char *a = dsn_redact(dsn), *b = dsn_redact_text(dsn);
    FUZZ_CHECK(a && strcmp(a, want) == 0, "dsn_redact(%s) = %s", dsn, a ? a : "(null)");
    FUZZ_CHECK(b && strcmp(b, want) == 0, "dsn_redact_text(%s) = %s", dsn, b ? b : "(null)");
    free(a);
    free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    errdetail e;
    const dsn_policy p = {.tls_dir = "/etc/tls",
                          .socket_dirs = "/var/run/postgresql,/tmp",
                          .allowed_hosts = "10.0.0.0/8,fd00::/8,db.example.com,.corp"};
    dsn_parse(s, NULL, &e);
    dsn_check(s, &p, &e);
    dsn_check(s, NULL, &e);
    dsn_policy_hosts_check(s, &e);
    free(dsn_redact(s));
    free(dsn_redact_text(s));
    normalised(s);
    /* the input as a password, in both forms */
    char *uri = malloc(size * 3 + 64), *ci = malloc(size * 2 + 64);
    if (uri && ci) {
        size_t u = (size_t)sprintf(uri, "postgresql://u:"),
               c = (size_t)sprintf(ci, "host=h password='");
        for (size_t i = 0; i < size; i++) {
            unsigned char ch = data[i];
            u += (size_t)sprintf(uri + u, "%%%02X", ch);
            if (ch < 0x20 || ch == 0x7f)
                continue; /* conninfo takes no control characters */
            if (ch == '\'' || ch == '\\')
                ci[c++] = '\\';
            ci[c++] = (char)ch;
        }
        strcpy(uri + u, "@h/db");
        strcpy(ci + c, "'");
        expect(uri, "postgresql://u:***@h/db");
        expect(ci, "host=h password=***");
        normalised(uri);
        normalised(ci);
        bool plain = memchr(data, '\0', size) == NULL;
        for (size_t i = 0; plain && i < size; i++)
            plain = data[i] >= 0x20 && data[i] != 0x7f;
        if (plain) /* what conninfo can hold comes back from its URI form unchanged */
            keeps_password(ci, s);
    }
    free(uri);
    free(ci);
    free(s);
    return 0;
}
