/* node/auth_boot.h — who may do what on this node: the auth section of the
 * config into the gate's authn (a->auth), the API keys (a->keys), and the
 * rules on which modes a command may run with:
 *  - citrus dev: none by default, but only while every listener is on
 *    loopback; `--auth api_key` makes an sm-admin key on first start and
 *    writes it to <data-dir>/admin.key (0600);
 *  - citrus server / router: an auth mode is required; none only with
 *    auth.allow_none: true, and then a warning at start. */
#ifndef CITRUS_NODE_AUTH_BOOT_H
#define CITRUS_NODE_AUTH_BOOT_H

#include "api/app.h"
#include "node/config.h"

/* Sets a->auth, a->keys and a->auth_modes. 0, or an error already reported
 * on stderr (the caller exits 2 for a refused configuration). */
int auth_boot(const citrus_config *cfg, const char *cmd, const char *api_listen, app *a);
/* After the API is bound: in dev with api_key, the first start's admin key
 * (written to <data-dir>/admin.key); prints where it is. */
void auth_dev_key(const citrus_config *cfg, const char *cmd, app *a);
/* The line the banner shows. */
const char *auth_banner(const app *a);
void auth_stop(app *a);

#endif
