"""Secrets never shown, and the DSN rules (issue 13, items 5 and 6).

Each test is an attack of the issue: a password planted in shard DSNs (the
URL form and the key=value form with a quoted value) is looked for in the
answer of every GET route of the API and the router, for every role but
sm-admin with ?reveal=true (and a tenant reading its own /api/shard/{key},
the one place credentials are for), in the server's log and in /metrics;
the data directory's modes; the exec provisioner's child environment and
stderr; the libpq options a DSN may carry; the registration answer of an
unreachable database.
"""
import base64
import json
import os
import socket
import stat
import subprocess
import time
import urllib.parse

import requests

from conftest import CITRUS_BIN, shard_settled, wait_until
from test_auth import (ADMIN, ANON, API_MATRIX, OPER, READER, ROUTER_MATRIX, T_IN, T_OUT,
                       audit_rows, call, route_tables, secured)  # noqa: F401 (fixture)

PW_URL = "Url-S3cret-9f1"
PW_CI = "p@ss:w/rd?#1-Ci"
DSN_URL = f"postgresql://app:{PW_URL}@127.0.0.1:1/shop"
DSN_CI = f"host=127.0.0.1 port=1 dbname=shopci user=app password='{PW_CI}'"  # another database
# how the API answers DSN_CI: the URI form, every component percent-encoded
URI_CI = f"postgresql://app:{urllib.parse.quote(PW_CI, safe='')}@127.0.0.1:1/shopci"
# what the password may look like in an answer: as is, JSON- or URL-escaped
NEEDLES = (PW_URL, PW_CI, "S3cret-9f1", "w/rd?#1", "w\\/rd?#1", "rd%3F%231")

# The paths the GET routes are called with: ones that name the planted
# shards and their tenants, so each answer has the chance to show them.
GET_PATHS = {
    "/v1/kv/{key*}": ["/v1/kv/citrus/shards/pg-url", "/v1/kv/citrus/shards/?prefix=true",
                      "/v1/kv/app/x"],
    "/v1/watch/{prefix*}": ["/v1/watch/citrus/shards/?from_revision=1&timeout=1ms"],
    "/v1/snapshot": ["/v1/snapshot"],
    "/v1/cluster": ["/v1/cluster"],
    "/v1/shards": ["/v1/shards", "/v1/shards?state=active"],
    "/v1/shards/{id}": ["/v1/shards/pg-url", "/v1/shards/pg-ci"],
    "/v1/route/{key*}": ["/v1/route/acme:url", "/v1/route/acme:ci"],
    "/v1/tenants": ["/v1/tenants"],
    "/v1/tenants/{key}": ["/v1/tenants/acme:url", "/v1/tenants/acme:ci"],
    "/api/shard/{shardKey}": ["/api/shard/acme:url", "/api/shard/acme:ci"],
    "/api/shards/health": ["/api/shards/health"],
    "/v1/auth/keys": ["/v1/auth/keys"],
    "/v1/audit": ["/v1/audit?limit=1000"],
    "/v1/notifications": ["/v1/notifications?limit=1000"],
    "/v1/manifests/{id}": ["/v1/manifests/m1"],
    # the bus: the lifecycle events of the shards and pins planted (no DSN in them)
    "/v1/topics": ["/v1/topics"],
    "/v1/topics/{topic}/events": [f"/v1/topics/citrus.sm.events/events?partition={p}&limit=1000"
                                  for p in range(4)],
    "/v1/consumers": ["/v1/consumers"],
    "/v1/dlq/{topic}": ["/v1/dlq/citrus.sm.events"],
    "/v1/registrations": ["/v1/registrations?limit=1000"],
    "/v1/registrations/{id}": ["/v1/registrations/nope"],
    "/health/live": ["/health/live"],
    "/health/ready": ["/health/ready"],
    "/metrics": ["/metrics"],
}
# Raw KV reads under citrus/ are sm-admin's (or an explicit grant's):
# the catalog as stored, DSNs included (docs/security.md).
RAW_KV = ("/v1/kv/citrus/", "/v1/watch/citrus/")


def decoded(text):
    """text and every base64 string in it (KV values, snapshots and backup
    files carry their values base64-encoded), decoded."""
    out, stack = [text], []
    for doc in [text] + text.splitlines():  # a JSON answer, or JSON lines (a backup file)
        try:
            stack.append(json.loads(doc))
        except ValueError:
            pass
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            stack += v.values()
        elif isinstance(v, list):
            stack += v
        elif isinstance(v, str) and len(v) >= 8:
            try:
                out.append(base64.b64decode(v, validate=True).decode("utf-8", "replace"))
            except ValueError:
                pass
    return "\n".join(out)


def leaked(text):
    text = decoded(text)
    return [n for n in NEEDLES if n in text]


def plant(base, k):
    for sid, dsn, key in (("pg-url", DSN_URL, "acme:url"), ("pg-ci", DSN_CI, "acme:ci")):
        r = call(base, "POST", "/v1/shards?verify=false",
                 {"id": sid, "dsn": dsn, "replicas": [dsn.replace("shop", "shop2")]}, k[ADMIN])
        assert r.status_code == 201, r.text
        assert not leaked(r.text), r.text  # the registration answer shows none either
        r = call(base, "PUT", f"/v1/tenants/{key}", {"shard_id": sid}, k[OPER])
        assert r.status_code in (200, 201), r.text


def test_get_paths_cover_every_get_route():
    api, router = route_tables()
    assert {p for (m, p) in api if m == "GET"} == set(GET_PATHS)
    assert {p for (m, p) in router if m == "GET"} == {"/health/live", "/health/ready", "/metrics"}


def test_no_answer_shows_a_planted_password(secured):
    base, k = secured.url, secured.keys
    plant(base, k)
    # POSTs that read: a route, a txn get, a query on the pinned tenant
    # (its connection fails: the error must not quote the DSN)
    posts = [(base, "/v1/route", {"keys": ["acme:url", "acme:ci"]}),
             (base, "/v1/txn", {"success": [{"op": "get", "key": "citrus/shards/pg-url"}]}),
             (secured.router_url, "/v1/query", {"key": "acme:url", "sql": "SELECT 1"}),
             (secured.router_url, "/v1/tx",
              {"key": "acme:ci", "statements": [{"sql": "SELECT 1"}]})]
    wrong = []
    for who in (ANON, READER, T_IN, T_OUT, OPER, ADMIN):
        for pattern, paths in GET_PATHS.items():
            for path in paths:
                if who == ADMIN and path.startswith(RAW_KV):
                    continue
                if who in (T_IN, ADMIN) and path.startswith("/api/shard/"):
                    continue  # credentials for who needs them: checked below
                r = call(base, "GET", path, None, k[who])
                if leaked(r.text):
                    wrong.append(f"GET {path} as {who}: {r.status_code} {r.text[:200]}")
        for path in ("/health/live", "/health/ready", "/metrics"):
            r = call(secured.router_url, "GET", path, None, k[who])
            if leaked(r.text):
                wrong.append(f"router GET {path} as {who}")
        for url, path, body in posts:
            if who == ADMIN and path == "/v1/txn":
                continue
            r = call(url, "POST", path, body, k[who])
            if leaked(r.text):
                wrong.append(f"POST {path} as {who}: {r.status_code} {r.text[:200]}")
    assert not wrong, "\n".join(wrong)
    # the roles that are not sm-admin cannot read the raw records at all
    for who in (READER, T_IN, T_OUT, OPER):
        assert call(base, "GET", "/v1/kv/citrus/shards/pg-url", None, k[who]).status_code == 403
    # metrics as sm-admin, and the server's whole log
    assert not leaked(call(base, "GET", "/metrics", None, k[ADMIN]).text)
    for path in (secured.stdout_path, secured.stderr_path):
        assert not leaked(open(path, errors="replace").read()), path


def test_reveal_only_where_needed_and_audited(secured, tmp_path):
    base, k = secured.url, secured.keys
    plant(base, k)
    # sm-admin with ?reveal=true, each answer a credential.reveal row
    r = call(base, "GET", "/v1/shards/pg-url?reveal=true", None, k[ADMIN])
    assert r.status_code == 200 and r.json()["dsn"] == DSN_URL, r.text
    r = call(base, "GET", "/v1/shards?reveal=true", None, k[ADMIN])
    assert r.status_code == 200 and PW_URL in r.text and PW_CI in r.text, r.text
    # anyone else asking is refused
    for who in (READER, OPER, T_IN):
        r = call(base, "GET", "/v1/shards/pg-url?reveal=true", None, k[who])
        assert r.status_code == 403, r.text
        assert who == T_IN or "sm-admin" in r.json()["error"]["message"], r.text
    assert call(base, "GET", "/v1/shards?reveal=maybe", None, k[ADMIN]).status_code == 400
    # the tenant in scope gets its connection string, with the password
    r = call(base, "GET", "/api/shard/acme:ci", None, k[T_IN])
    assert r.status_code == 200 and r.json()["connectionString"] == URI_CI, r.text
    assert r.json()["connection"]["password"] == PW_CI, r.text
    rows = audit_rows(base, k[ADMIN], "&action=credential.reveal")
    seen = {(e["route"], e["principal"].split("/")[-1]) for e in rows}
    assert ("/v1/shards/{id}", "dev-admin") in seen and ("/v1/shards", "dev-admin") in seen
    assert ("/api/shard/{shardKey}", "acme-svc") in seen, seen
    # the snapshot: masked, unless revealed; `citrus backup` keeps them, 0600
    snap = call(base, "GET", "/v1/snapshot", None, k[ADMIN]).text
    assert not leaked(snap) and "***" in decoded(snap)
    full = call(base, "GET", "/v1/snapshot?reveal=true", None, k[ADMIN]).text
    assert PW_URL in decoded(full)
    out = tmp_path / "backup.json"
    r = subprocess.run([CITRUS_BIN, "backup", "--endpoint", base, "-o", str(out)],
                       capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, CITRUS_TOKEN=k[ADMIN]))
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert PW_URL in decoded(out.read_text())


def test_data_dir_and_files_are_private(make_citrus, tmp_path):
    d = tmp_path / "data"
    d.mkdir(mode=0o755)
    os.chmod(d, 0o755)
    old = d / "leftover.db"
    old.write_text("x")
    os.chmod(old, 0o644)
    c = make_citrus(shards=True, data_dir=d)
    # a write, so the WAL is there too
    assert requests.put(c.url + "/v1/kv/app/x", data=b"1", timeout=5).status_code == 200
    loose = []
    for root, dirs, files in os.walk(d):
        for name in dirs + files:
            p = os.path.join(root, name)
            mode = stat.S_IMODE(os.lstat(p).st_mode)
            if mode & 0o077:
                loose.append(f"{p}: {oct(mode)}")
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert not loose, loose
    names = {f for _, _, fs in os.walk(d) for f in fs}
    assert {"catalog.db", "records.db"} <= names and any(n.endswith(".db-wal") for n in names)
    assert any(n.startswith("shard-") for n in os.listdir(d / "shards")), names


ENV_DUMP = """#!/bin/sh
cat >/dev/null
env > "{out}"
printf '{{"dsn":"sqlite://{dir}/%s.db"}}' x
"""

FAILING = """#!/bin/sh
cat >/dev/null
echo "psql: connect postgresql://admin:{pw}@db.internal:5432/postgres failed" >&2
echo "PGPASSWORD={pw} api_token: {pw}-tok password='{pw} q'" >&2
exit 3
"""


def script(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    p.chmod(0o700)
    return str(p)


def test_exec_child_gets_only_allowed_environment(make_citrus, tmp_path):
    out = tmp_path / "env.txt"
    prov = script(tmp_path, "prov.sh", ENV_DUMP.format(out=out, dir=tmp_path))
    (tmp_path / "x.db").touch()
    env = {"CITRUS_PROVISIONER_POSTGRES_ADMIN_DSN": "postgresql://root:AdminPw1@h/postgres",
           "CITRUS_RECORDS_POSTGRES_DSN": "postgresql://rec:RecPw2@h/rec",
           "AWS_SECRET_ACCESS_KEY": "aws-Secret-3", "KEEP_ME": "kept", "LANG": "C.UTF-8"}
    c = make_citrus(mode="server", env=env, extra=[
        "--provisioner", "exec", "--provisioner-exec", prov,
        "--provisioner-exec-env", "KEEP_ME,FIXED=fixed-value,NOT_SET_ANYWHERE"])
    r = requests.post(c.url + "/v1/shards", json={"id": "x", "provision": {}}, timeout=10)
    assert r.status_code == 202, r.text
    wait_until(lambda: out.exists() and out.stat().st_size > 0, 10, what="the provisioner ran")
    got = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
    assert not [n for n in got if n.startswith("CITRUS_")], got
    assert "AWS_SECRET_ACCESS_KEY" not in got and "AdminPw1" not in out.read_text()
    assert got.get("KEEP_ME") == "kept" and got.get("FIXED") == "fixed-value"
    assert "PATH" in got and got.get("LANG") == "C.UTF-8"
    assert "NOT_SET_ANYWHERE" not in got
    extra = set(got) - {"PATH", "HOME", "LANG", "KEEP_ME", "FIXED"}
    assert extra <= {"PWD", "SHLVL", "_"}, extra  # what sh itself sets


def test_exec_stderr_is_redacted_before_it_is_stored(make_citrus, tmp_path):
    pw = "Hunter2-Zz"
    prov = script(tmp_path, "bad.sh", FAILING.format(pw=pw))
    c = make_citrus(mode="server", extra=["--provisioner", "exec", "--provisioner-exec", prov])
    r = requests.post(c.url + "/v1/shards", json={"id": "nope", "provision": {}}, timeout=10)
    assert r.status_code == 202, r.text
    s = shard_settled(c.url, "nope")
    assert s["state"] == "failed" and "exit 3" in s["error"], s
    assert "postgresql://admin:***@db.internal" in s["error"], s
    for where in (json.dumps(s), requests.get(c.url + "/v1/shards?reveal=true", timeout=5).text,
                  requests.get(c.url + "/api/shards/health", timeout=5).text,
                  requests.get(c.url + "/metrics", timeout=5).text,
                  open(c.stdout_path).read(), open(c.stderr_path).read()):
        assert pw not in where


def test_dsn_option_allow_list(make_citrus, tmp_path):
    c = make_citrus()
    reg = lambda dsn, sid="d": requests.post(  # noqa: E731
        c.url + "/v1/shards?verify=false", json={"id": sid, "dsn": dsn}, timeout=10)
    refused = {
        "host=127.0.0.1 dbname=x passfile=/etc/shadow": "'passfile' is not allowed",
        "postgresql://u@127.0.0.1/x?passfile=/etc/shadow": "'passfile' is not allowed",
        "host=127.0.0.1 service=prod": "'service' is not allowed",
        "host=127.0.0.1 servicefile=/etc/pg_service.conf": "'servicefile' is not allowed",
        "host=127.0.0.1 options='-c log_min_messages=debug5'": "'options' is not allowed",
        "host=/var/run/postgresql dbname=x": "Unix socket",
        "postgresql://%2Fvar%2Frun%2Fpostgresql/x": "Unix socket",
        "postgresql:///x": "names no host",
        "host=127.0.0.1 sslmode=require sslkey=/etc/ssl/private/k.pem": "shards.tls_dir",
    }
    for dsn, why in refused.items():
        r = reg(dsn)
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_argument", (dsn, r.text)
        assert why in r.json()["error"]["message"], (dsn, r.text)
    # replicas too
    r = requests.post(c.url + "/v1/shards?verify=false", timeout=10, json={
        "id": "rep", "dsn": "host=127.0.0.1 dbname=x",
        "replicas": ["host=127.0.0.1 dbname=x passfile=/etc/shadow"]})
    assert r.status_code == 400 and "passfile" in r.text, r.text
    accepted = ["host=127.0.0.1 port=5432 dbname=x user=u password=p sslmode=prefer "
                "application_name=a connect_timeout=3 target_session_attrs=any keepalives=1 "
                "keepalives_idle=5 keepalives_interval=5 keepalives_count=3",
                "postgresql://u:p@127.0.0.1:5432,127.0.0.2/y?sslmode=disable&connect_timeout=2"]
    for i, dsn in enumerate(accepted):
        r = reg(dsn, f"ok{i}")
        assert r.status_code == 201, (dsn, r.text)
    # nothing of the refused ones was kept
    ids = {s["id"] for s in requests.get(c.url + "/v1/shards", timeout=5).json()["shards"]}
    assert ids == {"ok0", "ok1"}, ids


def test_tls_dir_socket_dirs_and_allowed_hosts(make_citrus, tmp_path):
    tls = tmp_path / "tls"
    tls.mkdir()
    c = make_citrus(extra=["--shards-tls-dir", str(tls),
                           "--shards-socket-dirs", "/var/run/postgresql",
                           "--shards-allowed-hosts", "10.0.0.0/8,db.example.com,.corp.test"])
    reg = lambda dsn, sid: requests.post(  # noqa: E731
        c.url + "/v1/shards?verify=false", json={"id": sid, "dsn": dsn}, timeout=10)
    ok = [f"host=10.1.2.3 sslmode=verify-full sslrootcert={tls}/ca.pem sslcert={tls}/c.pem "
          f"sslkey={tls}/c.key",
          "host=/var/run/postgresql dbname=x",
          "postgresql://u@db.example.com/x", "host=pg1.corp.test dbname=x"]
    for i, dsn in enumerate(ok):
        assert reg(dsn, f"ok{i}").status_code == 201, dsn
    bad = {f"host=10.1.2.3 sslkey={tls}/../../etc/shadow": "under shards.tls_dir",
           "host=/tmp dbname=x": "Unix socket",
           "host=127.0.0.1 dbname=x": "'127.0.0.1' is not in shards.allowed_hosts",
           "host=169.254.169.254 dbname=x": "not in shards.allowed_hosts",
           "host=db.example.com hostaddr=127.0.0.1": "hostaddr '127.0.0.1'",
           "postgresql://u@evil.corp.test.attacker.io/x": "not in shards.allowed_hosts"}
    for dsn, why in bad.items():
        r = reg(dsn, "bad")
        assert r.status_code == 400 and why in r.json()["error"]["message"], (dsn, r.text)
    # a malformed list is a configuration error at start
    r = subprocess.run([CITRUS_BIN, "dev", "--data-dir", str(tmp_path / "d2"), "--listen",
                        "127.0.0.1:0", "--router-listen", "off", "--shards-allowed-hosts",
                        "10.0.0.0/33"], capture_output=True, text=True, timeout=20)
    assert r.returncode == 2 and "shards.allowed_hosts" in r.stderr, r.stderr
    # a DSN in the config obeys the rules too: said at start
    r = subprocess.run([CITRUS_BIN, "dev", "--data-dir", str(tmp_path / "d3"), "--listen",
                        "127.0.0.1:0", "--router-listen", "off", "--provisioner", "postgres",
                        "--provisioner-postgres-dsn",
                        "host=127.0.0.1 dbname=postgres passfile=/etc/shadow"],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode != 0 and "'passfile' is not allowed" in r.stderr, r.stderr


def test_exec_provisioner_output_follows_the_rules(make_citrus, tmp_path):
    prov = script(tmp_path, "p.sh", "#!/bin/sh\ncat >/dev/null\n"
                  "echo '{\"dsn\":\"host=127.0.0.1 dbname=x passfile=/etc/shadow\"}'\n")
    c = make_citrus(mode="server", extra=["--provisioner", "exec", "--provisioner-exec", prov])
    r = requests.post(c.url + "/v1/shards", json={"id": "p", "provision": {}}, timeout=10)
    assert r.status_code == 202, r.text
    s = shard_settled(c.url, "p")
    assert s["state"] == "failed" and "'passfile' is not allowed" in s["error"], s


def test_unreachable_does_not_tell_open_from_closed(secured):
    """Registration is sm-admin's (the roles below get 403 before any
    connection is tried: no scan through them); a closed port and an open
    port that does not speak PostgreSQL both answer `unreachable`."""
    base, k = secured.url, secured.keys
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    open_port = listener.getsockname()[1]
    try:
        for who in (READER, OPER, T_IN):
            for port in (closed_port, open_port):
                r = call(base, "POST", "/v1/shards",
                         {"id": "scan", "dsn": f"host=127.0.0.1 port={port} connect_timeout=1"},
                         k[who])
                assert r.status_code == 403, r.text
        codes = set()
        for port in (closed_port, open_port):
            t0 = time.monotonic()
            r = call(base, "POST", "/v1/shards",
                     {"id": "scan", "dsn": f"host=127.0.0.1 port={port} connect_timeout=1"},
                     k[ADMIN])
            codes.add((r.status_code, r.json()["error"]["code"]))
            assert time.monotonic() - t0 < 15
        assert len(codes) == 1 and codes.pop()[1] == "unreachable", codes
    finally:
        listener.close()
