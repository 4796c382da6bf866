/* api/kvreq.c — key and consistency checks of KV requests, store-error
 * answers (see kvreq.h). */
#include "api/kvreq.h"

#include <string.h>

#include "citrus/errors.h"
#include "core/key.h"

int kvreq_check_key(http_req *r, const char *key, bool prefix)
{
    const char *why = NULL;
    size_t len = strlen(key);
    int rc = prefix ? key_validate_prefix(key, len, &why) : key_validate(key, len, &why);
    if (rc < 0)
        http_reply_error(r, rc, why, NULL);
    return rc;
}

int kvreq_reply_store_error(http_req *r, int err)
{
    return http_reply_error(r, err, NULL, NULL);
}
