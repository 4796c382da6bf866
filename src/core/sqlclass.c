/* core/sqlclass.c — see sqlclass.h.
 *
 * A small tokenizer, run twice over the text: once reading it as
 * PostgreSQL does (block comments nest; $tag$...$tag$ quotes) and once as
 * SQLite does (block comments do not nest; [...] and `...` quote
 * identifiers). Tokens are words, quoted identifiers, ";" and single other
 * characters; string literals are skipped as one other character. The
 * first token of each statement (and the few after it that SET, COMMIT,
 * ROLLBACK and PREPARE need) decides. */
#include "core/sqlclass.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

typedef enum { T_END, T_WORD, T_QUOTED, T_SEMI, T_OTHER } tok_kind;

typedef struct tok {
    tok_kind kind;
    const char *p; /* T_WORD: the word; T_QUOTED: inside the quotes; else the character */
    size_t len;
} tok;

typedef struct scanner {
    const char *s;
    bool pg; /* PostgreSQL's reading, else SQLite's */
} scanner;

static bool word_start(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static bool word_char(unsigned char c)
{
    return word_start(c) || (c >= '0' && c <= '9') || c == '$';
}

/* Past blanks and comments; an unterminated block comment ends the text. */
static void skip_blank(scanner *sc)
{
    const char *s = sc->s;
    for (;;) {
        if (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == '\f' || *s == '\v') {
            s++;
        } else if (s[0] == '-' && s[1] == '-') {
            while (*s && *s != '\n')
                s++;
        } else if (s[0] == '/' && s[1] == '*') {
            int depth = 1;
            s += 2;
            while (*s && depth) {
                if (s[0] == '*' && s[1] == '/') {
                    depth--;
                    s += 2;
                } else if (sc->pg && s[0] == '/' && s[1] == '*') {
                    depth++;
                    s += 2;
                } else {
                    s++;
                }
            }
        } else {
            sc->s = s;
            return;
        }
    }
}

/* Past a literal quoted by q (opened just before s), where qq doubled
 * stands for itself; NULL when it does not end. */
static const char *past_quote(const char *s, char q)
{
    for (;;) {
        const char *end = strchr(s, q);
        if (!end)
            return NULL;
        if (end[1] != q)
            return end + 1;
        s = end + 2;
    }
}

/* PostgreSQL: s at a "$": past the whole $tag$...$tag$ literal; s itself
 * when s does not open one ($1 is a parameter); NULL when it does not end. */
static const char *past_dollar(const char *s)
{
    const char *t = s + 1;
    if (*t != '$') {
        if (!word_start((unsigned char)*t))
            return s;
        while (word_char((unsigned char)*t) && *t != '$')
            t++;
        if (*t != '$')
            return s;
    }
    size_t taglen = (size_t)(t - s) + 1; /* "$tag$" */
    for (const char *body = t + 1;; body++) {
        const char *end = strchr(body, '$');
        if (!end)
            return NULL;
        if (strncmp(end, s, taglen) == 0)
            return end + taglen;
        body = end;
    }
}

static void next(scanner *sc, tok *t)
{
    skip_blank(sc);
    const char *s = sc->s;
    unsigned char c = (unsigned char)*s;
    t->p = s;
    t->len = 1;
    const char *end = s + 1;
    if (c == '\0') {
        t->kind = T_END;
        t->len = 0;
        return;
    }
    if (c == ';') {
        t->kind = T_SEMI;
    } else if (word_start(c)) {
        while (word_char((unsigned char)*end))
            end++;
        t->kind = T_WORD;
        t->len = (size_t)(end - s);
    } else if (c == '"' || (!sc->pg && (c == '`' || c == '['))) {
        char close = c == '[' ? ']' : (char)c;
        end = close == ']' ? strchr(s + 1, ']') : past_quote(s + 1, close);
        if (end && close == ']')
            end++;
        t->kind = T_QUOTED;
        t->p = s + 1;
        t->len = end ? (size_t)(end - s) - 2 : 0;
    } else if (c == '\'') {
        end = past_quote(s + 1, '\'');
        t->kind = T_OTHER;
    } else if (c == '$' && sc->pg) {
        end = past_dollar(s);
        if (end == s)
            end = s + 1;
        t->kind = T_OTHER;
    } else {
        t->kind = T_OTHER;
    }
    if (!end) { /* an unterminated literal: the rest is inside it */
        sc->s = s + strlen(s);
        t->kind = T_END;
        t->len = 0;
        return;
    }
    sc->s = end;
}

static bool is(const tok *t, const char *word)
{
    size_t n = strlen(word);
    return t->kind == T_WORD && t->len == n && strncasecmp(t->p, word, n) == 0;
}

/* After SET LOCAL: NULL when the parameter may be set for the transaction,
 * else what to call the statement. */
static const char *set_local(scanner *sc)
{
    tok name, after;
    next(sc, &name);
    if (is(&name, "role"))
        return "SET LOCAL ROLE";
    if (is(&name, "session"))
        return "SET LOCAL SESSION AUTHORIZATION";
    if (is(&name, "citrus"))
        return "SET LOCAL citrus.*";
    next(sc, &after);
    /* a quoted or U&"escaped" name could spell any of the above */
    if (name.kind != T_WORD || (after.kind == T_OTHER && *after.p == '&'))
        return "SET LOCAL with a quoted parameter name";
    return NULL;
}

/* What the statement starting with first (sc just past it) is, when it
 * is refused; NULL otherwise. sc is the caller's copy, advanced freely. */
static const char *statement_kind(scanner *sc, const tok *first)
{
    static const struct {
        const char *word, *kind;
    } plain[] = {
        {"begin", "BEGIN"},
        {"start", "START TRANSACTION"},
        {"end", "END"},
        {"abort", "ABORT"},
        {"savepoint", "SAVEPOINT"},
        {"release", "RELEASE"},
        {"reset", "RESET"},
        {"do", "DO"},
    };
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++)
        if (is(first, plain[i].word))
            return plain[i].kind;
    tok t;
    if (is(first, "commit")) {
        next(sc, &t);
        return is(&t, "prepared") ? "COMMIT PREPARED" : "COMMIT";
    }
    if (is(first, "rollback")) {
        next(sc, &t);
        if (is(&t, "prepared"))
            return "ROLLBACK PREPARED";
        if (is(&t, "transaction") || is(&t, "work"))
            next(sc, &t);
        return is(&t, "to") ? "ROLLBACK TO" : "ROLLBACK";
    }
    if (is(first, "prepare")) {
        next(sc, &t);
        return is(&t, "transaction") ? "PREPARE TRANSACTION" : NULL;
    }
    if (is(first, "set")) {
        next(sc, &t);
        if (is(&t, "local"))
            return set_local(sc);
        if (is(&t, "transaction") || is(&t, "constraints"))
            return NULL;
        return is(&t, "session") ? "SET SESSION" : "SET";
    }
    return NULL;
}

/* Whether t names set_config, as a word or a quoted name: it changes
 * settings without a SET (citrus.tenant among them). */
static bool names_set_config(const tok *t)
{
    return is(t, "set_config") ||
           (t->kind == T_QUOTED && t->len == 10 && strncasecmp(t->p, "set_config", 10) == 0);
}

/* all: every statement of sql, else only the first. */
static const char *classify(const char *sql, bool pg, bool all)
{
    scanner sc = {.s = sql, .pg = pg};
    tok t;
    for (;;) {
        next(&sc, &t);
        if (t.kind == T_END)
            return NULL;
        if (t.kind == T_SEMI)
            continue;
        scanner ahead = sc;
        const char *kind = statement_kind(&ahead, &t);
        if (kind || !all)
            return kind;
        /* PostgreSQL's reading (all): set_config() anywhere in it */
        /* to the ";" that ends it: in a CREATE, not one inside a
         * BEGIN ... END body (a trigger's, PostgreSQL's BEGIN ATOMIC),
         * where CASE ... END nests too */
        bool create = is(&t, "create");
        int depth = 0;
        tok prev = {T_OTHER, "", 0}, prev2 = prev;
        while (t.kind != T_END && (t.kind != T_SEMI || depth > 0)) {
            if (names_set_config(&t))
                return "set_config()";
            /* U&"..." could spell set_config with escapes */
            if (t.kind == T_QUOTED && prev.kind == T_OTHER && *prev.p == '&' && is(&prev2, "u"))
                return "a U&\"...\" quoted name";
            prev2 = prev;
            prev = t;
            next(&sc, &t);
            if (create && (is(&t, "begin") || (depth > 0 && is(&t, "case"))))
                depth++;
            else if (depth > 0 && is(&t, "end"))
                depth--;
        }
        if (t.kind == T_END)
            return NULL;
    }
}

const char *sqlclass_txcontrol(const char *sql)
{
    if (!sql)
        return NULL;
    const char *kind = classify(sql, true, true);
    return kind ? kind : classify(sql, false, false);
}
