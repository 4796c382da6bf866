/* core/errfmt.h — writing a message into the caller's (err, errlen)
 * buffer, the error convention of the shard modules (provisioners,
 * schema). */
#ifndef CITRUS_CORE_ERRFMT_H
#define CITRUS_CORE_ERRFMT_H

#include <stddef.h>

/* snprintf into err, truncated to errlen; nothing when err is NULL or
 * errlen is 0 (a caller that does not want the message). */
void errfmt(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
