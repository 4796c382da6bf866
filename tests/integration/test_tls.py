"""TLS everywhere (issue 12, item 4) and the mtls auth mode.

HTTPS on the API and router listeners (server.tls.*, router.tls.*), a
client CA that makes the handshake require and verify a client
certificate, certificate subjects mapped to users and roles
(auth.mtls.subjects), certificates reloaded on SIGHUP without dropping
connections, TLS to etcd (catalog.etcd.tls.*) and to PostgreSQL shards
(sslmode=verify-full in the DSN). Certificates are made per test with
openssl (pki.py).

mTLS refusals happen in the TLS handshake: no certificate, one from another
CA, an expired one never reach a handler (the client sees the connection
fail). A verified certificate whose subject no mapping names is a request
without credentials: 401 on routes that need a role (it is nobody we know;
403 is for someone known who lacks the role).
"""
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time

import pytest
import requests

from cluster import EtcdMember, free_ports
from conftest import run_cli, wait_until
from pg import make_postgres  # noqa: F401 (fixture)
from pki import CA
from test_shards_postgres import psql


@pytest.fixture
def pki(tmp_path):
    """A CA, another CA, a server certificate for 127.0.0.1, client
    certificates: alice (mapped, reader), ops (mapped through a DNS SAN,
    sm-operator), mallory (verified, not mapped), one from the other CA and
    an expired one."""
    ca = CA(tmp_path, "ca")
    other = CA(tmp_path, "other")

    class P:
        pass
    p = P()
    p.ca, p.other = ca, other
    p.srv = ca.issue("srv", "127.0.0.1", sans=["IP:127.0.0.1", "DNS:localhost"], server=True)
    p.alice = ca.issue("alice", "alice", client=True)
    p.ops = ca.issue("ops", "some-host", sans=["DNS:ops.example"], client=True)
    p.mallory = ca.issue("mallory", "mallory", client=True)
    p.foreign = other.issue("foreign", "alice", client=True)
    p.expired = ca.issue("expired", "alice", client=True, expired=True)
    return p


SUBJECTS = [{"subject": "alice", "user": "alice", "roles": ["reader"]},
            {"subject": "ops.example", "user": "ops", "roles": ["sm-operator"]}]


def tls_args(p, client_ca=True):
    a = ["--tls-cert-file", p.srv.cert, "--tls-key-file", p.srv.key]
    return a + (["--tls-client-ca-file", p.ca.cert] if client_ca else [])


def https_citrus(make_citrus, p, extra=(), client=None, **kw):
    c = make_citrus(extra=list(extra), start=False, **kw)
    c.scheme, c.verify = "https", p.ca.cert
    c.cert = (client.cert, client.key) if client else None
    return c.start()


def serial_of(port, ca, client=None):
    """The serial of the certificate a new connection to port is shown."""
    ctx = ssl.create_default_context(cafile=ca)
    if client:
        ctx.load_cert_chain(client.cert, client.key)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            return int(s.getpeercert()["serialNumber"], 16)


def refused(url, ca, cert):
    """The request fails at the TLS layer (no HTTP answer at all)."""
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(url, verify=ca, cert=cert, timeout=5)


def test_https_api(make_citrus, pki):
    c = https_citrus(make_citrus, pki, tls_args(pki, client_ca=False))
    r = requests.put(c.url + "/v1/kv/a", data=b"1", verify=pki.ca.cert, timeout=5)
    assert r.status_code == 200, r.text
    assert requests.get(c.url + "/v1/kv/a", verify=pki.ca.cert, timeout=5).status_code == 200
    assert f"https://127.0.0.1:{c.port}/v1/kv/" in c.stderr()
    # the node registers its https URL in its session
    def registered():
        j = requests.get(c.url + "/v1/cluster", verify=pki.ca.cert, timeout=5).json()
        return json.dumps(j["nodes"]) if j.get("nodes") else None
    nodes = wait_until(registered, 10, what="the node's registration")
    assert f'https://127.0.0.1:{c.port}' in nodes, nodes
    # plain HTTP to the HTTPS port gets no HTTP answer
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://127.0.0.1:{c.port}/health/live", timeout=5)
    # a client that does not trust the CA refuses the server
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(c.url + "/health/live", timeout=5)
    # without a client CA, a client certificate is neither asked for nor needed
    assert requests.get(c.url + "/health/live", verify=pki.ca.cert,
                        cert=(pki.foreign.cert, pki.foreign.key), timeout=5).status_code == 200


def test_mtls_mode(make_citrus, pki):
    c = https_citrus(make_citrus, pki, tls_args(pki) + [
        "--auth", "mtls", "--mtls-subjects", json.dumps(SUBJECTS)], client=pki.alice)
    ca = pki.ca.cert
    alice = (pki.alice.cert, pki.alice.key)
    # a mapped subject (CN) gets its roles: reader reads, may not write
    r = requests.get(c.url + "/v1/kv/x", verify=ca, cert=alice, timeout=5)
    assert r.status_code == 404, r.text
    r = requests.put(c.url + "/v1/kv/x", data=b"1", verify=ca, cert=alice, timeout=5)
    assert r.status_code == 403 and "alice" in r.json()["error"]["message"], r.text
    # a subject mapped through a DNS SAN: sm-operator writes
    ops = (pki.ops.cert, pki.ops.key)
    r = requests.put(c.url + "/v1/kv/x", data=b"1", verify=ca, cert=ops, timeout=5)
    assert r.status_code == 200, r.text
    # verified but not mapped: nobody we know, 401
    r = requests.get(c.url + "/v1/kv/x", verify=ca, cert=(pki.mallory.cert, pki.mallory.key),
                     timeout=5)
    assert r.status_code == 401, r.text
    # refused in the handshake: no certificate, another CA's, an expired one
    refused(c.url + "/v1/kv/x", ca, None)
    refused(c.url + "/v1/kv/x", ca, (pki.foreign.cert, pki.foreign.key))
    refused(c.url + "/v1/kv/x", ca, (pki.expired.cert, pki.expired.key))
    reasons = [ln["fields"]["reason"] for ln in c.log_lines()
               if ln.get("msg") == "client certificate refused"]
    assert any("issuer is unknown" in r for r in reasons), reasons
    assert any("expired" in r for r in reasons), reasons
    # the keep-alive connection of a good client goes on after all that
    with requests.Session() as s:  # (verify per request: the environment's bundle wins over
        s.cert = alice             # a session's verify)
        assert all(s.get(c.url + "/v1/kv/x", verify=ca, timeout=5).status_code == 200
                   for _ in range(3))


def test_tls_config_errors(make_citrus, pki, tmp_path):
    base = ["server", "--data-dir", str(tmp_path / "d"), "--listen", "127.0.0.1:0"]
    subj = ["--mtls-subjects", json.dumps(SUBJECTS)]
    cases = [
        (["--auth", "mtls"] + subj + tls_args(pki, client_ca=False),
         "server.tls.client_ca_file"),
        (["--auth", "mtls"] + tls_args(pki), "auth.mtls.subjects"),
        (["--auth", "mtls"] + tls_args(pki) + ["--mtls-subjects", json.dumps(
            [{"subject": "a", "user": "a", "roles": ["root"]}])], "auth.mtls.subjects[0].roles[0]"),
        (["--auth", "mtls"] + tls_args(pki) + ["--mtls-subjects", json.dumps(
            [{"subject": "a", "user": "a", "roles": [], "scopes": []}])], "auth.mtls.subjects[0]"),
        (["--auth", "mtls"] + tls_args(pki) + ["--mtls-subjects", json.dumps(
            [{"subject": "a" * 256, "user": "a", "roles": []}])], "auth.mtls.subjects[0]"),
        (["--tls-key-file", pki.srv.key], "server.tls.cert_file"),
        (["--tls-client-ca-file", pki.ca.cert], "server.tls.client_ca_file"),
        (["--router-tls-cert-file", pki.srv.cert], "router.tls.key_file"),
        (["--etcd-cert-file", pki.alice.cert], "catalog.etcd.tls.key_file"),
        # files: missing, not a certificate, a key that is not the certificate's
        (["--tls-cert-file", str(tmp_path / "nope.pem"), "--tls-key-file", pki.srv.key],
         "nope.pem"),
        (["--tls-cert-file", pki.srv.key, "--tls-key-file", pki.srv.key], "not a PEM certificate"),
        (["--tls-cert-file", pki.srv.cert, "--tls-key-file", pki.alice.key],
         "not the key of server.tls.cert_file"),
        (tls_args(pki, client_ca=False) + ["--tls-client-ca-file", pki.srv.key],
         "server.tls.client_ca_file"),
    ]
    for args, needle in cases:
        extra = [] if "--auth" in args else ["--auth", "none", "--auth-allow-none", "true"]
        r = run_cli(*(base + args + extra), timeout=20)
        assert r.returncode == 2 and needle in r.stderr, (args, r.returncode, r.stderr)
        # never a key's contents in an error
        assert "PRIVATE KEY" not in r.stderr and "BEGIN" not in r.stderr, r.stderr
    # the same settings in a config file
    cfg = tmp_path / "citrus.json"
    cfg.write_text(json.dumps({"server": {"tls": {"cert_file": pki.srv.cert,
                                                  "key_file": pki.srv.key,
                                                  "client_ca_file": pki.ca.cert}},
                               "auth": {"modes": ["mtls"],
                                        "mtls": {"subjects": SUBJECTS}}}))
    c = https_citrus(make_citrus, pki, ["--config", str(cfg)], client=pki.alice)
    r = requests.get(c.url + "/v1/kv/x", verify=pki.ca.cert,
                     cert=(pki.alice.cert, pki.alice.key), timeout=5)
    assert r.status_code == 404, r.text
    cfg.write_text(json.dumps({"server": {"tls": {"cert_file": pki.srv.cert, "cipher": "x"}}}))
    r = run_cli(*(base + ["--config", str(cfg)]))
    assert r.returncode == 2 and "server.tls.cipher: unknown field" in r.stderr, r.stderr


def test_sighup_reloads_without_dropping_connections(make_citrus, pki):
    c = https_citrus(make_citrus, pki, tls_args(pki, client_ca=False) + [
        "--router-tls-cert-file", pki.srv.cert, "--router-tls-key-file", pki.srv.key])
    rport = int(c.router_url.rsplit(":", 1)[1])
    assert serial_of(c.port, pki.ca.cert) == pki.srv.serial
    assert serial_of(rport, pki.ca.cert) == pki.srv.serial
    # a keep-alive connection opened before the reload
    ctx = ssl.create_default_context(cafile=pki.ca.cert)
    old = http.client.HTTPSConnection("127.0.0.1", c.port, context=ctx, timeout=5)
    old.request("GET", "/health/live")
    assert old.getresponse().read() and old.sock.getpeercert()["serialNumber"]
    # new files in place (a new serial, and a new key), then SIGHUP
    new = pki.ca.issue("srv2", "127.0.0.1", sans=["IP:127.0.0.1"], server=True)
    shutil.copy(new.cert, pki.srv.cert)
    shutil.copy(new.key, pki.srv.key)
    c.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: serial_of(c.port, pki.ca.cert) == new.serial, 10, what="new cert (api)")
    assert serial_of(rport, pki.ca.cert) == new.serial
    reloads = [ln["fields"]["listener"] for ln in c.log_lines()
               if ln.get("msg") == "TLS certificate reloaded"]
    assert sorted(reloads) == ["router.tls", "server.tls"], reloads
    # the old connection goes on, with the certificate of its handshake
    for _ in range(3):
        old.request("GET", "/health/live")
        resp = old.getresponse()
        assert resp.status == 200 and resp.read()
    assert int(old.sock.getpeercert()["serialNumber"], 16) == pki.srv.serial
    old.close()
    # a broken file on SIGHUP: logged, the current certificate stays
    with open(pki.srv.cert, "w") as f:
        f.write("not a certificate\n")
    c.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: [ln for ln in c.log_lines()
                        if ln.get("msg") == "TLS reload failed: the old certificate stays"],
               10, what="the failed reload logged")
    assert serial_of(c.port, pki.ca.cert) == new.serial
    assert requests.get(c.url + "/health/ready", verify=pki.ca.cert, timeout=5).status_code == 200
    assert c.proc.poll() is None


def test_router_https_with_client_certs(make_citrus, pki):
    """router.tls with its own client CA: the router requires certificates
    too, and the API's mtls mapping applies to them."""
    c = https_citrus(make_citrus, pki, tls_args(pki) + [
        "--router-tls-cert-file", pki.srv.cert, "--router-tls-key-file", pki.srv.key,
        "--router-tls-client-ca-file", pki.ca.cert,
        "--auth", "mtls", "--mtls-subjects", json.dumps(SUBJECTS)], client=pki.alice, shards=True)
    assert c.router_url.startswith("https://")
    ops = (pki.ops.cert, pki.ops.key)
    r = requests.post(c.router_url + "/v1/query", json={"key": "k", "sql": "SELECT 1 AS one"},
                      verify=pki.ca.cert, cert=ops, timeout=10)
    assert r.status_code == 200 and r.json()["rows"] == [[1]], r.text
    # reader may not query; no certificate / a foreign one: the handshake fails
    r = requests.post(c.router_url + "/v1/query", json={"key": "k", "sql": "SELECT 1"},
                      verify=pki.ca.cert, cert=(pki.alice.cert, pki.alice.key), timeout=10)
    assert r.status_code == 403, r.text
    refused(c.router_url + "/health/live", pki.ca.cert, None)
    refused(c.router_url + "/health/live", pki.ca.cert, (pki.foreign.cert, pki.foreign.key))


# ---- etcd over TLS ----

def etcd_tls_member(tmp_path, pki):
    cport, pport = free_ports(2)
    logs = tmp_path / "etcd-logs"
    logs.mkdir()
    # etcd's gRPC gateway dials etcd itself with the server certificate as
    # its client certificate: it needs both key usages
    srv = pki.ca.issue("etcd", "127.0.0.1", sans=["IP:127.0.0.1"], server=True, client=True)
    m = EtcdMember("e1", cport, pport, tmp_path / "etcd", logs,
                   f"e1=http://127.0.0.1:{pport}", f"tls-{cport}",
                   tls={"ca": pki.ca.cert, "cert": srv.cert, "key": srv.key,
                        "client_cert": pki.alice.cert, "client_key": pki.alice.key}).start()
    wait_until(lambda: m.status() is not None, 20, what="etcd (TLS) up")
    return m


def test_etcd_over_tls(make_citrus, pki, tmp_path):
    member = etcd_tls_member(tmp_path, pki)
    try:
        assert member.url.startswith("https://")
        etcd = ["--catalog-backend", "etcd", "--etcd-endpoints", member.url,
                "--etcd-connect-timeout", "500", "--etcd-request-timeout", "2000"]
        # (the records store wants the data dir, which only the embedded
        # catalog creates: made here)
        for d in ("n1", "n2"):
            (tmp_path / d).mkdir()
        c = make_citrus(mode="server", data_dir=tmp_path / "n1", extra=etcd + [
            "--etcd-ca-file", pki.ca.cert, "--etcd-cert-file", pki.alice.cert,
            "--etcd-key-file", pki.alice.key])
        assert requests.put(c.url + "/v1/kv/over-tls", data=b"v").status_code == 200
        assert requests.get(c.url + "/v1/kv/over-tls").status_code == 200
        c.stop()
        # without a client certificate etcd refuses the handshake: the node
        # says why and does not start
        bad = make_citrus(mode="server", data_dir=tmp_path / "n2",
                          extra=etcd + ["--etcd-ca-file", pki.ca.cert], start=False)
        with pytest.raises(AssertionError):
            bad.start(timeout=4)
        wait_until(lambda: "cannot open the etcd catalog" in bad.stderr(), 10,
                   what="the etcd error")
        err = bad.stderr()
        assert member.url in err and ("certificate" in err.lower() or "ssl" in err.lower() or
                                      "tls" in err.lower()), err
        bad.stop()
        # a CA file that is not there: a config error naming it
        r = run_cli("server", "--data-dir", str(tmp_path / "d3"), "--listen", "127.0.0.1:0",
                    "--auth", "none", "--auth-allow-none", "true", *etcd,
                    "--etcd-ca-file", str(tmp_path / "missing-ca.pem"), timeout=20)
        assert r.returncode == 2 and "missing-ca.pem" in r.stderr, r.stderr
    finally:
        member.stop()


# ---- PostgreSQL verify-full ----

def test_postgres_verify_full(make_citrus, make_postgres, pki, tmp_path):
    pg = make_postgres(ssl=(pki.srv.cert, pki.srv.key))
    psql(pg.admin_dsn, "CREATE DATABASE s")
    psql(pg.dsn("s"), "CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (42)")
    # certificate files a DSN names must sit under shards.tls_dir
    c = make_citrus(extra=["--shards-tls-dir", os.path.dirname(pki.ca.cert)])
    secret = "pw-never-shown"
    good = (f"postgresql://postgres:{secret}@127.0.0.1:{pg.port}/s"
            f"?sslmode=verify-full&sslrootcert={pki.ca.cert}")
    r = requests.post(c.url + "/v1/shards?allow_superuser=true", json={"id": "good", "dsn": good})
    assert r.status_code == 201, r.text
    r = requests.post(c.router_url + "/v1/query",
                      json={"key": "a", "sql": "SELECT a, ssl FROM t, pg_stat_ssl "
                                                 "WHERE pid = pg_backend_pid()"}, timeout=30)
    assert r.status_code == 200 and r.json()["rows"] == [[42, True]], r.text
    # the wrong CA: refused, the error names the certificate problem, never the password
    c2 = make_citrus(extra=["--shards-tls-dir", os.path.dirname(pki.other.cert)])
    wrong = good.replace(pki.ca.cert, pki.other.cert)
    r = requests.post(c2.url + "/v1/shards?allow_superuser=true", json={"id": "wrong", "dsn": wrong})
    if r.status_code == 201:
        r = requests.post(c2.router_url + "/v1/query", json={"key": "a", "sql": "SELECT 1"},
                          timeout=30)
    assert r.status_code >= 400, r.text
    assert "certificate" in r.text, r.text
    assert secret not in r.text
    for f in os.listdir(c2.log_dir):
        assert secret not in open(os.path.join(c2.log_dir, f), errors="replace").read(), f
