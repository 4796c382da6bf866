/* tests/fuzz/fuzz_dsn.c — core/dsn.c: parsing, the DSN rules, redaction.
 *
 * Any input goes through dsn_parse, dsn_check (with and without a policy),
 * dsn_redact and dsn_redact_text (memory safety; ASan and UBSan watch).
 * Then the input is planted as the password of a URL DSN (%-encoded) and
 * of a key=value DSN (quoted, escaped): dsn_redact and dsn_redact_text
 * must both give exactly the DSN with "***" for it, whatever it holds. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/dsn.h"

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
    }
    free(uri);
    free(ci);
    free(s);
    return 0;
}
