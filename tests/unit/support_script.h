/* tests/unit/support_script.h — executable /bin/sh scripts written by a
 * test, the programs the exec provisioner and sys/proc.c run. */
#ifndef CITRUS_TESTS_SUPPORT_SCRIPT_H
#define CITRUS_TESTS_SUPPORT_SCRIPT_H

#include <stddef.h>

/* Writes "#!/bin/sh\n" and body to <dir>/<name>, mode 0755; its path into
 * out. Fails the test on error. */
void script_write(const char *dir, const char *name, const char *body, char *out, size_t len);

#endif
