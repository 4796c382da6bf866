/* sys/proc.h — running a program and capturing what it says, with a
 * deadline: what the exec provisioner (provision/prov_exec.c) needs from
 * the operating system, kept apart from its JSON protocol.
 *
 * The program is run directly (no shell, argv = {path}) with posix_spawn
 * (no fork of a large server process) into a new process group, stdin,
 * stdout and stderr on pipes and every other descriptor closed in the
 * child (the pipes are close-on-exec, and closefrom(3) covers descriptors
 * other threads open without O_CLOEXEC); its signal mask is emptied and
 * SIGPIPE & co. are back to their defaults. One poll loop writes the input
 * and drains stdout and stderr together (a child filling one pipe while we
 * wait on the other would deadlock), keeping at most output_cap bytes of
 * each. At the deadline the whole process group gets SIGKILL (so a shell
 * script's children die too). SIGPIPE is blocked in the calling thread
 * while writing, and a SIGPIPE raised by a child that closed its stdin
 * early is consumed, so it cannot kill the caller: the write just stops.
 *
 * Threads: proc_run blocks the calling thread until the program is gone;
 * any number may run at once. */
#ifndef CITRUS_SYS_PROC_H
#define CITRUS_SYS_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/errdetail.h"
#include "sys/clock.h"

#define PROC_OUTPUT_CAP_DEFAULT ((size_t)1024 * 1024)

typedef struct proc_spec {
    const char *path;      /* run as argv = {path} */
    const char *input;     /* written to its stdin, which is then closed; may be NULL */
    size_t input_len;      /* 0: stdin closed at once */
    size_t output_cap;     /* bytes kept of each of stdout and stderr; 0: the default */
    int64_t timeout_ms;    /* from the start to the exit, at most */
    const sysclock *clock; /* the deadline's monotonic time; NULL: the real clock */
    char *const *env;      /* the child's environment (NULL-terminated); NULL: the caller's */
} proc_spec;

/* What the program wrote on one stream. */
typedef struct proc_output {
    char *buf;      /* malloc'd, len bytes and a NUL; NULL when it wrote nothing */
    size_t len;     /* at most output_cap */
    bool truncated; /* it wrote more, which was read and dropped */
} proc_output;

typedef struct proc_result {
    bool timed_out; /* killed (with its group) at the deadline */
    bool lost;      /* reaped by someone else (SIGCHLD ignored?): no status */
    int status;     /* the waitpid status, when neither */
    proc_output out, err;
} proc_result;

/* Runs spec->path to its end (or the deadline). 0 with *out filled
 * (release it with proc_result_free), or CITRUS_EIO when the program could
 * not be started (e says why; *out holds nothing). */
int proc_run(const proc_spec *spec, proc_result *out, errdetail *e);
void proc_result_free(proc_result *r);

/* An environment for a child that must not see the server's secrets:
 * PATH, HOME and LANG from the caller's environment (those set), then each
 * item of extra (comma-separated; NAME=value as given, NAME from the
 * caller's environment when set there; an item naming PATH, HOME or LANG
 * replaces the caller's). NULL-terminated, malloc'd: free it
 * with proc_env_free. NULL when out of memory. */
char **proc_env_new(const char *extra);
void proc_env_free(char **env);

/* Whether it exited with status 0. */
bool proc_result_ok(const proc_result *r);

#endif
