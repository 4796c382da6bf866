/* node/router_boot.h — the router (SQL on shards) inside `citrus dev` and
 * `citrus server`: its own listener (router.listen), the same app. */
#ifndef CITRUS_NODE_ROUTER_BOOT_H
#define CITRUS_NODE_ROUTER_BOOT_H

#include "api/app.h"
#include "node/config.h"
#include "http/server.h"

/* Starts it unless router.listen is "off" (*srv stays NULL then). Needs
 * a->shards. 0, or an error already reported on stderr. */
int router_boot(const citrus_config *cfg, app *a, http_server **srv);
/* Stops the listener, then frees the router (NULLs are no-ops). */
void router_stop(app *a, http_server *srv);

#endif
