/* provision/prov_exec.c — the exec provisioner: an external program does the
 * work (Kubernetes operator, Terraform wrapper, a site agent ...).
 *
 * Contract (see provisioner.h): the program is run directly (no shell,
 * argv = {path}) with a JSON request on stdin,
 *   {"action":"provision","shard_id":...,"template":...|null,"params":{...}}
 *   {"action":"deprovision","shard_id":...,"dsn":...}   (dsn when known)
 * and for provision answers on stdout {"dsn": "...", "replicas": [...]}
 * (replicas optional), each a DSN that the DSN rules accept (drv_dsn_check). Exit 0 is
 * success; anything else is CITRUS_EIO "exit N: <stderr excerpt>".
 *
 * The child's environment is PATH, HOME, LANG and provisioner.exec.env
 * only (the server's own, CITRUS_* DSNs and keys included, is not passed
 * on), and the stderr excerpt of a failure is redacted (dsn_redact_text)
 * before it becomes the shard's error.
 *
 * Running it (a new process group, pipes, the deadline, SIGPIPE) is
 * sys/proc.c's; what is kept of stdout and stderr is capped at 1 MiB each,
 * and a larger answer is an error. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "citrus/errors.h"
#include "core/dsn.h"
#include "core/errdetail.h"
#include "dbconn/driver.h"
#include "obs/log.h"
#include "provision/provisioner.h"
#include "sys/proc.h"

#define OUTPUT_CAP ((size_t)1024 * 1024)
#define DEFAULT_TIMEOUT_MS 60000
#define STDERR_EXCERPT 512

typedef struct prov_exec {
    provisioner base;
    char *path;
    int64_t timeout_ms;
    char **env; /* PATH, HOME, LANG and provisioner.exec.env: nothing else of ours */
} prov_exec;

/* ---- results ----------------------------------------------------------------- */

/* The tail of stderr, on one line, with its secrets masked (the whole of
 * it first: a tail cut in the middle of "password=..." would hide the key
 * that marks the value as one). */
static void stderr_excerpt(const proc_output *c, char *out, size_t outlen)
{
    char *buf = dsn_redact_text(c->buf ? c->buf : "");
    if (!buf) {
        snprintf(out, outlen, "(stderr not shown: out of memory)");
        return;
    }
    size_t len = strlen(buf);
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' '))
        len--;
    size_t start = len > STDERR_EXCERPT ? len - STDERR_EXCERPT : 0;
    snprintf(out, outlen, "%s%.*s", start > 0 || c->truncated ? "..." : "", (int)(len - start),
             buf + start);
    free(buf);
    for (char *p = out; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t')
            *p = ' ';
}

static int exit_error(const proc_result *r, int64_t timeout_ms, errdetail *e)
{
    char excerpt[STDERR_EXCERPT + 8];
    stderr_excerpt(&r->err, excerpt, sizeof(excerpt));
    const char *tail = excerpt[0] ? excerpt : "(no stderr)";
    if (r->timed_out)
        return errdetail_set(e, CITRUS_ETIMEOUT, "timed out after %lld ms: %s",
                             (long long)timeout_ms, tail);
    if (r->lost)
        return errdetail_set(e, CITRUS_EIO, "exit status lost (the child was reaped elsewhere)");
    if (proc_result_ok(r))
        return 0;
    if (WIFEXITED(r->status))
        return errdetail_set(e, CITRUS_EIO, "exit %d: %s", WEXITSTATUS(r->status), tail);
    if (WIFSIGNALED(r->status))
        return errdetail_set(e, CITRUS_EIO, "killed by signal %d: %s", WTERMSIG(r->status), tail);
    return errdetail_set(e, CITRUS_EIO, "ended without an exit status");
}

static int check_dsn(const char *what, json_t *v, errdetail *e)
{
    errdetail derr;
    if (!json_is_string(v))
        return errdetail_set(e, CITRUS_EIO, "%s: not a string", what);
    if (drv_dsn_check(json_string_value(v), &derr) != 0)
        return errdetail_set(e, CITRUS_EIO, "%s: invalid DSN: %s", what, derr.message);
    return 0;
}

static int take_replicas(json_t *reps, prov_result *out, errdetail *e)
{
    if (!reps || json_is_null(reps))
        return 0;
    if (!json_is_array(reps))
        return errdetail_set(e, CITRUS_EIO, "response \"replicas\": not an array");
    size_t n = json_array_size(reps);
    out->replicas = n ? calloc(n, sizeof(*out->replicas)) : NULL;
    if (n && !out->replicas)
        return CITRUS_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        int rc = check_dsn("response \"replicas\" item", json_array_get(reps, i), e);
        if (rc)
            return rc;
        if (!(out->replicas[i] = strdup(json_string_value(json_array_get(reps, i)))))
            return CITRUS_ENOMEM;
        out->nreplicas++;
    }
    return 0;
}

/* {"dsn": ..., "replicas": [...]} from stdout into out. */
static int parse_response(const proc_output *c, prov_result *out, errdetail *e)
{
    if (c->truncated)
        return errdetail_set(e, CITRUS_EIO, "response on stdout larger than 1 MiB");
    json_error_t je;
    json_t *j = json_loadb(c->buf ? c->buf : "", c->len, 0, &je);
    if (!j || !json_is_object(j)) {
        errdetail_set(e, CITRUS_EIO, "response on stdout is not a JSON object: %s",
                      j ? "wrong type" : je.text);
        json_decref(j);
        return CITRUS_EIO;
    }
    json_t *dsn = json_object_get(j, "dsn");
    int rc = check_dsn("response \"dsn\"", dsn, e);
    if (rc == 0 && !(out->dsn = strdup(json_string_value(dsn))))
        rc = CITRUS_ENOMEM;
    if (rc == 0)
        rc = take_replicas(json_object_get(j, "replicas"), out, e);
    if (rc == CITRUS_ENOMEM)
        errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    json_decref(j);
    if (rc)
        prov_result_clear(out);
    return rc;
}

/* ---- the provisioner ------------------------------------------------------------ */

/* Runs the program with request on stdin; on exit 0, *res holds what it
 * wrote (release it with proc_result_free). */
static int exec_run(prov_exec *p, json_t *request, proc_result *res, errdetail *e)
{
    char *input = json_dumps(request, JSON_COMPACT);
    if (!input)
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    proc_spec spec = {.path = p->path,
                      .input = input,
                      .input_len = strlen(input),
                      .output_cap = OUTPUT_CAP,
                      .timeout_ms = p->timeout_ms,
                      .env = p->env};
    int rc = proc_run(&spec, res, e);
    free(input);
    if (rc == 0)
        rc = exit_error(res, p->timeout_ms, e);
    if (rc < 0)
        proc_result_free(res);
    return rc;
}

static void log_result(prov_exec *p, const char *action, const char *shard_id, int rc,
                       const char *err)
{
    json_t *f =
        json_pack("{s:s, s:s, s:s}", "path", p->path, "action", action, "shard_id", shard_id);
    if (rc) {
        if (f)
            json_object_set_new(f, "error", json_string(err));
        log_warn("provisioner", "exec provisioner failed", f);
    } else {
        log_info("provisioner", "exec provisioner succeeded", f);
    }
}

static int exec_provision(provisioner *base, const prov_request *req, prov_result *out,
                          errdetail *e)
{
    prov_exec *p = (prov_exec *)base;
    memset(out, 0, sizeof(*out));
    errdetail scratch;
    if (!e)
        e = &scratch;
    int rc = prov_shard_id_check(req->shard_id, e);
    if (rc)
        return rc;
    json_t *params = req->params ? json_incref(req->params) : json_object();
    json_t *request = json_pack("{s:s, s:s, s:s?, s:o}", "action", "provision", "shard_id",
                                req->shard_id, "template", req->template_name, "params", params);
    if (!request)
        return errdetail_set(e, CITRUS_EINVAL, "cannot build the request (params not JSON?)");
    proc_result res;
    rc = exec_run(p, request, &res, e);
    json_decref(request);
    if (rc == 0)
        rc = parse_response(&res.out, out, e);
    proc_result_free(&res);
    log_result(p, "provision", req->shard_id, rc, e->message);
    return rc;
}

static int exec_deprovision(provisioner *base, const char *shard_id, const char *dsn, errdetail *e)
{
    prov_exec *p = (prov_exec *)base;
    errdetail scratch;
    if (!e)
        e = &scratch;
    int rc = prov_shard_id_check(shard_id, e);
    if (rc)
        return rc;
    json_t *request =
        json_pack("{s:s, s:s, s:s?}", "action", "deprovision", "shard_id", shard_id, "dsn", dsn);
    if (!request)
        return errdetail_set(e, CITRUS_ENOMEM, "out of memory");
    proc_result res;
    rc = exec_run(p, request, &res, e);
    json_decref(request);
    if (rc == 0)
        proc_result_free(&res);
    log_result(p, "deprovision", shard_id, rc, e->message);
    return rc;
}

static json_t *exec_describe(provisioner *base)
{
    prov_exec *p = (prov_exec *)base;
    return json_pack("{s:s, s:s, s:I}", "kind", "exec", "path", p->path, "timeout_ms",
                     (json_int_t)p->timeout_ms);
}

static void exec_free(provisioner *base)
{
    prov_exec *p = (prov_exec *)base;
    if (!p)
        return;
    free(p->path);
    proc_env_free(p->env);
    free(p);
}

/* timeout_ms <= 0: 60 s. */
provisioner *prov_exec_new(const char *path, int64_t timeout_ms, const char *env)
{
    if (!path || !*path)
        return NULL;
    prov_exec *p = calloc(1, sizeof(*p));
    if (!p || !(p->path = strdup(path)) || !(p->env = proc_env_new(env))) {
        if (p)
            free(p->path);
        free(p);
        return NULL;
    }
    p->timeout_ms = timeout_ms > 0 ? timeout_ms : DEFAULT_TIMEOUT_MS;
    p->base.kind = "exec";
    p->base.provision = exec_provision;
    p->base.deprovision = exec_deprovision;
    p->base.describe = exec_describe;
    p->base.free = exec_free;
    return &p->base;
}
