/* provision/provisioner.c — what the three provisioners share: freeing a
 * prov_result, and the shard id check they all make before turning an id
 * into a file name, a database name or a request. */
#include "provision/provisioner.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "citrus/errors.h"
#include "core/errdetail.h"

void prov_result_clear(prov_result *r)
{
    if (!r)
        return;
    free(r->dsn);
    for (size_t i = 0; i < r->nreplicas; i++)
        free(r->replicas[i]);
    free(r->replicas);
    memset(r, 0, sizeof(*r));
}

static bool shard_id_ok(const char *id)
{
    if (!id)
        return false;
    size_t n = strlen(id);
    if (n == 0 || n > PROV_SHARD_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '_' && c != '-')))
            return false;
    }
    return true;
}

int prov_shard_id_check(const char *id, errdetail *e)
{
    if (shard_id_ok(id))
        return 0;
    return errdetail_set(e, CITRUS_EINVAL, "invalid shard id");
}
