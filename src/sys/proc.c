/* sys/proc.c — spawning a program, feeding its stdin and capturing its
 * stdout and stderr up to a deadline (see proc.h). */
#include "sys/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "citrus/errors.h"
#include "core/errdetail.h"

#define EXIT_POLL_MS 5

extern char **environ;

/* One stream being read: at most cap bytes kept. */
typedef struct capture {
    int fd;
    size_t cap;
    proc_output o;
} capture;

/* One run of the program. */
typedef struct run {
    pid_t pid;
    int in_fd; /* our end of its stdin, -1 once done */
    const char *input;
    size_t input_len, written;
    capture out, err;
    int status;
    bool exited, timed_out, lost;
} run;

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

static int spawn_child(const char *path, char *const *env, run *r, errdetail *e)
{
    int fds[3][2];
    if (make_pipes(fds) != 0) {
        errdetail_set(e, CITRUS_EIO, "pipe: %s", strerror(errno));
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
    int se = posix_spawn(&r->pid, path, &fa, &attr, argv, env ? env : environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (se != 0) {
        errdetail_set(e, CITRUS_EIO, "cannot run %s: %s", path, strerror(se));
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
        size_t room = c->o.len < c->cap ? c->cap - c->o.len : 0;
        char *dst = scratch;
        size_t want = sizeof(scratch);
        if (room > 0) {
            if (!c->o.buf && !(c->o.buf = malloc(c->cap + 1))) {
                close_fd(&c->fd);
                return;
            }
            dst = c->o.buf + c->o.len;
            want = room;
        }
        ssize_t n = read(c->fd, dst, want);
        if (n > 0) {
            if (room > 0)
                c->o.len += (size_t)n;
            else
                c->o.truncated = true;
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
static void run_io(run *r, int64_t timeout_ms, const sysclock *clock)
{
    sigset_t pipe_set, old, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    sigpending(&pending);
    bool was_pending = sigismember(&pending, SIGPIPE), got_epipe = false;

    int64_t deadline = clock_mono_ms(clock) + timeout_ms;
    for (;;) {
        if (r->in_fd < 0 && r->out.fd < 0 && r->err.fd < 0)
            reap(r, WNOHANG);
        if (r->exited)
            break;
        int64_t left = deadline - clock_mono_ms(clock);
        if (left <= 0) {
            r->timed_out = true;
            kill_group(r);
            break;
        }
        io_round(r, left > INT32_MAX ? INT32_MAX : (int)left, &got_epipe);
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

/* ---- the call ------------------------------------------------------------------ */

/* NUL-terminated, or NULL when nothing was kept (the buffer is allocated
 * before the first read, which may find EOF). */
static void output_end(proc_output *o)
{
    if (o->buf && o->len == 0) {
        free(o->buf);
        o->buf = NULL;
    } else if (o->buf) {
        o->buf[o->len] = '\0';
    }
}

int proc_run(const proc_spec *spec, proc_result *out, errdetail *e)
{
    memset(out, 0, sizeof(*out));
    size_t cap = spec->output_cap ? spec->output_cap : PROC_OUTPUT_CAP_DEFAULT;
    run r = {.in_fd = -1, .input = spec->input, .input_len = spec->input ? spec->input_len : 0};
    r.out = (capture){.fd = -1, .cap = cap};
    r.err = (capture){.fd = -1, .cap = cap};
    int rc = spawn_child(spec->path, spec->env, &r, e);
    if (rc < 0)
        return rc;
    run_io(&r, spec->timeout_ms, spec->clock);
    output_end(&r.out.o);
    output_end(&r.err.o);
    *out = (proc_result){.timed_out = r.timed_out,
                         .lost = r.lost && !r.timed_out,
                         .status = r.status,
                         .out = r.out.o,
                         .err = r.err.o};
    return 0;
}

void proc_result_free(proc_result *r)
{
    free(r->out.buf);
    free(r->err.buf);
    memset(r, 0, sizeof(*r));
}

bool proc_result_ok(const proc_result *r)
{
    return !r->timed_out && !r->lost && WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0;
}

/* Appends s (copied) to *v of *n; false when out of memory. */
static bool env_push(char ***v, size_t *n, const char *s, size_t len)
{
    char **g = realloc(*v, (*n + 2) * sizeof(**v));
    if (!g)
        return false;
    *v = g;
    if (!(g[*n] = strndup(s, len)))
        return false;
    g[++*n] = NULL;
    return true;
}

/* NAME=value of the caller's environment, or NULL. */
static const char *env_entry(const char *name, size_t n)
{
    for (char **p = environ; p && *p; p++)
        if (strncmp(*p, name, n) == 0 && (*p)[n] == '=')
            return *p;
    return NULL;
}

/* Whether the comma-separated list names name (as NAME or NAME=...). */
static bool named(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list ? list : ""; *p;) {
        if (strncmp(p, name, n) == 0 && (p[n] == '=' || p[n] == ',' || !p[n]))
            return true;
        p += strcspn(p, ",");
        if (*p)
            p++;
    }
    return false;
}

char **proc_env_new(const char *extra)
{
    static const char *const base[] = {"PATH", "HOME", "LANG", NULL};
    char **v = calloc(1, sizeof(*v));
    size_t n = 0;
    if (!v)
        return NULL;
    for (size_t i = 0; base[i]; i++) {
        const char *have = env_entry(base[i], strlen(base[i]));
        if (have && !named(extra, base[i]) && !env_push(&v, &n, have, strlen(have)))
            goto oom;
    }
    for (const char *p = extra ? extra : ""; *p;) {
        size_t len = strcspn(p, ","), k = strcspn(p, "=,");
        const char *have = k < len ? p : env_entry(p, k);
        if (have && !env_push(&v, &n, have, k < len ? len : strlen(have)))
            goto oom;
        p += len;
        if (*p)
            p++;
    }
    return v;
oom:
    proc_env_free(v);
    return NULL;
}

void proc_env_free(char **env)
{
    for (char **p = env; p && *p; p++)
        free(*p);
    free(env);
}
