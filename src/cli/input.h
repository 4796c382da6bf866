/* cli/input.h — reading a command's whole input file (or stdin). */
#ifndef CITRUS_CLI_INPUT_H
#define CITRUS_CLI_INPUT_H

#include <stddef.h>

#include "core/errdetail.h"

/* Reads all of path ("-" = standard input) into a malloc'd buffer, which the
 * caller frees; a NUL follows the data (not counted in *len). Returns 0, or
 * CITRUS_EIO / CITRUS_ENOMEM with a message naming path in e. */
int input_read(const char *path, char **buf, size_t *len, errdetail *e);

#endif
