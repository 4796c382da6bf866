/* core/errdetail.h — an error with its detail: the CITRUS_E* code, a
 * message with context, and the SQLSTATE when a database gave one. The one
 * way a failing call hands back what went wrong, instead of a message
 * buffer and its length beside the return code. */
#ifndef CITRUS_CORE_ERRDETAIL_H
#define CITRUS_CORE_ERRDETAIL_H

#define ERRDETAIL_MESSAGE_MAX 768

typedef struct errdetail {
    int code;                            /* 0 (none) or a CITRUS_E* value */
    char message[ERRDETAIL_MESSAGE_MAX]; /* "" when none; truncated to fit */
    char sqlstate[6];                    /* "" when the source has none */
} errdetail;

/* Sets code and the formatted message (sqlstate cleared) and returns code,
 * so a caller writes `return errdetail_set(e, CITRUS_EIO, "...")`. e may
 * be NULL (a caller that wants no detail). */
int errdetail_set(errdetail *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Sets the SQLSTATE (five characters; anything else clears it). */
void errdetail_sqlstate(errdetail *e, const char *sqlstate);
/* Prefixes the message with the formatted context and ": " (what fits). */
void errdetail_prefix(errdetail *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* No error. */
void errdetail_clear(errdetail *e);

#endif
