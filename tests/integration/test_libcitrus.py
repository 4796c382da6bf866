"""libcitrus (include/citrus/citrus.h) against a live `citrus dev` with its
four SQLite shards, on both catalog stores. The C test program
(tests/lib/test_libcitrus.c, cmocka, linked against libcitrus.so) does the
work: local resolution agrees with /v1/route for 2000 keys (300 pinned away
from their ring shard), the watch follows shard and pin changes, typed
parameters round-trip through the router, SQL errors, 8 threads resolving
and querying while the ring changes, endpoint fail-over and bad input.
Also `citrus query` and the example program, built once by CMake and once
with pkg-config. The test program is found next to CITRUS_BIN (so `make
asan` runs the ASan build of it) or through LIBCITRUS_TEST_BIN."""
import json
import os
import shutil
import sqlite3
import subprocess

import pytest
import requests

from cluster import dev_on_store
from conftest import CITRUS_BIN, SANITIZER_MARKERS, run_cli, wait_until

BUILD = os.path.dirname(os.path.abspath(CITRUS_BIN))
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


@pytest.fixture(params=["embedded", "etcd"])
def dev(request, make_citrus, tmp_path):
    """`citrus dev` with its four shards on the embedded store and on etcd."""
    with dev_on_store(request.param, make_citrus, tmp_path) as c:
        yield c


def build_file(name, env_var):
    path = os.environ.get(env_var) or os.path.join(BUILD, name)
    if not os.path.exists(path):
        pytest.skip(f"{path} is not built")
    return path


def sanitizer_flags():
    """The -fsanitize flags a program needs to link this build's library
    (make asan: ASan and UBSan; make tsan: TSan)."""
    cache = open(os.path.join(BUILD, "CMakeCache.txt")).read()
    if "CITRUS_SANITIZE:BOOL=ON" in cache:
        return ["-fsanitize=address,undefined"]
    if "CITRUS_TSAN:BOOL=ON" in cache:
        return ["-fsanitize=thread"]
    return []


def empty_db(path):
    sqlite3.connect(path).close()
    return f"sqlite://{path}"


def run_c_suite(ntests, **env):
    """Runs the C test program with env added; asserts that ntests passed
    and no sanitizer spoke."""
    binary = build_file("test_libcitrus", "LIBCITRUS_TEST_BIN")
    p = subprocess.run([binary], env=dict(os.environ, **env), capture_output=True, text=True,
                       timeout=300)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    assert f"[  PASSED  ] {ntests} test(s)." in out, out
    for marker in SANITIZER_MARKERS:
        assert marker not in out, out


def test_libcitrus_c_suite(dev, tmp_path):
    run_c_suite(10, CITRUS_TEST_ENDPOINT=dev.url, CITRUS_TEST_ROUTER=dev.router_url,
                CITRUS_TEST_DSNS=",".join([empty_db(tmp_path / "a.db"),
                                           empty_db(tmp_path / "b.db")]))


def cli(dev, *args):
    return run_cli("query", "--endpoint", f"http://127.0.0.1:1,{dev.url}",
                   "--router", dev.router_url, *args)


def test_citrus_query_cli(citrus_shards):
    dev = citrus_shards
    r = cli(dev, "--scatter", "CREATE TABLE q (k TEXT PRIMARY KEY, n INTEGER, x REAL, b BLOB)")
    assert r.returncode == 0, r.stderr
    r = cli(dev, "--json-params", "acme:north", "INSERT INTO q VALUES ($1, $2, $3, $4)",
            '"acme:north"', "7", "1.5", '{"$bytes": "AAE="}')
    assert r.returncode == 0, r.stderr
    shard = requests.get(dev.url + "/v1/route/acme:north").json()["shard_id"]
    assert r.stdout == f"(1 changed, shard {shard})\n"
    r = cli(dev, "acme:north", "SELECT k, n, x, b FROM q WHERE k = $1", "acme:north")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "k          | n | x   | b",
        "-----------+---+-----+------------------",
        'acme:north | 7 | 1.5 | {"$bytes":"AAE="}',
        f"(1 row, shard {shard})"]
    r = cli(dev, "-o", "json", "acme:north", "SELECT n FROM q WHERE k = $1", "acme:north")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert j["shard_id"] == shard and j["columns"] == ["n"] and j["rows"] == [[7]]
    # a SQL error: exit 1 and the database's message
    r = cli(dev, "k", "SELEC 1")
    assert r.returncode == 1 and "error: sql_error:" in r.stderr, r.stderr
    # usage errors: exit 2
    assert cli(dev, "k").returncode == 2
    assert cli(dev, "--consistency", "sometimes", "k", "SELECT 1").returncode == 2
    assert cli(dev, "--json-params", "k", "SELECT $1", "[1]").returncode == 2
    r = run_cli("query", "--endpoint", "ftp://x", "k", "SELECT 1")
    assert r.returncode == 2 and "not an http(s) URL" in r.stderr, r.stderr
    # no catalog reachable: a runtime error naming it
    r = run_cli("query", "--endpoint", "http://127.0.0.1:1", "k", "SELECT 1")
    assert r.returncode == 1 and "error: unavailable:" in r.stderr, r.stderr


def example_env(dev):
    return dict(os.environ, CITRUS_ENDPOINT=dev.url, CITRUS_ROUTER=dev.router_url)


def check_example_output(dev, out):
    lines = out.splitlines()
    shard = requests.get(dev.url + "/v1/route/acme:north").json()["shard_id"]
    assert lines[0] == f"tenant acme:north is on {shard}", out
    assert "order o-1 total 1250 open" in lines and "order o-2 total 990 paid" in lines, out


def test_example_program(citrus_shards):
    example = build_file("tenant_rows", "LIBCITRUS_EXAMPLE_BIN")
    p = subprocess.run([example], env=example_env(citrus_shards), capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    check_example_output(citrus_shards, p.stdout)
    # twice: registering again and re-writing the same rows is fine
    p = subprocess.run([example], env=example_env(citrus_shards), capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr


def test_example_builds_with_pkg_config(citrus_shards, tmp_path):
    if not shutil.which("pkg-config") or not os.path.exists(os.path.join(BUILD, "citrus.pc")):
        pytest.skip("no pkg-config or no citrus.pc in the build")
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "citrus"], capture_output=True,
                           text=True, env=dict(os.environ, PKG_CONFIG_PATH=BUILD), check=True)
    exe = tmp_path / "tenant_rows"
    sanitize = sanitizer_flags()
    cc = subprocess.run(["cc", "-std=c11", "-Wall", "-Werror"] + sanitize + [
                         os.path.join(ROOT, "examples", "tenant_rows.c"), "-o", str(exe)]
                        + flags.stdout.split(), capture_output=True, text=True)
    assert cc.returncode == 0, cc.stderr
    env = dict(example_env(citrus_shards), LD_LIBRARY_PATH=BUILD)
    p = subprocess.run([str(exe)], env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    check_example_output(citrus_shards, p.stdout)


def test_static_library_offers_only_the_api(citrus_shards, tmp_path):
    """libcitrus.a exports the citrus_* functions and nothing else, so an
    application may use names the library uses inside (client_new, ring_new,
    val_int, ...) and still link it statically: the example, linked with a
    file defining such names, runs without the shared library."""
    lib = os.path.join(BUILD, "libcitrus.a")
    nm = subprocess.run(["nm", "-g", "--defined-only", lib], capture_output=True, text=True,
                        check=True)
    names = [l.split()[-1] for l in nm.stdout.splitlines() if len(l.split()) == 3]
    assert names and all(n.startswith("citrus_") for n in names), names
    shared = subprocess.run(["nm", "-D", "--defined-only", os.path.join(BUILD, "libcitrus.so")],
                            capture_output=True, text=True, check=True)
    assert sorted(names) == sorted(l.split()[-1] for l in shared.stdout.splitlines()
                                   if " T " in l)
    clash = tmp_path / "clash.c"
    clash.write_text("int client_new(void) { return 1; }\n"
                     "int ring_new(void) { return 2; }\n"
                     "int val_int(void) { return 3; }\n")
    # libcitrus.a itself, its dependencies shared (citrus.pc's Requires.private)
    libs = subprocess.run(["pkg-config", "--libs", "jansson", "libcurl", "libcrypto",
                           "libmurmurhash", "libxxhash"], capture_output=True, text=True,
                          check=True).stdout.split() + ["-lpthread", "-lm"]
    sanitize = sanitizer_flags()
    exe = tmp_path / "tenant_rows_static"
    cc = subprocess.run(["cc", "-std=c11", "-Wall", "-Werror"] + sanitize + [
                         "-I", os.path.join(ROOT, "include"),
                         os.path.join(ROOT, "examples", "tenant_rows.c"), str(clash), lib,
                         "-o", str(exe)] + libs, capture_output=True, text=True)
    assert cc.returncode == 0, cc.stderr
    ldd = subprocess.run(["ldd", str(exe)], capture_output=True, text=True).stdout
    assert "libcitrus" not in ldd, ldd
    p = subprocess.run([str(exe)], env=example_env(citrus_shards), capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    check_example_output(citrus_shards, p.stdout)


def test_libcitrus_credentials(make_citrus):
    """The credential tests of the C program (citrus_options.token,
    token_cb, 401 and 403) against `citrus dev --auth api_key`."""
    dev = make_citrus(mode="dev", extra=["--auth", "api_key"])
    path = os.path.join(dev.data_dir, "admin.key")
    wait_until(lambda: os.path.exists(path) and open(path).read().endswith("\n"), 10,
               what="admin.key")
    run_c_suite(3, CITRUS_TEST_ENDPOINT=dev.url, CITRUS_TEST_TOKEN=open(path).read().strip())
