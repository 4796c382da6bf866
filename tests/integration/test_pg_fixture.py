"""The PostgreSQL fixture (pg.py) itself: a started server accepts TCP
connections and pg_isready says so; stop() and the fixture's teardown stop
exactly that postmaster (nothing left running from its dir, port closed)
and remove its temp dir."""
import os
import socket
import subprocess

from pg import PG_BINDIR, make_postgres, postgres_servers  # noqa: F401 (fixture)


def accepts(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def pg_isready(port):
    return subprocess.run([os.path.join(PG_BINDIR, "pg_isready"), "-h", "127.0.0.1", "-p",
                           str(port), "-t", "5"], capture_output=True, text=True, timeout=30)


def processes_using(path):
    """PIDs whose command line mentions path (the postmaster has -D <dir>/data)."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if path.encode() in f.read():
                    pids.append(int(pid))
        except OSError:
            pass
    return pids


def assert_started(pg):
    assert pg.port and pg.port != 5432
    assert pg.admin_dsn == f"postgresql://postgres@127.0.0.1:{pg.port}/postgres"
    assert accepts(pg.port)
    r = pg_isready(pg.port)
    assert r.returncode == 0, r.stdout + r.stderr
    assert processes_using(pg.dir) == [pg.pid]


def assert_stopped(pg, pid, tmp):
    assert pg.proc.poll() is not None
    assert not os.path.exists(tmp)
    assert processes_using(tmp) == []
    assert not accepts(pg.port)
    assert pg_isready(pg.port).returncode != 0


def test_stop_stops_the_postmaster(make_postgres):
    pg = make_postgres()
    assert_started(pg)
    pid, tmp = pg.pid, pg.dir
    pg.stop()
    assert_stopped(pg, pid, tmp)
    pg.stop()  # twice is fine


def test_teardown_stops_every_server():
    with postgres_servers() as make:
        a, b = make(), make()
        assert a.port != b.port
        for pg in (a, b):
            assert_started(pg)
        seen = [(pg, pg.pid, pg.dir) for pg in (a, b)]
    for pg, pid, tmp in seen:
        assert_stopped(pg, pid, tmp)
