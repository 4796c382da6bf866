/* node/auth_boot.c — the auth section into the node (see auth_boot.h). */
#include "node/auth_boot.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/authn_jwt.h"
#include "citrus/errors.h"
#include "obs/log.h"

static authn auth_state; /* one node per process */
static authn_jwt *jwt_state;

static bool loopback(const char *listen)
{
    return strncmp(listen, "127.", 4) == 0 || strncmp(listen, "localhost:", 10) == 0;
}

int auth_boot(const citrus_config *cfg, const char *cmd, const char *api_listen, app *a)
{
    errdetail e;
    authn *au = &auth_state;
    memset(au, 0, sizeof(*au));
    bool dev = strcmp(cmd, "dev") == 0;
    const char *modes = cfg->auth_modes[0] ? cfg->auth_modes : (dev ? "none" : "");
    if (!modes[0]) {
        fprintf(stderr,
                "citrus %s: no auth mode: set auth.modes (--auth) to api_key, jwt, "
                "trusted_headers or mtls; none (everyone is sm-admin) needs auth.allow_none: "
                "true\n",
                cmd);
        return CITRUS_EINVAL;
    }
    if (authn_modes_parse(au, modes, &e) < 0 ||
        authn_proxies_parse(au, cfg->auth_proxies, &e) < 0) {
        fprintf(stderr, "citrus %s: invalid config: auth: %s\n", cmd, e.message);
        return CITRUS_EINVAL;
    }
    if ((au->modes & AUTHN_HEADERS) && au->nproxies == 0) {
        fprintf(stderr,
                "citrus %s: invalid config: auth.trusted_headers.proxies: required with "
                "the trusted_headers mode\n",
                cmd);
        return CITRUS_EINVAL;
    }
    if ((au->modes & AUTHN_MTLS) && !cfg->tls_client_ca_file[0]) {
        fprintf(stderr,
                "citrus %s: invalid config: server.tls.client_ca_file: required with the "
                "mtls auth mode (and server.tls.cert_file, key_file)\n",
                cmd);
        return CITRUS_EINVAL;
    }
    if ((au->modes & AUTHN_MTLS) && cfg->nmtls_subjects == 0) {
        fprintf(stderr,
                "citrus %s: invalid config: auth.mtls.subjects: required with the mtls "
                "auth mode (which certificate subject is which user)\n",
                cmd);
        return CITRUS_EINVAL;
    }
    /* A subject maps to a user only where its certificate was verified: on
     * the API listener (server.tls.client_ca_file), and on the router when
     * router.tls.client_ca_file is set too. */
    memcpy(au->subjects, cfg->mtls_subjects, sizeof(au->subjects));
    au->nsubjects = cfg->nmtls_subjects;
    if (au->modes & AUTHN_JWT) {
        authn_jwt_options jo = {.issuer = cfg->jwt_issuer,
                                .audience = cfg->jwt_audience,
                                .jwks_file = cfg->jwt_jwks_file,
                                .jwks_url = cfg->jwt_jwks_url,
                                .discovery = strcmp(cfg->jwt_discovery, "true") == 0,
                                .skew_s = cfg->jwt_skew_s,
                                .roles_claim = cfg->jwt_roles_claim,
                                .tenants_claim = cfg->jwt_tenants_claim,
                                .subject_claim = cfg->jwt_subject_claim,
                                .role_grants = cfg->jwt_role_grants,
                                .nrole_grants = cfg->njwt_role_grants};
        int rc = authn_jwt_new(&jo, &jwt_state, &e);
        if (rc < 0) {
            fprintf(stderr, "citrus %s: %s: auth.jwt: %s\n", cmd,
                    rc == CITRUS_EINVAL ? "invalid config" : "cannot start", e.message);
            return CITRUS_EINVAL;
        }
        au->jwt = authn_jwt_verify;
        au->jwt_ctx = jwt_state;
    }
    bool none = au->modes == AUTHN_NONE;
    bool allow_none = strcmp(cfg->auth_allow_none, "true") == 0;
    if (none && dev && !allow_none &&
        (!loopback(api_listen) ||
         (strcmp(cfg->router_listen, "off") != 0 && !loopback(cfg->router_listen)))) {
        fprintf(stderr,
                "citrus dev: auth none only while listening on loopback: use --auth api_key "
                "(or auth.allow_none: true)\n");
        return CITRUS_EINVAL;
    }
    if (none && !dev && !allow_none) {
        fprintf(stderr,
                "citrus %s: auth.modes none lets everyone in as sm-admin: set "
                "auth.allow_none: true to run so\n",
                cmd);
        return CITRUS_EINVAL;
    }
    if (none && !dev)
        log_warn("auth", "auth.modes is none: every request is allowed (auth.allow_none)", NULL);
    au->metrics_anonymous = strcmp(cfg->auth_metrics_anonymous, "true") == 0;
    if (au->modes & AUTHN_API_KEY) {
        keyring_options ko = {.st = a->st};
        if (keyring_start(&ko, &a->keys, &e) < 0) {
            fprintf(stderr, "citrus %s: %s\n", cmd, e.message);
            return CITRUS_ENOMEM;
        }
        au->keys = a->keys;
    }
    a->auth = au;
    a->auth_modes = modes;
    return 0;
}

/* Writes the key to path, mode 0600, through a temp file and a rename. */
static int write_key(const char *path, const char *token)
{
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    size_t n = strlen(token);
    bool ok = write(fd, token, n) == (ssize_t)n && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, path) < 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

void auth_dev_key(const citrus_config *cfg, const char *cmd, app *a)
{
    if (strcmp(cmd, "dev") != 0 || !a->keys)
        return;
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/admin.key", cfg->data_dir);
    apikey_spec spec = {.roles = AUTH_ADMIN};
    snprintf(spec.name, sizeof(spec.name), "dev-admin");
    char token[APIKEY_TOKEN_LEN + 1];
    json_t *view = NULL;
    int64_t rev;
    errdetail e;
    int rc = keyring_create(a->keys, &spec, true, token, &view, &rev, &e);
    json_decref(view);
    if (rc == 0 && write_key(path, token) < 0) {
        fprintf(stderr, "citrus dev: cannot write %s: %s\n", path, strerror(errno));
    } else if (rc == 0) {
        fprintf(stderr,
                "  admin key written to %s (mode 0600): use it as\n"
                "           citrus kv ls --token-file %s  or  Authorization: Bearer $(cat "
                "%s)\n",
                path, path, path);
    } else if (rc == CITRUS_EFORBIDDEN) {
        fprintf(stderr, "  admin key %s (made on the first start)\n", path);
    } else {
        fprintf(stderr, "citrus dev: cannot make the admin key: %s\n", e.message);
    }
    memset(token, 0, sizeof(token));
}

const char *auth_banner(const app *a)
{
    if (!a->auth || a->auth->modes == AUTHN_NONE)
        return "none: every request is allowed (loopback only; --auth api_key to require keys)";
    return a->auth_modes;
}

void auth_stop(app *a)
{
    keyring_stop(a->keys);
    a->keys = NULL;
    a->auth = NULL;
    authn_jwt_free(jwt_state);
    jwt_state = NULL;
}
