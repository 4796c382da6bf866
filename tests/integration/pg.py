"""A throwaway PostgreSQL server for integration tests, started like the C
harness (tests/unit/support_pg.c): initdb (-A trust -U postgres --no-sync) in
a fresh /tmp/citrus-pg-* dir owned by the postgres user (PostgreSQL refuses
to run as root), a postmaster on 127.0.0.1 at a free ephemeral port with its
Unix socket in that dir (never the system cluster or port 5432), fsync off.
The children get PR_SET_PDEATHSIG (after the uid change, which would clear
it) so a dying pytest cannot leave a postmaster behind, and stop() stops
exactly the postmaster it started, by PID (SIGINT, then SIGKILL), then
removes the dir.

Missing binaries fail the test (CI installs postgresql); nothing is skipped.

    from pg import make_postgres  # noqa: F401 (fixture)

    def test_x(make_postgres):
        pg = make_postgres()
        pg.admin_dsn   # postgresql://postgres@127.0.0.1:PORT/postgres
        pg.port, pg.pid, pg.dir, pg.dsn("otherdb"), pg.stop()
        rep = make_postgres(replica_of=pg)  # a streaming replica of pg
        tls = make_postgres(ssl=(cert_file, key_file))  # ssl=on with that certificate
"""
import contextlib
import ctypes
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile

import pytest

from conftest import wait_until

PG_BINDIR = os.environ.get("CITRUS_PG_BINDIR", "/usr/lib/postgresql/15/bin")
START_TRIES = 3
PR_SET_PDEATHSIG = 1


class PostgresExited(Exception):
    """The postmaster exited while starting (its port was taken, usually)."""


def pg_bin(name):
    path = os.path.join(PG_BINDIR, name)
    if not os.access(path, os.X_OK):
        raise AssertionError(f"{path} not found: install postgresql (scripts/deps.sh)")
    return path


def free_port():
    """A loopback port nobody listens on right now (bind port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _child_setup(parent_pid):
    """preexec_fn: runs after subprocess switched uid/gid, so the death
    signal set here sticks."""
    def setup():
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:
            os._exit(126)  # the test died before prctl
    return setup


def _stop(server, sig, timeout):
    """Sends sig to server.proc (ours, by PID), SIGKILL after timeout, and
    removes server.dir. Safe to call twice."""
    if server.proc is not None and server.proc.poll() is None:
        server.proc.send_signal(sig)
        try:
            server.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()
    if server.dir:
        shutil.rmtree(server.dir, ignore_errors=True)
        server.dir = None


class Postgres:
    """One postmaster in its own temp dir."""

    def __init__(self):
        self.dir = None
        self.proc = None
        self.port = None
        self.starts = 0
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            self.uid, self.gid = pw.pw_uid, pw.pw_gid
        else:
            self.uid = self.gid = None  # run as ourselves

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    @property
    def admin_dsn(self):
        return self.dsn("postgres")

    def dsn(self, dbname):
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def _run_kwargs(self, log):
        kw = dict(cwd=self.dir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                  preexec_fn=_child_setup(os.getpid()))
        if self.uid is not None:
            kw.update(user=self.uid, group=self.gid, extra_groups=[])
        return kw

    def _make_dirs(self):
        self.dir = tempfile.mkdtemp(prefix="citrus-pg-", dir="/tmp")
        self.data = os.path.join(self.dir, "data")
        self.sock = os.path.join(self.dir, "sock")
        os.mkdir(self.sock, 0o700)
        if self.uid is not None:
            os.chown(self.dir, self.uid, self.gid)
            os.chown(self.sock, self.uid, self.gid)

    def _initdb(self):
        log_path = os.path.join(self.dir, "initdb.log")
        with open(log_path, "wb") as log:
            r = subprocess.run([pg_bin("initdb"), "-D", self.data, "-A", "trust", "-U", "postgres",
                                "--no-sync", "--no-locale", "-E", "UTF8", "--no-instructions"],
                               timeout=120, **self._run_kwargs(log))
        if r.returncode != 0:
            raise AssertionError(f"initdb failed ({r.returncode}): {open(log_path).read()}")

    def _ssl_files(self, ssl):
        """Copies the server certificate and key into the dir, owned by the
        server's user, the key 0600 (PostgreSQL refuses a looser one)."""
        self.ssl_args = []
        if not ssl:
            return
        paths = []
        for src, name in zip(ssl, ("server.crt", "server.key")):
            dst = os.path.join(self.dir, name)
            shutil.copy(src, dst)
            os.chmod(dst, 0o600)
            if self.uid is not None:
                os.chown(dst, self.uid, self.gid)
            paths.append(dst)
        self.ssl_args = ["-c", "ssl=on", "-c", f"ssl_cert_file={paths[0]}",
                         "-c", f"ssl_key_file={paths[1]}"]

    def _spawn(self):
        self.starts += 1
        self.port = free_port()
        self.log_path = os.path.join(self.dir, f"postgres-{self.starts}.log")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [pg_bin("postgres"), "-D", self.data, "-p", str(self.port), "-k", self.sock,
                 "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
                 "-c", "full_page_writes=off", "-c", "synchronous_commit=off"]
                + getattr(self, "ssl_args", []), **self._run_kwargs(log))

    def _ready(self):
        if self.proc.poll() is not None:
            raise PostgresExited(self.proc.returncode)
        r = subprocess.run([pg_bin("psql"), "-X", "-tA", "-c", "SELECT 1", self.admin_dsn],
                           capture_output=True, text=True, timeout=10)
        return r.returncode == 0 and r.stdout.strip() == "1"

    def _basebackup(self, primary):
        log_path = os.path.join(self.dir, "basebackup.log")
        with open(log_path, "wb") as log:
            r = subprocess.run([pg_bin("pg_basebackup"), "-D", self.data, "-R", "-X", "stream",
                                "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
                                "--checkpoint=fast", "--no-sync"], timeout=120, **self._run_kwargs(log))
        if r.returncode != 0:
            raise AssertionError(f"pg_basebackup failed ({r.returncode}): "
                                 f"{open(log_path).read()}")

    def start(self, timeout=30.0, replica_of=None, ssl=None):
        """initdb (or, for a replica, pg_basebackup -R from the primary: a
        hot standby streaming from it), then the postmaster; returns once
        SELECT 1 works. ssl: (cert file, key file) to serve TLS with
        (ssl=on; plain connections are still accepted)."""
        try:
            self._make_dirs()
            self._ssl_files(ssl)
            if replica_of is not None:
                self._basebackup(replica_of)
            else:
                self._initdb()
            for attempt in range(START_TRIES):
                self._spawn()
                try:
                    wait_until(self._ready, timeout, interval=0.05, what="postgres to accept")
                    return self
                except PostgresExited:
                    self.proc = None
                    if attempt == START_TRIES - 1:
                        raise
        except Exception:
            log = getattr(self, "log_path", None)
            text = open(log).read() if log and os.path.exists(log) else "(no log)"
            self.stop()
            raise AssertionError(f"postgres did not start; its log:\n{text}")

    def stop(self, timeout=15.0):
        """SIGINT (fast shutdown) to our postmaster, SIGKILL after timeout;
        removes the temp dir. Safe to call twice."""
        _stop(self, signal.SIGINT, timeout)


@contextlib.contextmanager
def postgres_servers():
    """Yields make(); every server it started is stopped on exit (the
    fixture's teardown, usable directly)."""
    started = []

    def make(replica_of=None, ssl=None):
        pg = Postgres()
        started.append(pg)
        return pg.start(replica_of=replica_of, ssl=ssl)

    try:
        yield make
    finally:
        for pg in reversed(started):  # replicas before their primary
            pg.stop()


@pytest.fixture
def make_postgres():
    with postgres_servers() as make:
        yield make


class PgBouncer:
    """Debian's pgbouncer in front of one database of a Postgres, in its own
    temp dir, on a free loopback port; settings: extra [pgbouncer] lines.
    Stopped by PID."""

    def __init__(self, pg, dbname, settings=()):
        self.pg = pg
        self.dbname = dbname
        self.settings = list(settings)
        self.proc = None
        self.dir = None

    def dsn(self):
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.dbname}"

    def start(self):
        binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        if not os.access(binary, os.X_OK):
            raise AssertionError("pgbouncer not found: install it (scripts/deps.sh)")
        self.dir = tempfile.mkdtemp(prefix="citrus-bouncer-", dir="/tmp")
        self.port = free_port()
        ini = os.path.join(self.dir, "pgbouncer.ini")
        with open(ini, "w") as f:
            f.write("[databases]\n"
                    f"{self.dbname} = host=127.0.0.1 port={self.pg.port} dbname={self.dbname} "
                    "user=postgres\n"
                    "[pgbouncer]\n"
                    f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
                    f"auth_type = trust\nauth_file = {self.dir}/userlist.txt\n"
                    f"logfile = {self.dir}/pgbouncer.log\npidfile = {self.dir}/pgbouncer.pid\n"
                    + "".join(s + "\n" for s in self.settings))
        with open(os.path.join(self.dir, "userlist.txt"), "w") as f:
            f.write('"postgres" ""\n')
        if self.pg.uid is not None:
            for p in (self.dir, ini, os.path.join(self.dir, "userlist.txt")):
                os.chown(p, self.pg.uid, self.pg.gid)
        log = open(os.path.join(self.dir, "stdout.log"), "wb")
        self.proc = subprocess.Popen([binary, ini], **self.pg._run_kwargs(log))
        log.close()
        def answers():
            if self.proc.poll() is not None:
                raise AssertionError("pgbouncer exited: " +
                                     open(os.path.join(self.dir, "stdout.log")).read())
            return subprocess.run([pg_bin("psql"), "-X", "-tA", "-c", "SELECT 1", self.dsn()],
                                  capture_output=True).returncode == 0
        wait_until(answers, 20, interval=0.1, what="pgbouncer to answer")
        return self

    def stop(self):
        _stop(self, signal.SIGTERM, 10.0)


@pytest.fixture
def make_pgbouncer():
    started = []

    def make(pg, dbname, settings=()):
        b = PgBouncer(pg, dbname, settings)
        started.append(b)
        return b.start()

    try:
        yield make
    finally:
        for b in started:
            b.stop()
