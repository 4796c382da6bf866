/* Unit tests for sys/proc.c: stdin in, stdout and stderr out, exit status,
 * a program that cannot start, outputs over the cap on both streams at
 * once (no deadlock), a program that never reads its stdin (SIGPIPE must
 * not kill us), descriptors not inherited, and the deadline: the whole
 * process group killed, and read from the clock it was given. Programs are
 * /bin/sh scripts the test writes. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "citrus/errors.h"
#include "support_script.h"
#include "sys/proc.h"

static char tmpdir[64];

/* An executable /bin/sh script <tmpdir>/<name>; its path into out. */
static void script(const char *name, const char *body, char *out, size_t len)
{
    script_write(tmpdir, name, body, out, len);
}

/* Runs the script name (body) with input; fails the test if it cannot
 * start. */
static void run(const char *name, const char *body, const char *input, size_t cap,
                int64_t timeout_ms, proc_result *out)
{
    char path[256];
    errdetail e = {0};
    script(name, body, path, sizeof(path));
    proc_spec spec = {.path = path,
                      .input = input,
                      .input_len = input ? strlen(input) : 0,
                      .output_cap = cap,
                      .timeout_ms = timeout_ms};
    if (proc_run(&spec, out, &e) != 0)
        fail_msg("proc_run %s: %s", name, e.message);
}

static void input_in_output_out(void **state)
{
    proc_result r;
    run("cat.sh", "tr a-z A-Z\necho to-stderr >&2\n", "hello\n", 0, 10000, &r);
    assert_true(proc_result_ok(&r));
    assert_string_equal(r.out.buf, "HELLO\n");
    assert_int_equal(r.out.len, 6);
    assert_false(r.out.truncated);
    assert_string_equal(r.err.buf, "to-stderr\n");
    proc_result_free(&r);

    run("quiet.sh", "exit 0\n", NULL, 0, 10000, &r); /* no input, no output */
    assert_true(proc_result_ok(&r));
    assert_null(r.out.buf);
    assert_int_equal(r.out.len, 0);
    proc_result_free(&r);
}

static void exit_status_and_stderr(void **state)
{
    proc_result r;
    run("fail.sh", "cat >/dev/null\necho 'quota exceeded' >&2\nexit 3\n", "x", 0, 10000, &r);
    assert_false(proc_result_ok(&r));
    assert_false(r.timed_out);
    assert_true(WIFEXITED(r.status));
    assert_int_equal(WEXITSTATUS(r.status), 3);
    assert_string_equal(r.err.buf, "quota exceeded\n");
    proc_result_free(&r);

    run("killed.sh", "kill -9 $$\n", NULL, 0, 10000, &r);
    assert_false(proc_result_ok(&r));
    assert_true(WIFSIGNALED(r.status));
    assert_int_equal(WTERMSIG(r.status), 9);
    proc_result_free(&r);
}

static void a_program_that_cannot_start(void **state)
{
    proc_spec spec = {.path = "/nonexistent/program", .timeout_ms = 1000};
    proc_result r;
    errdetail e = {0};
    assert_int_equal(proc_run(&spec, &r, &e), CITRUS_EIO);
    assert_int_equal(e.code, CITRUS_EIO);
    assert_non_null(strstr(e.message, "cannot run /nonexistent/program"));
    assert_null(r.out.buf);
}

/* 2 MiB on each of stdout and stderr, written together: both drained, each
 * kept up to the cap and marked truncated. */
static void outputs_over_the_cap(void **state)
{
    proc_result r;
    run("big.sh",
        "head -c 2097152 /dev/zero | tr '\\0' 'e' >&2 &\n"
        "head -c 2097152 /dev/zero | tr '\\0' 'o'\n"
        "wait\n",
        NULL, 65536, 20000, &r);
    assert_true(proc_result_ok(&r));
    assert_int_equal(r.out.len, 65536);
    assert_true(r.out.truncated);
    assert_int_equal(r.out.buf[0], 'o');
    assert_int_equal(r.out.buf[65535], 'o');
    assert_int_equal(r.out.buf[65536], '\0');
    assert_int_equal(r.err.len, 65536);
    assert_true(r.err.truncated);
    assert_int_equal(r.err.buf[100], 'e');
    proc_result_free(&r);
}

/* The program answers without reading a large input: our write fails with
 * EPIPE, and the SIGPIPE (default action: die) must not reach us. */
static void a_program_that_ignores_its_input(void **state)
{
    size_t big = 4 * 1024 * 1024;
    char *blob = malloc(big + 1);
    assert_non_null(blob);
    memset(blob, 'b', big);
    blob[big] = '\0';
    struct sigaction dfl = {.sa_handler = SIG_DFL}, old;
    sigaction(SIGPIPE, &dfl, &old);
    for (int i = 0; i < 3; i++) {
        proc_result r;
        run("noread.sh", "exec echo done\n", blob, 0, 10000, &r);
        assert_true(proc_result_ok(&r));
        assert_string_equal(r.out.buf, "done\n");
        proc_result_free(&r);
    }
    sigset_t pending;
    sigpending(&pending);
    assert_false(sigismember(&pending, SIGPIPE));
    sigaction(SIGPIPE, &old, NULL);
    free(blob);
}

/* A descriptor of ours without close-on-exec is not inherited. */
static void descriptors_are_not_inherited(void **state)
{
    int fd = open("/dev/null", O_RDONLY); /* deliberately without O_CLOEXEC */
    assert_true(fd >= 0);
    assert_int_equal(dup2(fd, 57), 57);
    close(fd);
    proc_result r;
    run("fds.sh", "if [ -e /proc/$$/fd/57 ]; then echo leaked; fi\n", NULL, 0, 10000, &r);
    close(57);
    assert_true(proc_result_ok(&r));
    assert_null(r.out.buf);
    proc_result_free(&r);
}

/* Waits (an event, not a sleep) until pid has ended: gone, or a zombie
 * waiting for its reaper. False when it is still running after 5 s. */
static bool process_ends(pid_t pid)
{
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd < 0)
        return errno == ESRCH;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    bool ended = poll(&p, 1, 5000) == 1;
    close(fd);
    return ended;
}

/* At the deadline the script and the child it started are killed. */
static void the_deadline_kills_the_group(void **state)
{
    char pidfile[128], body[256];
    snprintf(pidfile, sizeof(pidfile), "%s/sleep.pid", tmpdir);
    snprintf(body, sizeof(body), "sleep 30 &\necho $! > %s\nwait\n", pidfile);
    proc_result r;
    run("slow.sh", body, NULL, 0, 1000, &r);
    assert_true(r.timed_out);
    assert_false(proc_result_ok(&r));
    proc_result_free(&r);
    FILE *f = fopen(pidfile, "r");
    assert_non_null(f);
    int pid = 0;
    assert_int_equal(fscanf(f, "%d", &pid), 1);
    fclose(f);
    assert_true(process_ends(pid));
}

/* The deadline is read from the clock given: on a test clock that never
 * moves, a 0 ms timeout is past at once and a 50 ms one never comes (the
 * program's own 300 ms of real time do not count). */
static void the_deadline_reads_the_given_clock(void **state)
{
    char slow[256], slower[256];
    errdetail e = {0};
    script("sleepy.sh", "exec sleep 30\n", slower, sizeof(slower));
    script("nap.sh", "sleep 0.3\necho done\n", slow, sizeof(slow));
    sysclock *c = clock_test_new(1000, 0);
    proc_spec spec = {.path = slower, .timeout_ms = 0, .clock = c};
    proc_result r;
    assert_int_equal(proc_run(&spec, &r, &e), 0);
    assert_true(r.timed_out);
    proc_result_free(&r);
    spec = (proc_spec){.path = slow, .timeout_ms = 50, .clock = c};
    assert_int_equal(proc_run(&spec, &r, &e), 0);
    assert_false(r.timed_out);
    assert_true(proc_result_ok(&r));
    assert_string_equal(r.out.buf, "done\n");
    proc_result_free(&r);
    clock_test_free(c);
}

static int group_setup(void **state)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/citrus-proc-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state)
{
    char cmd[96];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* proc_env_new: PATH, HOME, LANG and the extras, nothing else of ours. */
static void the_child_gets_only_its_environment(void **state)
{
    setenv("CITRUS_SECRET_FOR_TEST", "s3cret", 1);
    setenv("KEEP_FOR_TEST", "kept", 1);
    unsetenv("UNSET_FOR_TEST");
    char **env = proc_env_new("KEEP_FOR_TEST,FIXED_FOR_TEST=a=b,UNSET_FOR_TEST,HOME=/nowhere");
    assert_non_null(env);
    char path[256];
    errdetail e = {0};
    script("env.sh", "env\n", path, sizeof(path));
    proc_spec spec = {.path = path, .timeout_ms = 10000, .env = env};
    proc_result r;
    if (proc_run(&spec, &r, &e) != 0)
        fail_msg("proc_run: %s", e.message);
    proc_env_free(env);
    assert_true(proc_result_ok(&r));
    assert_non_null(r.out.buf);
    assert_null(strstr(r.out.buf, "CITRUS_SECRET_FOR_TEST"));
    assert_null(strstr(r.out.buf, "s3cret"));
    assert_null(strstr(r.out.buf, "UNSET_FOR_TEST"));
    assert_non_null(strstr(r.out.buf, "KEEP_FOR_TEST=kept\n"));
    assert_non_null(strstr(r.out.buf, "FIXED_FOR_TEST=a=b\n"));
    assert_non_null(strstr(r.out.buf, "PATH="));
    const char *home = strstr(r.out.buf, "HOME=");
    assert_non_null(home); /* once, as the list says */
    assert_true(strncmp(home, "HOME=/nowhere\n", 14) == 0);
    assert_null(strstr(home + 1, "HOME="));
    proc_result_free(&r);
    unsetenv("CITRUS_SECRET_FOR_TEST");
    unsetenv("KEEP_FOR_TEST");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(input_in_output_out),
        cmocka_unit_test(exit_status_and_stderr),
        cmocka_unit_test(a_program_that_cannot_start),
        cmocka_unit_test(outputs_over_the_cap),
        cmocka_unit_test(a_program_that_ignores_its_input),
        cmocka_unit_test(descriptors_are_not_inherited),
        cmocka_unit_test(the_deadline_kills_the_group),
        cmocka_unit_test(the_deadline_reads_the_given_clock),
        cmocka_unit_test(the_child_gets_only_its_environment),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
