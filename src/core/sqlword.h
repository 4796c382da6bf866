/* core/sqlword.h — what kind of statement a piece of SQL is, by its first
 * keyword: the router (reads go to replicas) and the PostgreSQL driver
 * (what may be cancelled, what is worth preparing) ask the same way. */
#ifndef CITRUS_CORE_SQLWORD_H
#define CITRUS_CORE_SQLWORD_H

#include <stdbool.h>
#include <stddef.h>

/* s past blanks, -- and block comments, and any of the characters in also
 * ("(" before a first keyword, ";" after a statement). An unterminated
 * block comment stops it: the result then starts with that comment. */
const char *sql_skip(const char *s, const char *also);

/* Whether sql's first keyword, past blanks, -- and block comments and
 * opening parentheses, is one of the n lower-case words (compared without
 * case, and only as a whole word: "selection" is not "select"). */
bool sql_first_word_in(const char *sql, const char *const *words, size_t n);

#endif
