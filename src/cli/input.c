/* cli/input.c — slurping a file or stdin. */
#include "cli/input.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"

int input_read(const char *path, char **buf, size_t *len, char *errbuf, size_t errlen)
{
    *buf = NULL;
    *len = 0;
    int is_stdin = strcmp(path, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (!f) {
        snprintf(errbuf, errlen, "cannot open %s: %s", path, strerror(errno));
        return CITRUS_EIO;
    }
    int rc = CITRUS_ENOMEM;
    size_t cap = (size_t)64 * 1024, n = 0;
    char *data = malloc(cap + 1);
    if (!data)
        goto out_file;
    for (;;) {
        n += fread(data + n, 1, cap - n, f);
        if (n < cap)
            break;
        char *bigger = realloc(data, 2 * cap + 1);
        if (!bigger)
            goto out_data;
        data = bigger;
        cap *= 2;
    }
    if (ferror(f)) {
        snprintf(errbuf, errlen, "cannot read %s: %s", is_stdin ? "standard input" : path,
                 strerror(errno));
        rc = CITRUS_EIO;
        goto out_data;
    }
    data[n] = '\0';
    *buf = data;
    *len = n;
    data = NULL;
    rc = 0;
out_data:
    free(data);
out_file:
    if (rc == CITRUS_ENOMEM)
        snprintf(errbuf, errlen, "out of memory reading %s", path);
    if (!is_stdin)
        fclose(f);
    return rc;
}
