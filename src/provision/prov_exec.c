/* provision/prov_exec.c — the exec provisioner: an external program does the
 * work (Kubernetes operator, Terraform wrapper, a site agent ...).
 *
 * Contract (see provisioner.h): the program is run directly (no shell,
 * argv = {path}) with a JSON request on stdin,
 *   {"action":"provision","shard_id":...,"template":...|null,"params":{...}}
 *   {"action":"deprovision","shard_id":...,"dsn":...}   (dsn when known)
 * and for provision answers on stdout {"dsn": "...", "replicas": [...]}
 * (replicas optional), each a DSN that dsn_parse accepts. Exit 0 is
 * success; anything else is CITRUS_EIO "exit N: <stderr excerpt>".
 *
 * Running it: posix_spawn (no fork of a large server process) into a new
 * process group, stdin/stdout/stderr on pipes and every other descriptor
 * closed in the child (the pipes are close-on-exec, and closefrom(3)
 * covers descriptors other threads open without O_CLOEXEC); signal mask
 * emptied and SIGPIPE & co. back to default. One poll loop writes the
 * request and drains stdout and stderr together (a child filling one pipe
 * while we wait on the other would deadlock), keeping at most 1 MiB of
 * each. At the deadline the whole process group gets SIGKILL (so a shell
 * script's children die too) and the call is CITRUS_ETIMEOUT. SIGPIPE is
 * blocked in this thread while writing, and a SIGPIPE raised by a child
 * that closed its stdin early is consumed, so it cannot kill the server;
 * the write just stops (EPIPE). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "citrus/errors.h"
#include "core/dsn.h"
#include "obs/log.h"
#include "core/errfmt.h"
#include "provision/provisioner.h"

#define OUTPUT_CAP ((size_t)1024 * 1024)
#define DEFAULT_TIMEOUT_MS 60000
#define STDERR_EXCERPT 512
#define EXIT_POLL_MS 5

extern char **environ;

typedef struct prov_exec {
    provisioner base;
    char *path;
    int64_t timeout_ms;
} prov_exec;

/* What the child wrote on one stream: at most OUTPUT_CAP bytes kept. */
typedef struct capture {
    int fd;
    char *buf;
    size_t len;
    bool truncated;
} capture;

/* One run of the program. */
typedef struct run {
    pid_t pid;
    int in_fd; /* our end of its stdin, -1 once done */
    const char *input;
    size_t input_len, written;
    capture out, err;
    int status; /* waitpid status */
    bool exited, timed_out;
    bool lost; /* someone else reaped it (SIGCHLD ignored?): no status */
} run;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* ---- spawning ------------------------------------------------------------- */

static int make_pipes(int fds[3][2])
{
    for (int i = 0; i < 3; i++)
        fds[i][0] = fds[i][1] = -1;
    for (int i = 0; i < 3; i++)
        if (pipe2(fds[i], O_CLOEXEC) != 0)
            return -1;
    return 0;
}

static void close_pipes(int fds[3][2])
{
    for (int i = 0; i < 3; i++) {
        close_fd(&fds[i][0]);
        close_fd(&fds[i][1]);
    }
}

/* The child: its own process group, empty signal mask, default
 * dispositions for what a server typically ignores or handles. */
static void spawn_attr(posix_spawnattr_t *a)
{
    sigset_t none, dfl;
    sigemptyset(&none);
    sigemptyset(&dfl);
    int sigs[] = {SIGPIPE, SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGCHLD, SIGUSR1, SIGUSR2};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        sigaddset(&dfl, sigs[i]);
    posix_spawnattr_init(a);
    posix_spawnattr_setflags(a, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                    POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setpgroup(a, 0);
    posix_spawnattr_setsigmask(a, &none);
    posix_spawnattr_setsigdefault(a, &dfl);
}

static int spawn_child(const char *path, run *r, char *err, size_t errlen)
{
    int fds[3][2];
    if (make_pipes(fds) != 0) {
        errfmt(err, errlen, "pipe: %s", strerror(errno));
        close_pipes(fds);
        return CITRUS_EIO;
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[0][0], 0);
    posix_spawn_file_actions_adddup2(&fa, fds[1][1], 1);
    posix_spawn_file_actions_adddup2(&fa, fds[2][1], 2);
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    spawn_attr(&attr);
    char *argv[] = {(char *)path, NULL};
    int e = posix_spawn(&r->pid, path, &fa, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (e != 0) {
        errfmt(err, errlen, "cannot run %s: %s", path, strerror(e));
        close_pipes(fds);
        return CITRUS_EIO;
    }
    r->in_fd = fds[0][1];
    r->out.fd = fds[1][0];
    r->err.fd = fds[2][0];
    fds[0][1] = fds[1][0] = fds[2][0] = -1;
    close_pipes(fds); /* the child's ends */
    fcntl(r->in_fd, F_SETFL, O_NONBLOCK);
    fcntl(r->out.fd, F_SETFL, O_NONBLOCK);
    fcntl(r->err.fd, F_SETFL, O_NONBLOCK);
    if (r->input_len == 0)
        close_fd(&r->in_fd);
    return 0;
}

/* ---- the I/O loop ------------------------------------------------------------ */

/* Reads what is available; closes the fd at EOF or on error. */
static void capture_read(capture *c)
{
    char scratch[16384];
    for (;;) {
        size_t room = c->len < OUTPUT_CAP ? OUTPUT_CAP - c->len : 0;
        char *dst = scratch;
        size_t want = sizeof(scratch);
        if (room > 0) {
            if (!c->buf && !(c->buf = malloc(OUTPUT_CAP + 1))) {
                close_fd(&c->fd);
                return;
            }
            dst = c->buf + c->len;
            want = room;
        }
        ssize_t n = read(c->fd, dst, want);
        if (n > 0) {
            if (room > 0)
                c->len += (size_t)n;
            else
                c->truncated = true;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        close_fd(&c->fd); /* EOF or error */
        return;
    }
}

/* Writes what the pipe takes; stops (closing stdin) when done or when the
 * child closed its end (EPIPE, with SIGPIPE blocked by the caller). */
static void input_write(run *r, bool *got_epipe)
{
    while (r->written < r->input_len) {
        ssize_t n = write(r->in_fd, r->input + r->written, r->input_len - r->written);
        if (n > 0) {
            r->written += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n < 0 && errno == EPIPE)
            *got_epipe = true;
        break;
    }
    close_fd(&r->in_fd);
}

static void reap(run *r, int flags)
{
    while (!r->exited) {
        pid_t w = waitpid(r->pid, &r->status, flags);
        if (w == r->pid)
            r->exited = true;
        else if (w < 0 && errno != EINTR)
            r->exited = r->lost = true;
        else if (w == 0)
            return; /* WNOHANG: still running */
    }
}

static void kill_group(run *r)
{
    kill(-r->pid, SIGKILL);
    reap(r, 0);
}

/* One round of poll over whatever is still open. */
static void io_round(run *r, int wait_ms, bool *got_epipe)
{
    struct pollfd p[3];
    nfds_t n = 0;
    if (r->in_fd >= 0)
        p[n++] = (struct pollfd){.fd = r->in_fd, .events = POLLOUT};
    if (r->out.fd >= 0)
        p[n++] = (struct pollfd){.fd = r->out.fd, .events = POLLIN};
    if (r->err.fd >= 0)
        p[n++] = (struct pollfd){.fd = r->err.fd, .events = POLLIN};
    if (n == 0) {
        /* Output closed, waiting for the exit: a short sleep per round. */
        poll(NULL, 0, wait_ms < EXIT_POLL_MS ? wait_ms : EXIT_POLL_MS);
        return;
    }
    if (poll(p, n, wait_ms) <= 0)
        return;
    for (nfds_t i = 0; i < n; i++) {
        if (!p[i].revents)
            continue;
        if (p[i].fd == r->in_fd)
            input_write(r, got_epipe);
        else if (p[i].fd == r->out.fd)
            capture_read(&r->out);
        else
            capture_read(&r->err);
    }
}

/* Feeds stdin, drains both outputs and waits for the exit, all before
 * the deadline; at the deadline the process group is killed. */
static void run_io(run *r, int64_t timeout_ms)
{
    sigset_t pipe_set, old, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    sigpending(&pending);
    bool was_pending = sigismember(&pending, SIGPIPE), got_epipe = false;

    int64_t deadline = mono_ms() + timeout_ms;
    for (;;) {
        if (r->in_fd < 0 && r->out.fd < 0 && r->err.fd < 0)
            reap(r, WNOHANG);
        if (r->exited)
            break;
        int64_t left = deadline - mono_ms();
        if (left <= 0) {
            r->timed_out = true;
            kill_group(r);
            break;
        }
        io_round(r, (int)left, &got_epipe);
    }
    close_fd(&r->in_fd);
    close_fd(&r->out.fd);
    close_fd(&r->err.fd);

    if (got_epipe && !was_pending) {
        struct timespec zero = {0, 0};
        sigtimedwait(&pipe_set, NULL, &zero); /* the SIGPIPE our write raised */
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* ---- results ----------------------------------------------------------------- */

/* The tail of stderr, on one line. */
static void stderr_excerpt(const capture *c, char *out, size_t outlen)
{
    size_t len = c->len;
    while (len > 0 &&
           (c->buf[len - 1] == '\n' || c->buf[len - 1] == '\r' || c->buf[len - 1] == ' '))
        len--;
    size_t start = len > STDERR_EXCERPT ? len - STDERR_EXCERPT : 0;
    snprintf(out, outlen, "%s%.*s", start > 0 || c->truncated ? "..." : "", (int)(len - start),
             c->buf ? c->buf + start : "");
    for (char *p = out; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t')
            *p = ' ';
}

static int exit_error(const run *r, int64_t timeout_ms, char *err, size_t errlen)
{
    char excerpt[STDERR_EXCERPT + 8];
    stderr_excerpt(&r->err, excerpt, sizeof(excerpt));
    const char *tail = excerpt[0] ? excerpt : "(no stderr)";
    if (r->timed_out) {
        errfmt(err, errlen, "timed out after %lld ms: %s", (long long)timeout_ms, tail);
        return CITRUS_ETIMEOUT;
    }
    if (r->lost) {
        errfmt(err, errlen, "exit status lost (the child was reaped elsewhere)");
        return CITRUS_EIO;
    }
    if (WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0)
        return 0;
    if (WIFEXITED(r->status))
        errfmt(err, errlen, "exit %d: %s", WEXITSTATUS(r->status), tail);
    else if (WIFSIGNALED(r->status))
        errfmt(err, errlen, "killed by signal %d: %s", WTERMSIG(r->status), tail);
    else
        errfmt(err, errlen, "ended without an exit status");
    return CITRUS_EIO;
}

static int check_dsn(const char *what, json_t *v, char *err, size_t errlen)
{
    char derr[256] = "";
    dsn_info info;
    if (!json_is_string(v)) {
        errfmt(err, errlen, "%s: not a string", what);
        return CITRUS_EIO;
    }
    if (dsn_parse(json_string_value(v), &info, derr, sizeof(derr)) != 0) {
        errfmt(err, errlen, "%s: invalid DSN: %s", what, derr);
        return CITRUS_EIO;
    }
    return 0;
}

static int take_replicas(json_t *reps, prov_result *out, char *err, size_t errlen)
{
    if (!reps || json_is_null(reps))
        return 0;
    if (!json_is_array(reps)) {
        errfmt(err, errlen, "response \"replicas\": not an array");
        return CITRUS_EIO;
    }
    size_t n = json_array_size(reps);
    out->replicas = n ? calloc(n, sizeof(*out->replicas)) : NULL;
    if (n && !out->replicas)
        return CITRUS_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        int rc = check_dsn("response \"replicas\" item", json_array_get(reps, i), err, errlen);
        if (rc)
            return rc;
        if (!(out->replicas[i] = strdup(json_string_value(json_array_get(reps, i)))))
            return CITRUS_ENOMEM;
        out->nreplicas++;
    }
    return 0;
}

/* {"dsn": ..., "replicas": [...]} from stdout into out. */
static int parse_response(const capture *c, prov_result *out, char *err, size_t errlen)
{
    if (c->truncated) {
        errfmt(err, errlen, "response on stdout larger than 1 MiB");
        return CITRUS_EIO;
    }
    json_error_t je;
    json_t *j = json_loadb(c->buf ? c->buf : "", c->len, 0, &je);
    if (!j || !json_is_object(j)) {
        errfmt(err, errlen, "response on stdout is not a JSON object: %s",
               j ? "wrong type" : je.text);
        json_decref(j);
        return CITRUS_EIO;
    }
    json_t *dsn = json_object_get(j, "dsn");
    int rc = check_dsn("response \"dsn\"", dsn, err, errlen);
    if (rc == 0 && !(out->dsn = strdup(json_string_value(dsn))))
        rc = CITRUS_ENOMEM;
    if (rc == 0)
        rc = take_replicas(json_object_get(j, "replicas"), out, err, errlen);
    if (rc == CITRUS_ENOMEM)
        errfmt(err, errlen, "out of memory");
    json_decref(j);
    if (rc)
        prov_result_clear(out);
    return rc;
}

/* ---- the provisioner ------------------------------------------------------------ */

/* Runs the program with request on stdin; on exit 0, *out_cap holds its
 * stdout (caller frees buf). */
static int exec_run(prov_exec *p, json_t *request, capture *out_cap, char *err, size_t errlen)
{
    char *input = json_dumps(request, JSON_COMPACT);
    if (!input) {
        errfmt(err, errlen, "out of memory");
        return CITRUS_ENOMEM;
    }
    run r = {.in_fd = -1, .input = input, .input_len = strlen(input)};
    r.out.fd = r.err.fd = -1;
    int rc = spawn_child(p->path, &r, err, errlen);
    if (rc == 0) {
        run_io(&r, p->timeout_ms);
        rc = exit_error(&r, p->timeout_ms, err, errlen);
    }
    free(input);
    free(r.err.buf);
    if (rc == 0)
        *out_cap = r.out;
    else
        free(r.out.buf);
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

static int exec_provision(provisioner *base, const prov_request *req, prov_result *out, char *err,
                          size_t errlen)
{
    prov_exec *p = (prov_exec *)base;
    memset(out, 0, sizeof(*out));
    int rc = prov_shard_id_check(req->shard_id, err, errlen);
    if (rc)
        return rc;
    json_t *params = req->params ? json_incref(req->params) : json_object();
    json_t *request = json_pack("{s:s, s:s, s:s?, s:o}", "action", "provision", "shard_id",
                                req->shard_id, "template", req->template_name, "params", params);
    if (!request) {
        errfmt(err, errlen, "cannot build the request (params not JSON?)");
        return CITRUS_EINVAL;
    }
    capture c = {.fd = -1};
    rc = exec_run(p, request, &c, err, errlen);
    json_decref(request);
    if (rc == 0)
        rc = parse_response(&c, out, err, errlen);
    free(c.buf);
    log_result(p, "provision", req->shard_id, rc, err);
    return rc;
}

static int exec_deprovision(provisioner *base, const char *shard_id, const char *dsn, char *err,
                            size_t errlen)
{
    prov_exec *p = (prov_exec *)base;
    int rc = prov_shard_id_check(shard_id, err, errlen);
    if (rc)
        return rc;
    json_t *request =
        json_pack("{s:s, s:s, s:s?}", "action", "deprovision", "shard_id", shard_id, "dsn", dsn);
    if (!request) {
        errfmt(err, errlen, "out of memory");
        return CITRUS_ENOMEM;
    }
    capture c = {.fd = -1};
    rc = exec_run(p, request, &c, err, errlen);
    json_decref(request);
    free(c.buf);
    log_result(p, "deprovision", shard_id, rc, err);
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
    free(p);
}

/* timeout_ms <= 0: 60 s. */
provisioner *prov_exec_new(const char *path, int64_t timeout_ms)
{
    if (!path || !*path)
        return NULL;
    prov_exec *p = calloc(1, sizeof(*p));
    if (!p || !(p->path = strdup(path))) {
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
