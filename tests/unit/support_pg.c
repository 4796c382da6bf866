/* tests/unit/support_pg.c — a throwaway PostgreSQL server for unit tests
 * (see support_pg.h).
 *
 * Layout: mkdtemp /tmp/citrus-pg-XXXXXX (owned by the server's user), with
 * data/ (initdb -A trust -U postgres --no-sync), sock/ (the Unix socket
 * dir: never the system's /var/run/postgresql) and initdb.log, postgres.log.
 * The server listens on 127.0.0.1 only, on a port found by binding port 0,
 * with fsync off. If another process takes the port between our probe and
 * the bind, the postmaster exits and we retry on a new port.
 *
 * Children are forked directly: setgid/setuid to postgres when we are
 * root, then prctl(PR_SET_PDEATHSIG, SIGKILL) — after the uid change,
 * which would otherwise clear it — so a crashed test never leaves a
 * postmaster behind. */
#include "support_pg.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_BINDIR "/usr/lib/postgresql/15/bin"
#define READY_MS 30000
#define INITDB_MS 120000
#define STOP_MS 15000
#define START_TRIES 3
#define RESTART_STOP_MS 30000
#define RESTART_READY_MS 60000

typedef struct run_as {
    uid_t uid;
    gid_t gid;
    bool switch_user; /* we are root: become uid/gid in the child */
} run_as;

pg_instance pg;

int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static const char *bindir(void)
{
    const char *d = getenv("CITRUS_PG_BINDIR");
    return d && *d ? d : DEFAULT_BINDIR;
}

int pg_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
        perror("pg_free_port");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

void pg_dsn(const pg_instance *inst, const char *dbname, char *out, size_t outlen)
{
    snprintf(out, outlen, "postgresql://postgres@127.0.0.1:%d/%s", inst->port, dbname);
}

/* ---- processes ------------------------------------------------------------- */

static int who(run_as *as)
{
    memset(as, 0, sizeof(*as));
    if (geteuid() != 0) {
        as->uid = geteuid();
        as->gid = getegid();
        return 0;
    }
    struct passwd *pw = getpwnam("postgres");
    if (!pw) {
        fprintf(stderr, "support_pg: running as root and there is no postgres user\n");
        return -1;
    }
    as->uid = pw->pw_uid;
    as->gid = pw->pw_gid;
    as->switch_user = true;
    return 0;
}

/* In the child: become the server's user, die with the parent, output to
 * log, then exec. Never returns. */
static void child_exec(const run_as *as, pid_t parent, const char *cwd, const char *log,
                       char *const argv[])
{
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || null < 0 || dup2(null, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
        _exit(126);
    if (as->switch_user &&
        (setgroups(0, NULL) != 0 || setgid(as->gid) != 0 || setuid(as->uid) != 0)) {
        perror("support_pg: dropping to the postgres user");
        _exit(126);
    }
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* after setuid, which clears it */
    if (getppid() != parent)
        _exit(126); /* the test died before prctl */
    if (chdir(cwd) != 0)
        _exit(126);
    execv(argv[0], argv);
    perror("support_pg: exec");
    _exit(127);
}

static pid_t spawn(const run_as *as, const char *cwd, const char *log, char *const argv[])
{
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0)
        child_exec(as, parent, cwd, log, argv);
    if (pid < 0)
        perror("support_pg: fork");
    return pid;
}

/* Waits for pid until deadline; SIGKILL when it passes. The exit status,
 * -1 when a signal ended it, -2 when it had to be killed. */
static int wait_exit(pid_t pid, int64_t ms)
{
    int64_t until = mono_ms() + ms;
    int status;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        if (w < 0 && errno != EINTR)
            return -1;
        if (mono_ms() > until) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -2;
        }
        sleep_ms(10);
    }
}

static void print_log(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    fprintf(stderr, "---- %s ----\n", path);
    char line[1024];
    while (fgets(line, sizeof(line), f))
        fputs(line, stderr);
    fprintf(stderr, "---- end of %s ----\n", path);
    fclose(f);
}

/* ---- the server --------------------------------------------------------------- */

static int make_dirs(pg_instance *inst, const run_as *as)
{
    snprintf(inst->dir, sizeof(inst->dir), "/tmp/citrus-pg-XXXXXX");
    if (!mkdtemp(inst->dir)) {
        perror("support_pg: mkdtemp");
        inst->dir[0] = '\0';
        return -1;
    }
    char sock[300];
    snprintf(sock, sizeof(sock), "%s/sock", inst->dir);
    if (mkdir(sock, 0700) != 0 || (as->switch_user && (chown(inst->dir, as->uid, as->gid) != 0 ||
                                                       chown(sock, as->uid, as->gid) != 0))) {
        perror("support_pg: preparing the temp dir");
        return -1;
    }
    return 0;
}

static int initdb(pg_instance *inst, const run_as *as)
{
    char exe[512], data[300], log[300];
    snprintf(exe, sizeof(exe), "%s/initdb", bindir());
    snprintf(data, sizeof(data), "%s/data", inst->dir);
    snprintf(log, sizeof(log), "%s/initdb.log", inst->dir);
    char *argv[] = {exe,        "-D",        data,          "-A", "trust", "-U",
                    "postgres", "--no-sync", "--no-locale", "-E", "UTF8",  "--no-instructions",
                    NULL};
    pid_t pid = spawn(as, inst->dir, log, argv);
    int rc = pid > 0 ? wait_exit(pid, INITDB_MS) : -1;
    if (rc != 0) {
        fprintf(stderr, "support_pg: initdb failed (%d)\n", rc);
        print_log(log);
        return -1;
    }
    return 0;
}

static pid_t start_postmaster(pg_instance *inst, const run_as *as)
{
    char exe[512], data[300], sock[300], log[300], port[16];
    snprintf(exe, sizeof(exe), "%s/postgres", bindir());
    snprintf(data, sizeof(data), "%s/data", inst->dir);
    snprintf(sock, sizeof(sock), "%s/sock", inst->dir);
    snprintf(log, sizeof(log), "%s/postgres.log", inst->dir);
    snprintf(port, sizeof(port), "%d", inst->port);
    char *argv[] = {exe,
                    "-D",
                    data,
                    "-p",
                    port,
                    "-k",
                    sock,
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "synchronous_commit=off",
                    NULL};
    return spawn(as, inst->dir, log, argv);
}

static bool select1(const char *dsn)
{
    char conninfo[256];
    snprintf(conninfo, sizeof(conninfo), "%s?connect_timeout=2", dsn);
    PGconn *c = PQconnectdb(conninfo);
    bool ok = false;
    if (PQstatus(c) == CONNECTION_OK) {
        PGresult *r = PQexec(c, "SELECT 1");
        ok = PQresultStatus(r) == PGRES_TUPLES_OK;
        PQclear(r);
    }
    PQfinish(c);
    return ok;
}

/* 0 when ready, 1 when the postmaster exited (port taken?), -1 when ms
 * passed. */
static int wait_ready(pg_instance *inst, int64_t ms)
{
    int64_t until = mono_ms() + ms;
    while (!select1(inst->admin_dsn)) {
        int status;
        if (waitpid(inst->pid, &status, WNOHANG) == inst->pid) {
            inst->pid = 0;
            return 1;
        }
        if (mono_ms() > until)
            return -1;
        sleep_ms(50);
    }
    return 0;
}

/* SIGINT (fast shutdown) to the postmaster, SIGKILL after ms; reaped. */
static void stop_postmaster(pg_instance *inst, int64_t ms)
{
    kill(inst->pid, SIGINT); /* fast shutdown: ends sessions, checkpoints */
    if (wait_exit(inst->pid, ms) == -2)
        fprintf(stderr, "support_pg: postmaster %d did not stop in time: killed\n", (int)inst->pid);
    inst->pid = 0;
}

int pg_start(pg_instance *inst)
{
    memset(inst, 0, sizeof(*inst));
    char exe[512];
    snprintf(exe, sizeof(exe), "%s/postgres", bindir());
    if (access(exe, X_OK) != 0) {
        fprintf(stderr, "support_pg: %s not found: install postgresql (scripts/deps.sh)\n", exe);
        return -1;
    }
    run_as as;
    if (who(&as) != 0 || make_dirs(inst, &as) != 0 || initdb(inst, &as) != 0) {
        pg_stop(inst);
        return -1;
    }
    char log[300];
    snprintf(log, sizeof(log), "%s/postgres.log", inst->dir);
    int rc = 1;
    for (int i = 0; i < START_TRIES && rc == 1; i++) {
        inst->port = pg_free_port();
        pg_dsn(inst, "postgres", inst->admin_dsn, sizeof(inst->admin_dsn));
        inst->pid = inst->port > 0 ? start_postmaster(inst, &as) : -1;
        if (inst->pid <= 0) {
            inst->pid = 0;
            break;
        }
        rc = wait_ready(inst, READY_MS);
    }
    if (rc != 0) {
        fprintf(stderr, "support_pg: postgres did not become ready (%s)\n",
                rc < 0 ? "timeout" : "exited");
        print_log(log);
        pg_stop(inst);
        return -1;
    }
    return 0;
}

void pg_stop(pg_instance *inst)
{
    if (inst->pid > 0)
        stop_postmaster(inst, STOP_MS);
    if (inst->dir[0]) {
        tmp_dir_remove(inst->dir);
        inst->dir[0] = '\0';
    }
}

int pg_halt(pg_instance *inst)
{
    if (inst->pid <= 0) {
        fprintf(stderr, "support_pg: halt: no postmaster is running\n");
        return -1;
    }
    stop_postmaster(inst, RESTART_STOP_MS);
    return 0;
}

int pg_resume(pg_instance *inst)
{
    run_as as;
    if (inst->pid > 0 || !inst->dir[0]) {
        fprintf(stderr, "support_pg: resume: the server is not halted\n");
        return -1;
    }
    if (who(&as) != 0)
        return -1;
    inst->pid = start_postmaster(inst, &as);
    if (inst->pid <= 0) {
        inst->pid = 0;
        return -1;
    }
    int rc = wait_ready(inst, RESTART_READY_MS);
    if (rc != 0) {
        char log[300];
        snprintf(log, sizeof(log), "%s/postgres.log", inst->dir);
        fprintf(stderr, "support_pg: the restarted postmaster %s\n",
                rc < 0 ? "did not answer in time" : "exited (port taken?)");
        print_log(log);
        return -1;
    }
    return 0;
}

int pg_restart(pg_instance *inst)
{
    if (pg_halt(inst) != 0)
        return -1;
    return pg_resume(inst);
}

/* ---- the binary's server as a cmocka group ----------------------------------- */

int pg_group_setup(void **state)
{
    int64_t t0 = mono_ms();
    if (pg_start(&pg) != 0) {
        fprintf(stderr, "FAIL: could not start a PostgreSQL server for the tests\n");
        return -1;
    }
    printf("%s: postgres at %s (pid %d) started in %lld ms\n", program_invocation_short_name,
           pg.admin_dsn, (int)pg.pid, (long long)(mono_ms() - t0));
    return 0;
}

int pg_group_teardown(void **state)
{
    pg_stop(&pg);
    return 0;
}

/* ---- temp dirs ------------------------------------------------------------------ */

int tmp_dir_create(char *dir, size_t len, const char *tag)
{
    snprintf(dir, len, "/tmp/citrus-%s-test-XXXXXX", tag);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return -1;
    }
    return 0;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

void tmp_dir_remove(const char *dir)
{
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int tmp_write_garbage(const char *dir, const char *name, char *path, size_t len)
{
    snprintf(path, len, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    for (int i = 0; i < 200; i++)
        fputs("this is not an SQLite database file. ", f);
    return fclose(f) == 0 ? 0 : -1;
}
