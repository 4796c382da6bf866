/* cli/input.c — slurping a file or stdin. */
#include "cli/input.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"
#include "core/strbuf.h"

int input_read(const char *path, char **buf, size_t *len, errdetail *e)
{
    *buf = NULL;
    *len = 0;
    int is_stdin = strcmp(path, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (!f)
        return errdetail_set(e, CITRUS_EIO, "cannot open %s: %s", path, strerror(errno));
    int rc = 0;
    strbuf b = STRBUF_INIT;
    char chunk[64 * 1024];
    size_t n;
    while (rc == 0 && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        rc = strbuf_add(&b, chunk, n);
    if (rc == 0 && ferror(f))
        rc = errdetail_set(e, CITRUS_EIO, "cannot read %s: %s", is_stdin ? "standard input" : path,
                           strerror(errno));
    if (rc == 0) {
        *buf = strbuf_take(&b, len);
        rc = *buf ? 0 : CITRUS_ENOMEM;
    }
    strbuf_free(&b);
    if (rc == CITRUS_ENOMEM)
        errdetail_set(e, CITRUS_ENOMEM, "out of memory reading %s", path);
    if (!is_stdin)
        fclose(f);
    return rc;
}
