/* tests/fuzz/fuzz_sqlclass.c — sqlclass_txcontrol, the router's check for
 * statements that change transaction or session state.
 *
 * The input is SQL text (up to its first NUL). Properties: the answer is
 * NULL or one of the kinds sqlclass.h names, the same on every call; a
 * text whose first word (past blanks and comments, read by
 * core/sqlword.c's sql_skip, an independent reader) is one of the
 * always-refused verbs is refused; "COMMIT;" before any text is refused as
 * COMMIT; and a statement appended after a newline and ";" changes
 * nothing (it is either a new, harmless statement or inside a literal or
 * comment the text left open). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "check.h"
#include "core/sqlclass.h"
#include "core/sqlword.h"

static const char *const KINDS[] = {
    "BEGIN",
    "START TRANSACTION",
    "COMMIT",
    "COMMIT PREPARED",
    "ROLLBACK",
    "ROLLBACK TO",
    "ROLLBACK PREPARED",
    "END",
    "ABORT",
    "SAVEPOINT",
    "RELEASE",
    "PREPARE TRANSACTION",
    "RESET",
    "SET",
    "SET SESSION",
    "SET LOCAL ROLE",
    "SET LOCAL SESSION AUTHORIZATION",
    "SET LOCAL citrus.*",
    "SET LOCAL with a quoted parameter name",
    "DO",
    "set_config()",
    "a U&\"...\" quoted name",
};

static const char *const VERBS[] = {"begin",     "start",   "commit", "rollback", "end", "abort",
                                    "savepoint", "release", "reset",  "do",       "set"};

static bool known(const char *kind)
{
    for (size_t i = 0; i < sizeof(KINDS) / sizeof(KINDS[0]); i++)
        if (kind == KINDS[i] || strcmp(kind, KINDS[i]) == 0)
            return true;
    return false;
}

static bool ident_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '$' || c >= 0x80;
}

/* Whether text starts (past blanks and comments) with a verb that is
 * refused whatever follows it ("set" is not: SET LOCAL x is allowed). */
static bool starts_with_verb(const char *text)
{
    const char *s = sql_skip(text, "");
    for (size_t i = 0; i < sizeof(VERBS) / sizeof(VERBS[0]) - 1; i++) {
        size_t n = strlen(VERBS[i]);
        if (strncasecmp(s, VERBS[i], n) == 0 && !ident_char((unsigned char)s[n]))
            return true;
    }
    return false;
}

static char *concat(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    char *out = malloc(na + nb + 1);
    FUZZ_CHECK(out != NULL, "out of memory");
    memcpy(out, a, na);
    memcpy(out + na, b, nb + 1);
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    const char *kind = sqlclass_txcontrol(text);
    FUZZ_CHECK(!kind || known(kind), "unknown kind \"%s\"", kind);
    FUZZ_CHECK(sqlclass_txcontrol(text) == kind, "two answers for one text");
    if (starts_with_verb(text))
        FUZZ_CHECK(kind != NULL, "a leading transaction verb was not refused");

    char *before = concat("COMMIT;", text);
    const char *k = sqlclass_txcontrol(before);
    FUZZ_CHECK(k && strcmp(k, "COMMIT") == 0, "COMMIT; before the text gave %s", k ? k : "NULL");
    free(before);

    char *after = concat(text, "\n;SELECT 1");
    k = sqlclass_txcontrol(after);
    FUZZ_CHECK(k == kind, "a statement appended changed %s to %s", kind ? kind : "NULL",
               k ? k : "NULL");
    free(after);
    free(text);
    return 0;
}
