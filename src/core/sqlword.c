/* core/sqlword.c — see sqlword.h. */
#include "core/sqlword.h"

#include <string.h>
#include <strings.h>

const char *sql_skip(const char *s, const char *also)
{
    for (;;) {
        if (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == '\f' || *s == '\v' ||
            (*s && strchr(also, *s))) {
            s++;
        } else if (s[0] == '-' && s[1] == '-') {
            while (*s && *s != '\n')
                s++;
        } else if (s[0] == '/' && s[1] == '*') {
            const char *end = strstr(s + 2, "*/");
            if (!end)
                return s;
            s = end + 2;
        } else {
            return s;
        }
    }
}

bool sql_first_word_in(const char *sql, const char *const *words, size_t n)
{
    const char *s = sql_skip(sql, "(");
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(words[i]);
        if (strncasecmp(s, words[i], len) != 0)
            continue;
        char next = s[len]; /* s has at least len characters */
        if (!((next >= 'a' && next <= 'z') || (next >= 'A' && next <= 'Z') ||
              (next >= '0' && next <= '9') || next == '_' || next == '$'))
            return true;
    }
    return false;
}
