"""The CLI's credentials end to end: --token, --token-file, CITRUS_TOKEN and
CITRUS_TOKEN_FILE against `citrus dev --auth api_key` (their precedence, the
exit codes 4 for 401 and 5 for 403, tokens never echoed), `citrus auth key
create/ls/rm`, `citrus auth bootstrap` against `citrus server --auth
api_key`, `citrus audit ls` with its filters and paging; and the TLS
options (--cacert, --cert/--key, CITRUS_CACERT...) against a small TLS
server made here with openssl certificates and Python's ssl module."""
import json
import os
import shutil
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import CITRUS_BIN, wait_until

CITRUS_BIN = os.path.abspath(CITRUS_BIN)
UNAUTHENTICATED, FORBIDDEN = 4, 5
# Well-formed, but no server made it.
FAKE_KEY = "ck_0123456789abcdef_" + "ab" * 32
CRED_ENV = ("CITRUS_ENDPOINT", "CITRUS_TOKEN", "CITRUS_TOKEN_FILE", "CITRUS_CACERT",
            "CITRUS_CERT", "CITRUS_KEY")


class Result:
    def __init__(self, p):
        self.rc, self.out, self.err = p.returncode, p.stdout, p.stderr

    def __repr__(self):
        return f"Result(rc={self.rc}, out={self.out[:400]!r}, err={self.err[:600]!r})"


def run(*args, env=None):
    """The CLI with no credentials from the environment but env's."""
    e = {k: v for k, v in os.environ.items() if k not in CRED_ENV}
    e.update(env or {})
    return Result(subprocess.run([CITRUS_BIN] + [str(a) for a in args], capture_output=True,
                                 text=True, timeout=60, env=e))


def ok(r):
    assert r.rc == 0, r
    return r


def admin_key(c):
    """The key citrus dev --auth api_key writes (just after it is ready)."""
    path = os.path.join(c.data_dir, "admin.key")
    wait_until(lambda: os.path.exists(path) and open(path).read().endswith("\n"), 10,
               what="admin.key")
    with open(path) as f:
        return f.read().strip()


def token_file(tmp_path, name, text, mode=0o600):
    p = tmp_path / name
    p.write_text(text)
    os.chmod(p, mode)
    return str(p)


@pytest.fixture
def dev(make_citrus):
    return make_citrus(mode="dev", extra=["--auth", "api_key"])


def assert_unauthenticated(r, cmd="kv"):
    assert r.rc == UNAUTHENTICATED, r
    assert r.err.startswith(f"citrus {cmd}: not authenticated (401): "), r
    assert "pass --token, --token-file or set CITRUS_TOKEN" in r.err, r


# ---- where the token comes from --------------------------------------------

def test_no_token_is_refused_with_exit_4(dev):
    r = run("kv", "ls", "--endpoint", dev.url)
    assert_unauthenticated(r)
    assert "credentials" in r.err and r.out == "", r
    # every kind of command says it the same way
    assert_unauthenticated(run("cluster", "status", "--endpoint", dev.url), "cluster")
    assert_unauthenticated(run("shard", "ls", "--endpoint", dev.url), "shard")
    assert_unauthenticated(run("audit", "ls", "--endpoint", dev.url), "audit")
    assert_unauthenticated(run("backup", "-o", dev.data_dir + "/b", "--endpoint", dev.url),
                           "backup")


def test_each_source_of_the_token_works(dev, tmp_path):
    key = admin_key(dev)
    good = token_file(tmp_path, "good", key + "\n")
    ok(run("kv", "put", "a", "1", "--endpoint", dev.url, "--token", key))
    ok(run("kv", "get", "a", "--endpoint", dev.url, "--token-file", good))
    assert run("kv", "get", "a", "--endpoint", dev.url, env={"CITRUS_TOKEN": key}).out == "1"
    assert run("kv", "get", "a", "--endpoint", dev.url,
               env={"CITRUS_TOKEN_FILE": good}).out == "1"
    # the first line, blanks trimmed
    padded = token_file(tmp_path, "padded", f"  {key}  \r\nsecond line\n")
    ok(run("tenant", "ls", "--endpoint", dev.url, "--token-file", padded))
    # the dev admin key as citrus dev wrote it
    ok(run("shard", "ls", "--endpoint", dev.url, "--token-file",
           os.path.join(dev.data_dir, "admin.key")))


def test_precedence_token_then_file_then_env(dev, tmp_path):
    key = admin_key(dev)
    good = token_file(tmp_path, "good", key)
    bad = token_file(tmp_path, "bad", FAKE_KEY)
    get = ("kv", "ls", "--endpoint", dev.url)
    # --token beats --token-file and the environment
    ok(run(*get, "--token", key, "--token-file", bad,
           env={"CITRUS_TOKEN": FAKE_KEY, "CITRUS_TOKEN_FILE": bad}))
    assert_unauthenticated(run(*get, "--token", FAKE_KEY, "--token-file", good,
                               env={"CITRUS_TOKEN": key}))
    # --token-file beats CITRUS_TOKEN
    ok(run(*get, "--token-file", good, env={"CITRUS_TOKEN": FAKE_KEY}))
    assert_unauthenticated(run(*get, "--token-file", bad, env={"CITRUS_TOKEN": key}))
    # CITRUS_TOKEN beats CITRUS_TOKEN_FILE
    ok(run(*get, env={"CITRUS_TOKEN": key, "CITRUS_TOKEN_FILE": bad}))
    assert_unauthenticated(run(*get, env={"CITRUS_TOKEN": FAKE_KEY, "CITRUS_TOKEN_FILE": good}))


def test_tokens_are_never_printed(dev, tmp_path):
    key = admin_key(dev)
    reader = ok(run("auth", "key", "create", "--name", "r", "--role", "reader",
                    "--endpoint", dev.url, "--token", key)).out.strip()
    secret_file = token_file(tmp_path, "f", FAKE_KEY)
    cases = [
        (FAKE_KEY, run("kv", "ls", "--endpoint", dev.url, "--token", FAKE_KEY)),
        (FAKE_KEY, run("kv", "ls", "--endpoint", dev.url, "--token-file", secret_file)),
        (FAKE_KEY, run("kv", "ls", "--endpoint", dev.url, env={"CITRUS_TOKEN": FAKE_KEY})),
        (reader, run("kv", "put", "k", "v", "--endpoint", dev.url, "--token", reader)),
        (reader, run("auth", "key", "ls", "--endpoint", dev.url, "--token", reader)),
        # no server at all: the transport error names the URL, not the token
        (key, run("kv", "ls", "--endpoint", "http://127.0.0.1:1", "--token", key)),
        (key, run("query", "--endpoint", "http://127.0.0.1:1", "--token", key, "k",
                  "SELECT 1")),
        # a token that is not one word: refused without being shown
        ("secret part", run("kv", "ls", "--endpoint", dev.url, "--token",
                            "ck_x secret part\nX-Evil: 1")),
    ]
    for secret, r in cases:
        assert r.rc != 0, r
        assert secret not in r.out and secret not in r.err, r
        assert secret[3:20] not in r.err, r
    assert cases[-1][1].rc == 2 and "visible ASCII" in cases[-1][1].err


def test_token_file_checks(dev, tmp_path):
    key = admin_key(dev)
    loose = token_file(tmp_path, "loose", key, mode=0o644)
    r = ok(run("kv", "ls", "--endpoint", dev.url, "--token-file", loose))
    assert "warning: token file" in r.err and "0644" in r.err and "chmod 600" in r.err, r
    assert key not in r.err
    tight = token_file(tmp_path, "tight", key, mode=0o600)
    assert ok(run("kv", "ls", "--endpoint", dev.url, "--token-file", tight)).err == ""
    r = run("kv", "ls", "--endpoint", dev.url, "--token-file", str(tmp_path / "missing"))
    assert r.rc == 2 and "missing: cannot read: No such file or directory" in r.err, r
    r = run("kv", "ls", "--endpoint", dev.url, env={"CITRUS_TOKEN_FILE": str(tmp_path / "no")})
    assert r.rc == 2 and "$CITRUS_TOKEN_FILE" in r.err, r
    for name, text in (("empty", ""), ("blank", "  \n" + key)):
        r = run("kv", "ls", "--endpoint", dev.url, "--token-file",
                token_file(tmp_path, name, text))
        assert r.rc == 2 and "is empty" in r.err, r
    r = run("kv", "ls", "--endpoint", dev.url, "--token", "")
    assert r.rc == 2 and "must not be empty" in r.err, r


# ---- citrus auth ------------------------------------------------------------

def test_auth_key_create_ls_rm_round_trip(dev, tmp_path):
    admin = ["--endpoint", dev.url, "--token", admin_key(dev)]
    r = ok(run("auth", "key", "create", "--name", "ci-reader", "--role", "reader",
               "--expires-in", "3600", *admin))
    key = r.out.strip()
    assert r.out == key + "\n" and key.startswith("ck_"), r
    kid = key.split("_")[1]
    assert f"created key {kid} (name ci-reader, roles reader)" in r.err, r
    # --json: the whole answer, key included
    j = json.loads(ok(run("auth", "key", "create", "--name", "t", "--role", "tenant",
                          "--tenant", "acme:*", "--tenant", "beta:*", "--grant",
                          "app/=readwrite", "--json", *admin)).out)
    assert j["key"].startswith("ck_") and j["tenants"] == ["acme:*", "beta:*"]
    assert j["grants"] == [{"prefix": "app/", "access": "readwrite"}]
    # ls: a table with the new keys, never a key
    r = ok(run("auth", "key", "ls", *admin))
    lines = r.out.splitlines()
    assert lines[0].split() == ["ID", "NAME", "ROLES", "TENANTS", "EXPIRES", "LAST_USED"]
    row = next(l for l in lines if l.startswith(kid)).split()
    assert row[1:4] == ["ci-reader", "reader", "-"] and row[4] != "never" and row[5] == "never"
    assert any(l.split()[1:4] == ["t", "tenant", "acme:*,beta:*"] for l in lines[1:]), r.out
    assert "ck_" not in r.out
    listed = json.loads(ok(run("auth", "key", "ls", "--json", *admin)).out)["keys"]
    assert {k["name"] for k in listed} >= {"dev-admin", "ci-reader", "t"}
    # the reader key: reads what a reader may, 403 for more
    mine = ["--endpoint", dev.url, "--token", key]
    ok(run("shard", "ls", *mine))
    ok(run("cluster", "status", *mine))
    for args, cmd in ((("shard", "add", "--id", "s9", "--dsn", "sqlite:///tmp/x.db"), "shard"),
                      (("kv", "put", "k", "v"), "kv"),
                      (("auth", "key", "ls"), "auth")):
        r = run(*args, *mine)
        assert r.rc == FORBIDDEN, r
        assert r.err.startswith(f"citrus {cmd}: forbidden (403): "), r
        assert "pass --token" not in r.err
    # rm: then the key is refused
    r = ok(run("auth", "key", "rm", kid, *admin))
    assert r.out == f"revoked key {kid}\n"
    assert_unauthenticated(run("shard", "ls", *mine), "shard")
    assert kid not in ok(run("auth", "key", "ls", *admin)).out
    r = run("auth", "key", "rm", kid, *admin)
    assert r.rc == 1 and "not_found" in r.err, r


def test_auth_usage_errors(dev):
    admin = ["--endpoint", dev.url, "--token", admin_key(dev)]
    for args, msg in ((("key", "create", "--role", "reader"), "--name NAME is required"),
                      (("key", "create", "--name", "x"), "--role ROLE is required"),
                      (("key", "create", "--name", "x", "--role", "reader", "--grant", "app/"),
                       "PREFIX=read or PREFIX=readwrite"),
                      (("key", "create", "--name", "x", "--role", "reader", "--expires-in",
                        "0"), "--expires-in"),
                      (("key", "rm"), "missing"),
                      (("key", "ls", "--name", "x"), "ls does not take --name"),
                      (("frob",), "unknown command 'frob'")):
        r = run("auth", *args, *admin)
        assert r.rc == 2 and msg in r.err, (args, r)
    # the server's own checks: a 400 is an error (exit 1)
    r = run("auth", "key", "create", "--name", "x", "--role", "wizard", *admin)
    assert r.rc == 1 and r.err.startswith("error: "), r


def test_auth_bootstrap_once_per_cluster(make_citrus, tmp_path):
    server = make_citrus(mode="server", extra=["--auth", "api_key"])
    assert_unauthenticated(run("auth", "key", "ls", "--endpoint", server.url), "auth")
    out = tmp_path / "admin.key"
    r = ok(run("auth", "bootstrap", "--endpoint", server.url, "--out", out))
    assert r.out == "" and f"written to {out} (mode 0600)" in r.err, r
    assert os.stat(out).st_mode & 0o777 == 0o600
    key = out.read_text().strip()
    assert key.startswith("ck_") and out.read_text() == key + "\n"
    # a working sm-admin key
    listed = json.loads(ok(run("auth", "key", "ls", "--json", "--endpoint", server.url,
                               "--token-file", out)).out)["keys"]
    assert [k["roles"] for k in listed if k["name"] == "bootstrap"] == [["sm-admin"]]
    ok(run("auth", "key", "create", "--name", "ops", "--role", "sm-operator",
           "--endpoint", server.url, "--token-file", out))
    # the second time: already bootstrapped, and no file left behind
    again = tmp_path / "again.key"
    r = run("auth", "bootstrap", "--endpoint", server.url, "--out", again)
    assert r.rc == FORBIDDEN and "already bootstrapped (403)" in r.err, r
    assert not again.exists()
    r = run("auth", "bootstrap", "--endpoint", server.url)
    assert r.rc == FORBIDDEN and "already bootstrapped" in r.err and r.out == "", r
    # --out never overwrites (the key would be lost if the write failed)
    r = run("auth", "bootstrap", "--endpoint", server.url, "--out", out)
    assert r.rc == 1 and "does not overwrite" in r.err and out.read_text() == key + "\n", r


def test_auth_bootstrap_prints_the_key(make_citrus):
    server = make_citrus(mode="server", extra=["--auth", "api_key"])
    r = ok(run("auth", "bootstrap", "--endpoint", server.url))
    key = r.out.strip()
    assert r.out == key + "\n" and "bootstrap key" in r.err, r
    ok(run("shard", "ls", "--endpoint", server.url, "--token", key))


# ---- citrus audit -----------------------------------------------------------

def test_audit_ls_filters_and_pages(dev):
    admin = ["--endpoint", dev.url, "--token", admin_key(dev)]
    admin_id = json.loads(ok(run("auth", "key", "ls", "--json", *admin)).out)["keys"][0]["id"]
    principal = f"key:{admin_id}/dev-admin"
    for i in range(7):
        ok(run("auth", "key", "create", "--name", f"k{i}", "--role", "reader", *admin))
    ok(run("kv", "put", "audited", "x", *admin))
    run("kv", "ls", "--endpoint", dev.url)  # a 401, audited too

    r = ok(run("audit", "ls", "--action", "key.create", *admin))
    lines = r.out.splitlines()
    assert lines[0].split() == ["ID", "TIME", "PRINCIPAL", "ACTION", "TARGET", "STATUS"]
    rows = [l.split() for l in lines[1:]]
    assert len(rows) == 7 and all(row[2:4] == [principal, "key.create"] for row in rows), r.out
    assert all(row[-1] == "201" for row in rows)

    entries = json.loads(ok(run("audit", "ls", "--json", "--principal", principal,
                                *admin)).out)["entries"]
    actions = [e["action"] for e in entries]
    assert actions.count("key.create") == 7 and "kv.put" in actions, actions
    put = next(e for e in entries if e["action"] == "kv.put")
    assert put["target"] == "audited" and put["status"] == 200 and put["principal"] == principal
    assert all(e["principal"] == principal for e in entries)
    unauth = json.loads(ok(run("audit", "ls", "--json", "--action", "auth.unauthenticated",
                               *admin)).out)["entries"]
    assert unauth and all(e["status"] == 401 for e in unauth)

    # one page of 3, then --all follows next_after through every page
    one = json.loads(ok(run("audit", "ls", "--json", "--action", "key.create", "--limit", "3",
                            *admin)).out)
    assert len(one["entries"]) == 3 and one["next_after"] == one["entries"][-1]["id"]
    r = ok(run("audit", "ls", "--action", "key.create", "--limit", "3", *admin))
    assert r.out.splitlines()[-1] == f"(more: continue with --after {one['next_after']}, or --all)"
    every = json.loads(ok(run("audit", "ls", "--json", "--all", "--action", "key.create",
                              "--limit", "3", *admin)).out)
    assert [e["id"] for e in every["entries"]] == sorted(e["id"] for e in entries
                                                         if e["action"] == "key.create")
    assert every["next_after"] is None
    r = ok(run("audit", "ls", "--all", "--action", "key.create", "--limit", "2", *admin))
    assert len(r.out.splitlines()) == 1 + 7 and "(more" not in r.out, r.out
    rest = json.loads(ok(run("audit", "ls", "--json", "--action", "key.create", "--after",
                             one["next_after"], *admin)).out)["entries"]
    assert len(rest) == 4
    # usage errors, and the server's own check of --since
    assert run("audit", "ls", "--limit", "0", *admin).rc == 2
    assert run("audit", "ls", "--after", "x", *admin).rc == 2
    assert run("audit", "show", *admin).rc == 2
    r = run("audit", "ls", "--since", "yesterday", *admin)
    assert r.rc == 1 and "since" in r.err, r
    # a reader may not read the audit log
    reader = ok(run("auth", "key", "create", "--name", "rd", "--role", "reader", *admin)).out
    r = run("audit", "ls", "--endpoint", dev.url, "--token", reader.strip())
    assert r.rc == FORBIDDEN and "citrus audit: forbidden (403)" in r.err, r


# ---- TLS --------------------------------------------------------------------

def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """A CA, a server certificate for 127.0.0.1 and a client certificate it
    signed; and another CA that signed neither."""
    if not shutil.which("openssl"):
        pytest.skip("no openssl")
    d = tmp_path_factory.mktemp("certs")
    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-keyout", f"{ca}.key", "-out", f"{ca}.pem", "-days", "2",
                "-subj", f"/CN=citrus test {ca}", cwd=d)
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth"),
                      ("client", "extendedKeyUsage=clientAuth")):
        (d / f"{name}.ext").write_text(ext + "\n")
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile",
                f"{name}.ext", cwd=d)
    return d


class TenantHandler(BaseHTTPRequestHandler):
    """Answers GET /v1/tenants/<key> and notes the Authorization header."""
    seen = []

    def do_GET(self):
        TenantHandler.seen.append(self.headers.get("Authorization"))
        body = json.dumps({"key": self.path.rsplit("/", 1)[-1], "shard_id": "tls-shard"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def tls_server(certs, request):
    """An https server on 127.0.0.1; with mtls (indirect param) it requires
    a client certificate signed by the CA."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certs / "server.pem", certs / "server.key")
    if getattr(request, "param", None) == "mtls":
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(certs / "ca.pem")
    srv = ThreadingHTTPServer(("127.0.0.1", 0), TenantHandler)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    TenantHandler.seen = []
    yield f"https://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_cacert_verifies_the_server(tls_server, certs):
    show = ("tenant", "show", "acme:1", "--endpoint", tls_server)
    r = ok(run(*show, "--cacert", certs / "ca.pem", "--token", FAKE_KEY))
    assert "shard_id:      tls-shard" in r.out, r
    assert TenantHandler.seen == [f"Bearer {FAKE_KEY}"]
    ok(run(*show, env={"CITRUS_CACERT": str(certs / "ca.pem")}))
    # without the CA, or with another one: the certificate is not trusted
    for extra in ((), ("--cacert", certs / "other-ca.pem")):
        r = run(*show, *extra)
        assert r.rc == 1 and "certificate" in r.err.lower(), r
    r = run(*show, "--cacert", certs / "no-such.pem")
    assert r.rc == 1 and r.err.startswith("error: "), r
    assert len(TenantHandler.seen) == 2  # nothing got through without trust


@pytest.mark.parametrize("tls_server", ["mtls"], indirect=True)
def test_client_certificate_for_mutual_tls(tls_server, certs):
    show = ("tenant", "show", "acme:1", "--endpoint", tls_server, "--cacert", certs / "ca.pem")
    r = ok(run(*show, "--cert", certs / "client.pem", "--key", certs / "client.key"))
    assert "tls-shard" in r.out
    ok(run(*show, env={"CITRUS_CERT": str(certs / "client.pem"),
                       "CITRUS_KEY": str(certs / "client.key")}))
    r = run(*show)
    assert r.rc == 1 and r.err.startswith("error: "), r
    # a certificate the server's CA did not sign
    r = run(*show, "--cert", certs / "other-ca.pem", "--key", certs / "other-ca.key")
    assert r.rc == 1, r
    assert len(TenantHandler.seen) == 2
    r = run(*show, "--key", certs / "client.key")
    assert r.rc == 2 and "needs --cert" in r.err, r
