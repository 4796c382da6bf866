"""Authentication, roles on every route, and the audit log (issue 12).

The matrix: every route of the API and the router (read from
src/api/routes.c, so a new route without a row here fails) x {anonymous,
reader, tenant in scope, tenant out of scope, sm-operator, sm-admin}, each
answer checked against the expectation written below from the role
definitions (docs/security.md), not from the route table.
"""
import json
import os
import re
import signal
import stat
import subprocess
import time

import pytest
import requests

from cluster import make_cluster  # noqa: F401 (fixture)
from conftest import CITRUS_BIN, wait_until
from pg import make_postgres  # noqa: F401 (fixture)

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")

ANON, READER, T_IN, T_OUT, OPER, ADMIN = "anon", "reader", "t_in", "t_out", "oper", "admin"
WHO = (ANON, READER, T_IN, T_OUT, OPER, ADMIN)
ALL = set(WHO) - {ANON}
READS = {READER, OPER, ADMIN}

# (method, pattern) -> (path, body, who may); the body is valid where the
# scope check needs to read it (tenant-body routes), so the handler gets
# that far. "Allowed" means neither 401 nor 403.
API_MATRIX = {
    ("GET", "/v1/kv/{key*}"): ("/v1/kv/app/x", None, READS),
    ("PUT", "/v1/kv/{key*}"): ("/v1/kv/app/x", b"v", {OPER, ADMIN}),
    ("DELETE", "/v1/kv/{key*}"): ("/v1/kv/app/nothing", None, {OPER, ADMIN}),
    ("POST", "/v1/txn"): ("/v1/txn", {"success": [{"op": "get", "key": "app/x"}]}, READS),
    ("GET", "/v1/watch/{prefix*}"): ("/v1/watch/app/?timeout=1ms", None, READS),
    ("POST", "/v1/leases"): ("/v1/leases", {"ttl": 5}, {OPER, ADMIN}),
    ("POST", "/v1/leases/{id}/keepalive"): ("/v1/leases/999999/keepalive", None, {OPER, ADMIN}),
    ("DELETE", "/v1/leases/{id}"): ("/v1/leases/999999", None, {ADMIN}),
    ("GET", "/v1/snapshot"): ("/v1/snapshot", None, {ADMIN}),
    ("POST", "/v1/maintenance/compact"): ("/v1/maintenance/compact", {}, {ADMIN}),
    ("POST", "/v1/maintenance/defrag"): ("/v1/maintenance/defrag", {}, {ADMIN}),
    ("GET", "/v1/cluster"): ("/v1/cluster", None, READS),
    ("POST", "/v1/shards"): ("/v1/shards", {}, {ADMIN}),
    ("GET", "/v1/shards"): ("/v1/shards", None, READS),
    ("GET", "/v1/shards/{id}"): ("/v1/shards/nope", None, READS),
    ("PATCH", "/v1/shards/{id}"): ("/v1/shards/nope", {"weight": 1}, {ADMIN}),
    ("DELETE", "/v1/shards/{id}"): ("/v1/shards/nope", None, {ADMIN}),
    ("POST", "/v1/shards/{id}/{action}"): ("/v1/shards/nope/drain", None, {OPER, ADMIN}),
    ("GET", "/v1/route/{key*}"): ("/v1/route/acme:s1", None, READS | {T_IN}),
    ("POST", "/v1/route"): ("/v1/route", {"keys": ["acme:s1"]}, READS | {T_IN}),
    ("GET", "/v1/tenants"): ("/v1/tenants", None, READS),
    ("GET", "/v1/tenants/{key}"): ("/v1/tenants/acme:s1", None, READS | {T_IN}),
    ("PUT", "/v1/tenants/{key}"): ("/v1/tenants/acme:s9", {}, {OPER, ADMIN}),
    ("DELETE", "/v1/tenants/{key}"): ("/v1/tenants/acme:nope", None, {OPER, ADMIN}),
    ("POST", "/api/register"): (
        "/api/register", {"businessId": "acme", "locationId": "s1", "businessType": "retail"},
        {T_IN, OPER, ADMIN}),
    ("POST", "/api/register/batch"): (
        "/api/register/batch",
        {"businessId": "acme", "locations": [{"locationId": "s2", "businessType": "retail"}]},
        {T_IN, OPER, ADMIN}),
    ("GET", "/api/shard/{shardKey}"): ("/api/shard/acme:s1", None, READS | {T_IN}),
    ("GET", "/api/shards/health"): ("/api/shards/health", None, READS),
    ("POST", "/v1/auth/keys"): ("/v1/auth/keys", {}, {ADMIN}),
    ("GET", "/v1/auth/keys"): ("/v1/auth/keys", None, {ADMIN}),
    ("DELETE", "/v1/auth/keys/{id}"): ("/v1/auth/keys/0000000000000000", None, {ADMIN}),
    ("GET", "/v1/audit"): ("/v1/audit", None, {ADMIN}),
    ("GET", "/v1/topics"): ("/v1/topics", None, READS),
    ("POST", "/v1/topics/{topic}/events"): (
        "/v1/topics/citrus.platform.events/events",
        {"specversion": "1.0", "id": "auth-1", "source": "/t", "type": "t.x"}, {OPER, ADMIN}),
    ("GET", "/v1/topics/{topic}/events"): (
        "/v1/topics/citrus.platform.events/events?partition=0", None, READS),
    ("GET", "/v1/consumers"): ("/v1/consumers", None, READS),
    ("GET", "/v1/dlq/{topic}"): ("/v1/dlq/citrus.platform.events", None, READS),
    ("POST", "/v1/dlq/{topic}/{id}/replay"): (
        "/v1/dlq/citrus.platform.events/0-0/replay", None, {OPER, ADMIN}),
    ("GET", "/v1/notifications"): ("/v1/notifications", None, READS),
    ("PUT", "/v1/manifests/{id}"): ("/v1/manifests/m1", {"tenant_key": "acme:s1"},
                                    {OPER, ADMIN}),
    ("GET", "/v1/manifests/{id}"): ("/v1/manifests/m1", None, READS),
    # tenants pass and see only their own registrations (another's id: 404)
    ("GET", "/v1/registrations"): ("/v1/registrations", None, READS | {T_IN, T_OUT}),
    ("GET", "/v1/registrations/{id}"): ("/v1/registrations/nope", None, READS | {T_IN, T_OUT}),
    ("POST", "/v1/registrations/{id}/retry"): ("/v1/registrations/nope/retry", None,
                                               {OPER, ADMIN}),
    ("POST", "/v1/businesses/{id}/register-shards"): ("/v1/businesses/acme/register-shards",
                                                      None, {OPER, ADMIN}),
    ("GET", "/health/live"): ("/health/live", None, set(WHO)),
    ("GET", "/health/ready"): ("/health/ready", None, set(WHO)),
    ("GET", "/metrics"): ("/metrics", None, READS),
}
# Anyone may call it; after the first time it is 403 for everyone (tested
# on its own below).
API_SPECIAL = {("POST", "/v1/auth/bootstrap")}

ROUTER_MATRIX = {
    ("POST", "/v1/query"): ("/v1/query", {"key": "acme:s1", "sql": "SELECT 1"},
                            {T_IN, OPER, ADMIN}),
    ("POST", "/v1/tx"): ("/v1/tx", {"key": "acme:s1", "statements": [{"sql": "SELECT 1"}]},
                         {T_IN, OPER, ADMIN}),
    ("GET", "/health/live"): ("/health/live", None, set(WHO)),
    ("GET", "/health/ready"): ("/health/ready", None, set(WHO)),
    ("GET", "/metrics"): ("/metrics", None, READS),
}


def route_tables():
    src = open(os.path.join(ROOT, "src", "api", "routes.c")).read()
    api, router = src.split("router_routes[]")
    pat = r'\{"([A-Z]+)",\s*"([^"]+)"'
    return set(re.findall(pat, api)), set(re.findall(pat, router))


def call(base, method, path, body, token=None, headers=None):
    h = dict(headers or {})
    if token:
        h["Authorization"] = f"Bearer {token}"
    if isinstance(body, (dict, list)):
        return requests.request(method, base + path, json=body, headers=h, timeout=10)
    return requests.request(method, base + path, data=body, headers=h, timeout=10)


def make_key(base, admin, name, roles, tenants=None, grants=None, expect=201):
    body = {"name": name, "roles": roles}
    if tenants is not None:
        body["tenants"] = tenants
    if grants is not None:
        body["grants"] = grants
    r = call(base, "POST", "/v1/auth/keys", body, admin)
    assert r.status_code == expect, r.text
    return r.json()


@pytest.fixture
def secured(make_citrus):
    """citrus dev --auth api_key with its SQLite shards, and a key per
    principal of the matrix."""
    c = make_citrus(shards=True, extra=["--auth", "api_key"])
    admin = open(os.path.join(c.data_dir, "admin.key")).read().strip()
    keys = {ANON: None, ADMIN: admin}
    keys[READER] = make_key(c.url, admin, "reader", ["reader"])["key"]
    keys[T_IN] = make_key(c.url, admin, "acme-svc", ["tenant"], ["acme:*"])["key"]
    keys[T_OUT] = make_key(c.url, admin, "globex-svc", ["tenant"], ["globex:*"])["key"]
    keys[OPER] = make_key(c.url, admin, "ops", ["sm-operator"])["key"]
    c.keys = keys
    return c


def check_matrix(base, matrix, keys):
    wrong = []
    for (method, pattern), (path, body, allowed) in sorted(matrix.items()):
        for who in WHO:
            r = call(base, method, path, body, keys[who])
            code = r.status_code
            if who in allowed:
                ok = code not in (401, 403)
            elif who == ANON:
                ok = code == 401 and r.headers.get("WWW-Authenticate", "").startswith("Bearer")
            else:
                ok = code == 403 and r.json()["error"]["code"] == "forbidden"
            if not ok:
                wrong.append(f"{method} {path} as {who}: {code} {r.text[:160]}")
    assert not wrong, "\n".join(wrong)


def test_matrix_covers_every_route():
    api, router = route_tables()
    assert api == set(API_MATRIX) | API_SPECIAL
    assert router == set(ROUTER_MATRIX)


def audit_rows(base, admin, query=""):
    rows, after = [], 0
    while True:
        page = call(base, "GET", f"/v1/audit?limit=1000&after={after}{query}", None,
                    admin).json()
        rows += page["entries"]
        if page["next_after"] is None:
            return rows
        after = page["next_after"]


def test_api_matrix(secured):
    check_matrix(secured.url, API_MATRIX, secured.keys)
    # every mutation route the matrix called as sm-admin left its row, with the
    # principal, the route, the status and a correlation id
    rows = audit_rows(secured.url, secured.keys[ADMIN])
    seen = {(e["method"], e["route"]) for e in rows
            if e["principal"].endswith("/dev-admin") and e["status"] not in (0, 401, 403)
            and e["correlation_id"] and not e["action"].startswith("auth.")}
    for (method, pattern) in API_MATRIX:
        if method != "GET" and pattern != "/v1/route":
            assert (method, pattern) in seen, (method, pattern, sorted(seen))
    assert ("GET", "/v1/snapshot") in seen


def test_router_matrix(secured):
    check_matrix(secured.router_url, ROUTER_MATRIX, secured.keys)
    # scatter: sm-operator and up, or a tenant whose scope is "*"
    q = {"scatter": True, "sql": "SELECT 1"}
    k = secured.keys
    assert call(secured.router_url, "POST", "/v1/query", q, k[T_IN]).status_code == 403
    assert call(secured.router_url, "POST", "/v1/query", q, k[OPER]).status_code == 200
    star = make_key(secured.url, k[ADMIN], "all-tenants", ["tenant"], ["*"])["key"]
    assert call(secured.router_url, "POST", "/v1/query", q, star).status_code == 200
    # a key outside the scope, by any of the body's spellings
    for body in ({"key": "globex:1", "sql": "SELECT 1"},
                 {"tenant": "globex:1", "sql": "SELECT 1"},
                 {"keys": ["acme:1", "globex:1"], "sql": "SELECT 1"}):
        r = call(secured.router_url, "POST", "/v1/query", body, k[T_IN])
        assert r.status_code == 403, (body, r.text)


def test_scopes_inside_bodies(secured):
    k, base = secured.keys, secured.url
    reg = {"businessId": "globex", "locationId": "s1", "businessType": "retail"}
    assert call(base, "POST", "/api/register", reg, k[T_IN]).status_code == 403
    batch = {"businessId": "globex", "locations": [{"locationId": "a", "businessType": "retail"}]}
    assert call(base, "POST", "/api/register/batch", batch, k[T_IN]).status_code == 403
    assert call(base, "POST", "/v1/route", {"keys": ["acme:1", "globex:1"]},
                k[T_IN]).status_code == 403
    # nothing was registered by the refused calls
    assert call(base, "GET", "/api/shard/globex:s1", None, k[ADMIN]).status_code == 404
    # retire needs sm-admin even though drain does not
    sid = call(base, "GET", "/v1/shards", None, k[ADMIN]).json()["shards"][0]["id"]
    r = call(base, "POST", f"/v1/shards/{sid}/retire", None, k[OPER])
    assert r.status_code == 403 and "sm-admin" in r.json()["error"]["message"]
    # KV grants: a reader key with a readwrite grant writes there, only there
    g = make_key(base, k[ADMIN], "billing", ["reader"],
                 grants=[{"prefix": "app/billing/", "access": "readwrite"}])["key"]
    assert call(base, "PUT", "/v1/kv/app/billing/a", b"1", g).status_code == 200
    assert call(base, "PUT", "/v1/kv/app/other", b"1", g).status_code == 403
    txn = {"success": [{"op": "put", "key": "app/billing/b", "value": "1"},
                       {"op": "put", "key": "app/zzz", "value": "1"}]}
    assert call(base, "POST", "/v1/txn", txn, g).status_code == 403
    assert call(base, "GET", "/v1/kv/app/zzz", None, k[ADMIN]).status_code == 404
    # the catalog's own keys: not through KV, not even for an operator
    assert call(base, "GET", "/v1/kv/citrus/shards/?prefix=true", None,
                k[OPER]).status_code == 403
    assert call(base, "DELETE", "/v1/kv/cit?prefix=true", None, k[OPER]).status_code == 403
    assert call(base, "GET", "/v1/watch/", None, k[READER]).status_code == 403
    txn = {"success": [{"op": "delete", "key": "citrus/", "prefix": True}]}
    assert call(base, "POST", "/v1/txn", txn, k[OPER]).status_code == 403
    assert call(base, "GET", "/v1/shards", None, k[ADMIN]).json()["count"] >= 1


def test_bad_credentials(secured):
    base = secured.url
    for h in ("Bearer WRONG", "Bearer ck_0000000000000000_" + "0" * 64, "Basic YTpi", "Bearer",
              "bearer " + secured.keys[ADMIN] + "x"):
        r = requests.get(base + "/v1/cluster", headers={"Authorization": h})
        assert r.status_code == 401, (h, r.text)
        assert "invalid_token" in r.headers.get("WWW-Authenticate", "") or h == "Bearer"
        assert secured.keys[ADMIN] not in r.text
    # the scheme is case-insensitive
    r = requests.get(base + "/v1/cluster", headers={"Authorization": "bearer " + secured.keys[ADMIN]})
    assert r.status_code == 200
    # health answers whatever the credentials
    r = requests.get(base + "/health/ready", headers={"Authorization": "Bearer WRONG"})
    assert r.status_code == 200 and r.json()["auth"] == "api_key"
    # a token over 8 KiB
    r = requests.get(base + "/v1/cluster", headers={"Authorization": "Bearer " + "a" * 9000})
    assert r.status_code in (401, 431)


def test_keys_lifecycle_and_secrets(secured):
    base, admin = secured.url, secured.keys[ADMIN]
    made = make_key(base, admin, "temp", ["sm-operator"], ["acme:*"])
    assert made["key"].startswith("ck_") and len(made["key"]) == 84
    listed = call(base, "GET", "/v1/auth/keys", None, admin).json()["keys"]
    assert any(x["id"] == made["id"] for x in listed)
    text = json.dumps(listed)
    for k in secured.keys.values():
        if k:
            assert k not in text and k[20:] not in text
    assert "hash" not in text
    # nor in the catalog as the snapshot shows it
    snap = call(base, "GET", "/v1/snapshot", None, admin).text
    assert made["key"][20:] not in snap
    assert call(base, "GET", "/v1/cluster", None, made["key"]).status_code == 200
    r = call(base, "DELETE", f"/v1/auth/keys/{made['id']}", None, admin)
    assert r.status_code == 200, r.text
    assert call(base, "GET", "/v1/cluster", None, made["key"]).status_code == 401
    assert call(base, "DELETE", f"/v1/auth/keys/{made['id']}", None, admin).status_code == 404
    # bad bodies
    for body in ({"name": "x"}, {"name": "x", "roles": ["root"]}, {"name": "x", "roles": ["tenant"]},
                 {"name": "x", "roles": ["reader"], "extra": 1}, [], {"name": "", "roles": ["reader"]}):
        r = call(base, "POST", "/v1/auth/keys", body, admin)
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_argument", r.text
    r = requests.post(base + "/v1/auth/keys", data="{", headers={
        "Authorization": f"Bearer {admin}", "Content-Type": "application/json"})
    assert r.status_code == 400
    # bootstrap: done (by citrus dev itself): 403 for everyone, with or without credentials
    for who in (None, admin):
        r = call(base, "POST", "/v1/auth/bootstrap", None, who)
        assert r.status_code == 403 and "bootstrapped" in r.json()["error"]["message"]


def test_dsn_passwords_only_for_admin_and_own_tenant(secured):
    base, k = secured.url, secured.keys
    dsn = "postgresql://app:s3cret-pw@127.0.0.1:1/shop"
    r = call(base, "POST", "/v1/shards?verify=false", {"id": "pgshard", "dsn": dsn}, k[ADMIN])
    assert r.status_code in (201, 202), r.text
    call(base, "PUT", "/v1/tenants/acme:pinned", {"shard_id": "pgshard"}, k[OPER])
    for who in (READER, OPER, T_OUT):
        for path in ("/v1/shards", "/v1/shards/pgshard", "/v1/route/acme:pinned",
                     "/api/shard/acme:pinned"):
            r = call(base, "GET", path, None, k[who])
            assert "s3cret-pw" not in r.text, (who, path, r.text)
    assert "s3cret-pw" not in call(base, "GET", "/v1/shards/pgshard", None, k[ADMIN]).text
    assert "s3cret-pw" in call(base, "GET", "/v1/shards/pgshard?reveal=true", None, k[ADMIN]).text
    r = call(base, "GET", "/api/shard/acme:pinned", None, k[T_IN])
    assert r.status_code == 200 and "s3cret-pw" in r.json()["connectionString"], r.text
    rows = call(base, "GET", "/v1/audit?action=credential.reveal", None, k[ADMIN]).json()
    principals = {e["principal"] for e in rows["entries"]}
    assert any(p.endswith("/acme-svc") for p in principals), rows
    assert any(p.endswith("/dev-admin") for p in principals), rows


def test_audit_rows(secured):
    base, k = secured.url, secured.keys
    hdr = {"X-Correlation-Id": "audit-test-1"}
    assert call(base, "PUT", "/v1/kv/app/audited", b"1", k[OPER], hdr).status_code == 200
    call(base, "DELETE", "/v1/kv/app/audited", None, k[OPER])
    call(base, "POST", "/v1/txn", {"success": [{"op": "put", "key": "app/t", "value": "x"}]},
         k[OPER])
    lease = call(base, "POST", "/v1/leases", {"ttl": 30}, k[OPER]).json()["id"]
    call(base, "DELETE", f"/v1/leases/{lease}", None, k[ADMIN])
    call(base, "POST", "/api/register",
         {"businessId": "acme", "locationId": "a1", "businessType": "retail"}, k[T_IN])
    call(base, "PUT", "/v1/tenants/acme:a2", {}, k[OPER])
    made = make_key(base, k[ADMIN], "short", ["reader"])
    call(base, "DELETE", f"/v1/auth/keys/{made['id']}", None, k[ADMIN])
    call(base, "PUT", "/v1/kv/app/denied", b"1", k[READER])
    call(base, "GET", "/v1/cluster", None, None)
    rows = audit_rows(base, k[ADMIN])
    # pages of 50 give the same rows, once each
    small, after = [], 0
    while True:
        page = call(base, "GET", f"/v1/audit?limit=50&after={after}", None, k[ADMIN]).json()
        small += page["entries"]
        if page["next_after"] is None:
            break
        after = page["next_after"]
    assert [e["id"] for e in small] == [e["id"] for e in rows[:len(small)]]
    assert len(small) >= len(rows) - 5  # rows of the paging itself may follow
    actions = {(e["action"], e["principal"].split("/")[-1]) for e in rows}
    for want in (("kv.put", "ops"), ("kv.delete", "ops"), ("kv.txn", "ops"),
                 ("lease.grant", "ops"), ("lease.revoke", "dev-admin"),
                 ("tenant.register", "acme-svc"), ("tenant.pin", "ops"),
                 ("key.create", "dev-admin"), ("key.revoke", "dev-admin"),
                 ("auth.forbidden", "reader"), ("auth.unauthenticated", "anonymous")):
        assert want in actions, (want, sorted(actions))
    put = [e for e in rows if e["correlation_id"] == "audit-test-1"]
    assert len(put) == 1
    assert put[0]["status"] == 200 and put[0]["target"] == "app/audited"
    assert put[0]["auth_method"] == "api_key" and put[0]["roles"] == "sm-operator"
    assert put[0]["peer"].startswith("127.0.0.1:")
    denied = [e for e in rows if e["action"] == "auth.forbidden" and e["target"] == "app/denied"]
    assert denied and denied[0]["status"] == 403
    # filters
    f = call(base, "GET", "/v1/audit?action=kv.*&principal=" + put[0]["principal"], None,
             k[ADMIN]).json()["entries"]
    assert f and all(e["action"].startswith("kv.") for e in f)
    assert call(base, "GET", "/v1/audit?limit=0", None, k[ADMIN]).status_code == 400
    assert call(base, "GET", "/v1/audit?since=yesterday", None, k[ADMIN]).status_code == 400
    assert call(base, "GET", "/v1/audit?after=-1", None, k[ADMIN]).status_code == 400
    # append-only: no route changes or deletes a row
    for method in ("PUT", "DELETE", "POST", "PATCH"):
        assert call(base, method, "/v1/audit", {}, k[ADMIN]).status_code == 405
    # and the rows are not catalog keys that KV could reach
    snap = call(base, "GET", "/v1/snapshot", None, k[ADMIN]).text
    assert "audit-test-1" not in snap


def test_audit_fail_closed(make_citrus, make_postgres):
    pg = make_postgres()
    c = make_citrus(mode="server", extra=["--auth", "api_key", "--records-backend", "postgres",
                                          "--records-postgres-dsn", pg.admin_dsn])
    admin = requests.post(c.url + "/v1/auth/bootstrap").json()["key"]
    assert call(c.url, "PUT", "/v1/kv/app/before", b"1", admin).status_code == 200
    pg.stop()
    r = call(c.url, "PUT", "/v1/kv/app/during", b"1", admin)
    assert r.status_code == 503 and r.json()["error"]["code"] == "audit_unavailable", r.text
    assert call(c.url, "GET", "/v1/kv/app/during", None, admin).status_code == 404
    # a publish too (its row's answer resumes it on the work pool): refused,
    # nothing on the topic
    ev = {"specversion": "1.0", "id": "during", "source": "/t", "type": "t"}
    r = call(c.url, "POST", "/v1/topics/citrus.platform.events/events", ev, admin)
    assert r.status_code == 503 and r.json()["error"]["code"] == "audit_unavailable", r.text
    topics = call(c.url, "GET", "/v1/topics", None, admin).json()["topics"]
    [t] = [t for t in topics if t["name"] == "citrus.platform.events"]
    assert t["messages"] == 0
    assert pg.admin_dsn not in c.stderr()


def test_audit_fail_open(make_citrus, make_postgres):
    pg = make_postgres()
    c = make_citrus(mode="server", extra=["--auth", "api_key", "--records-backend", "postgres",
                                          "--records-postgres-dsn", pg.admin_dsn,
                                          "--audit-fail-open", "true"])
    admin = requests.post(c.url + "/v1/auth/bootstrap").json()["key"]
    pg.stop()
    assert call(c.url, "PUT", "/v1/kv/app/during", b"1", admin).status_code == 200
    assert any(l.get("msg", "").startswith("audit row not written; going on")
               for l in c.log_lines())


def run(*args, timeout=20):
    return subprocess.run([CITRUS_BIN, *args], capture_output=True, text=True, timeout=timeout)


def test_modes_a_command_may_run_with(tmp_path, make_citrus):
    # citrus server: no mode, or none without allow_none, refuses to start
    for extra in ([], ["--auth", "none"]):
        r = run("server", "--data-dir", str(tmp_path / "s"), "--listen", "127.0.0.1:0", *extra)
        assert r.returncode == 2, r.stderr
        assert "auth" in r.stderr
    # citrus dev: none only on loopback
    r = run("dev", "--data-dir", str(tmp_path / "d"), "--listen", "0.0.0.0:0",
            "--router-listen", "off")
    assert r.returncode == 2 and "loopback" in r.stderr
    # the auth section is validated like any other
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"auth": {"bogus_field": 1}}))
    r = run("dev", "--config", str(cfg))
    assert r.returncode == 2 and "auth.bogus_field" in r.stderr
    for bad in ({"auth": {"modes": ["kerberos"]}}, {"auth": {"modes": ["none", "api_key"]}},
                {"auth": {"modes": ["trusted_headers"]}},
                {"auth": {"modes": ["jwt"]}},
                {"auth": {"jwt": {"role_grants": [{"role": "x", "grants": [{"prefix": "a/"}]}]}}},
                {"auth": {"jwt": {"role_grants": [{"role": "", "grants": []}]}}},
                {"auth": {"jwt": {"role_grants": {"x": []}}}},
                {"auth": {"allow_none": "yes"}}):
        cfg.write_text(json.dumps(bad))
        r = run("dev", "--config", str(cfg), "--data-dir", str(tmp_path / "d2"),
                "--listen", "127.0.0.1:0", "--router-listen", "off")
        assert r.returncode == 2, (bad, r.stderr)
    # allowed explicitly: it starts, and says so
    c = make_citrus(mode="server", extra=["--auth", "none", "--auth-allow-none", "true"])
    assert requests.get(c.url + "/v1/cluster").status_code == 200
    assert any("every request is allowed" in l.get("msg", "") for l in c.log_lines())
    assert requests.get(c.url + "/health/ready").json()["auth"] == "none"


def test_dev_default_and_admin_key_file(make_citrus):
    c = make_citrus()
    assert requests.get(c.url + "/v1/cluster").status_code == 200
    assert requests.get(c.url + "/health/ready").json()["auth"] == "none"
    assert "auth     none" in c.stderr()

    s = make_citrus(extra=["--auth", "api_key"])
    path = os.path.join(s.data_dir, "admin.key")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    key = open(path).read().strip()
    assert path in s.stderr() and key not in s.stderr() and key not in open(s.stdout_path).read()
    assert call(s.url, "GET", "/v1/auth/keys", None, key).status_code == 200
    s.stop()
    s.start()
    assert open(path).read().strip() == key  # not made again
    assert call(s.url, "GET", "/v1/auth/keys", None, key).status_code == 200
    assert requests.get(s.url + "/v1/cluster").status_code == 401
    assert requests.get(s.url + "/metrics").status_code == 401
    m = make_citrus(extra=["--auth", "api_key", "--metrics-anonymous", "true"])
    assert requests.get(m.url + "/metrics").status_code == 200
    assert requests.get(m.url + "/v1/cluster").status_code == 401


def test_trusted_headers(make_citrus):
    c = make_citrus(mode="server", extra=["--auth", "trusted_headers",
                                          "--trusted-proxies", "127.0.0.0/8"])
    h = {"X-User": "alice", "X-Roles": "sm-operator"}
    assert requests.put(c.url + "/v1/kv/app/h", data=b"1", headers=h).status_code == 200
    h["X-Roles"] = "reader"
    assert requests.put(c.url + "/v1/kv/app/h", data=b"1", headers=h).status_code == 403
    assert requests.get(c.url + "/v1/kv/app/h").status_code == 401
    # from a peer outside the proxies the headers are ignored
    d = make_citrus(mode="server", extra=["--auth", "trusted_headers",
                                          "--trusted-proxies", "10.0.0.0/8"])
    h = {"X-User": "mallory", "X-Roles": "sm-admin"}
    assert requests.get(d.url + "/v1/snapshot", headers=h).status_code == 401


def test_revoked_key_stops_on_every_node_within_a_second(make_cluster):
    cl, _ = make_cluster(citrus_extra=["--auth", "api_key"])
    n1, n2, n3 = cl.nodes
    admin = requests.post(n1.url + "/v1/auth/bootstrap").json()["key"]
    assert requests.post(n2.url + "/v1/auth/bootstrap").status_code == 403
    made = make_key(n1.url, admin, "roaming", ["reader"])
    for n in (n2, n3):  # made on n1: the others learn it through the watch
        wait_until(lambda: call(n.url, "GET", "/v1/cluster", None, made["key"]).status_code == 200,
                   5, what="the key to reach every node")
    t0 = time.monotonic()
    assert call(n1.url, "DELETE", f"/v1/auth/keys/{made['id']}", None, admin).status_code == 200
    for n in (n1, n2, n3):
        wait_until(lambda: call(n.url, "GET", "/v1/cluster", None, made["key"]).status_code == 401,
                   2, interval=0.01, what="the revocation")
    assert time.monotonic() - t0 < 1.0


def test_openapi_and_security_doc_name_each_route_role():
    import yaml
    spec = yaml.safe_load(open(os.path.join(ROOT, "docs", "openapi.yaml")))
    src = open(os.path.join(ROOT, "src", "api", "routes.c")).read()
    consts = {"ADMIN": "sm-admin", "OPERATOR": "sm-operator", "READER": "reader", "NULL": None}
    table = {}
    for m, p, role in re.findall(
            r'\{"([A-Z]+)",\s*"([^"]+)",\s*\w+,\s*ROUTE_BODY_\w+,\s*(\w+)', src):
        table[(m.lower(), re.sub(r"\{(\w+)\*\}", r"{\1}", p))] = consts[role]
    doc = open(os.path.join(ROOT, "docs", "security.md")).read()
    rows = set(re.findall(r"^\| `([A-Z]+) ([^`]+)` \| ([a-z-]+) \|", doc, re.M))
    for (m, p), role in table.items():
        op = spec["paths"][p][m]
        assert op["x-citrus-role"] == (role or "anonymous"), (m, p)
        if role:
            assert "401" in op["responses"] and "403" in op["responses"], (m, p)
        assert (m.upper(), p, role or "anonymous") in rows, (m, p, role)


def b64url(b):
    import base64
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


class Issuer:
    """An RS256 signing key made with openssl, its JWKS file, and tokens."""

    def __init__(self, d, kid="k1"):
        self.dir, self.kid = str(d), kid
        os.makedirs(self.dir, exist_ok=True)
        self.pem = os.path.join(self.dir, f"{kid}.pem")
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                        "rsa_keygen_bits:2048", "-out", self.pem], check=True,
                       capture_output=True)
        mod = subprocess.run(["openssl", "rsa", "-in", self.pem, "-noout", "-modulus"],
                             check=True, capture_output=True, text=True).stdout
        self.jwk = {"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
                    "n": b64url(bytes.fromhex(mod.strip().split("=")[1])), "e": "AQAB"}

    def token(self, claims, header=None, sign=True):
        h = {"alg": "RS256", "typ": "JWT", "kid": self.kid}
        h.update(header or {})
        signing = b64url(json.dumps(h).encode()) + "." + b64url(json.dumps(claims).encode())
        if not sign:
            return signing + "."
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", self.pem],
                             input=signing.encode(), check=True, capture_output=True).stdout
        return signing + "." + b64url(sig)


def test_jwt_mode(tmp_path, make_citrus):
    iss = Issuer(tmp_path / "iss")
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [iss.jwk]}))
    c = make_citrus(mode="server", extra=[
        "--auth", "api_key,jwt", "--jwt-issuer", "https://idp.example", "--jwt-audience",
        "citrus", "--jwt-jwks-file", str(jwks), "--jwt-clock-skew", "5", "--jwt-role-grants",
        json.dumps([{"role": "billing-app", "grants": [
            {"prefix": "app/billing/", "access": "readwrite"},
            {"prefix": "app/public/", "access": "read"}]}])])
    now = int(time.time())
    base = {"iss": "https://idp.example", "aud": "citrus", "sub": "svc-1", "exp": now + 600}

    def tok(**kw):
        claims = dict(base)
        claims.update(kw)
        return iss.token({k: v for k, v in claims.items() if v is not None})

    op = tok(roles=["sm-operator"])
    assert call(c.url, "PUT", "/v1/kv/app/j", b"1", op).status_code == 200
    rd = tok(roles=["reader"], sub="viewer")
    assert call(c.url, "GET", "/v1/kv/app/j", None, rd).status_code == 200
    assert call(c.url, "PUT", "/v1/kv/app/j", b"2", rd).status_code == 403
    # KV grants of a JWT role (as etcd's role permissions)
    bill = tok(roles=["billing-app"], sub="billing")
    assert call(c.url, "PUT", "/v1/kv/app/billing/1", b"1", bill).status_code == 200
    assert call(c.url, "GET", "/v1/kv/app/public/x", None, bill).status_code == 404  # allowed
    assert call(c.url, "PUT", "/v1/kv/app/public/x", b"1", bill).status_code == 403
    assert call(c.url, "GET", "/v1/kv/app/j", None, bill).status_code == 403
    # Azure AD style: roles as app roles, tenants from their own claim
    tn = tok(roles=["tenant"], tenants=["acme:*"], sub="acme-svc")
    assert call(c.url, "GET", "/v1/tenants/acme:1", None, tn).status_code == 404  # allowed
    assert call(c.url, "GET", "/v1/tenants/globex:1", None, tn).status_code == 403
    refused = {
        "expired": tok(roles=["sm-operator"], exp=now - 60),
        "nbf in the future": tok(roles=["sm-operator"], nbf=now + 600),
        "wrong iss": tok(roles=["sm-operator"], iss="https://evil.example"),
        "wrong aud": tok(roles=["sm-operator"], aud="other"),
        "no roles claim": tok(),
        "alg none": iss.token(dict(base, roles=["sm-admin"]), {"alg": "none"}, sign=False),
        "unknown kid": iss.token(dict(base, roles=["sm-admin"]), {"kid": "k9"}),
        "tampered": op[:op.index(".") + 5] + ("A" if op[op.index(".") + 5] != "A" else "B")
                    + op[op.index(".") + 6:],
        "over 8 KiB": tok(roles=["sm-operator"], pad="x" * 9000),
    }
    for why, t in refused.items():
        r = call(c.url, "GET", "/v1/cluster", None, t)
        assert r.status_code in (401, 431), (why, r.status_code, r.text)
        assert t not in r.text
    # another issuer's key, same kid: refused
    other = Issuer(tmp_path / "other")
    r = call(c.url, "GET", "/v1/cluster", None, other.token(dict(base, roles=["sm-admin"])))
    assert r.status_code == 401
    # HS256 "signed" with the RSA public key: refused
    import hashlib
    import hmac
    h = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
    p = b64url(json.dumps(dict(base, roles=["sm-admin"])).encode())
    pub = subprocess.run(["openssl", "rsa", "-in", iss.pem, "-pubout"], check=True,
                         capture_output=True).stdout
    forged = h + "." + p + "." + b64url(hmac.new(pub, (h + "." + p).encode(),
                                                 hashlib.sha256).digest())
    assert call(c.url, "GET", "/v1/cluster", None, forged).status_code == 401
    # the audit log names the token's subject and the method
    admin = requests.post(c.url + "/v1/auth/bootstrap").json()["key"]
    rows = call(c.url, "GET", "/v1/audit?action=kv.put", None, admin).json()["entries"]
    assert any(e["principal"] == "svc-1" and e["auth_method"] == "jwt" for e in rows), rows


def test_audit_retention(make_citrus):
    import sqlite3
    c = make_citrus(extra=["--audit-retention-days", "30"])
    requests.put(c.url + "/v1/kv/app/r", data=b"1")
    c.stop()
    db = sqlite3.connect(os.path.join(c.data_dir, "records.db"))
    table = "citrus_audit"
    old_ms = int((time.time() - 31 * 86400) * 1000)
    db.execute(f"UPDATE {table} SET time_ms = ? WHERE action = 'kv.put'", (old_ms,))
    db.execute(f"INSERT INTO {table} (time_ms, principal, roles, auth_method, peer, method, "
               "route, action, target, status, correlation_id) "
               "VALUES (?, 'x', '', 'none', '', 'PUT', '/', 'kv.put', 'fresh', 200, 'c')",
               (int(time.time() * 1000),))
    db.commit()
    db.close()
    c.start()
    rows = requests.get(c.url + "/v1/audit?action=kv.put").json()["entries"]
    assert [e["target"] for e in rows] == ["fresh"], rows
