"""The CLI end to end: `citrus kv ...`, `citrus backup`, `citrus restore`
against real `citrus dev` servers.

Values are binary, so the CLI runs here with byte-exact stdout (`cli()`);
expected output is built from revisions read back over HTTP.
"""
import base64
import hashlib
import json
import os
import re
import signal
import socket
import stat
import subprocess
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from conftest import CITRUS_BIN, wait_until

CITRUS_BIN = os.path.abspath(CITRUS_BIN)  # some tests run the CLI in another directory


# ---- helpers ----------------------------------------------------------------

class Result:
    def __init__(self, p):
        self.rc = p.returncode
        self.out = p.stdout  # bytes
        self.err = p.stderr.decode(errors="replace")

    def __repr__(self):
        return f"Result(rc={self.rc}, out={self.out[:300]!r}, err={self.err[:500]!r})"


def cli(*args, input=None, env=None, timeout=60, cwd=None):
    """Runs the citrus binary; stdout as bytes, stderr as text. CITRUS_ENDPOINT
    is cleared unless env sets it, so no test talks to a default server."""
    e = dict(os.environ)
    e.pop("CITRUS_ENDPOINT", None)
    e.update(env or {})
    p = subprocess.run([CITRUS_BIN] + [str(a) for a in args], input=input, capture_output=True,
                       timeout=timeout, env=e, cwd=cwd)
    return Result(p)


def kv(c, *args, **kw):
    return cli("kv", *args, "--endpoint", c.url, **kw)


def ok(r):
    assert r.rc == 0, r
    assert r.err == "", r
    return r.out


def fails(r, rc, pattern):
    """Exit code rc, nothing on stdout, stderr matching the regex pattern."""
    assert r.rc == rc, r
    assert r.out == b"", r
    assert re.fullmatch(pattern, r.err, re.S), r
    return r.err


def q(key):
    return urllib.parse.quote(key, safe="/")


def http_put(c, key, val, **params):
    r = requests.put(c.url + "/v1/kv/" + q(key), data=val, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def http_get(c, key):
    return requests.get(c.url + "/v1/kv/" + q(key))


def entry(c, key):
    r = requests.get(c.url + "/v1/kv/" + q(key), params={"format": "json"})
    assert r.status_code == 200, r.text
    return r.json()


def listing(c, prefix=""):
    r = requests.get(c.url + "/v1/kv/" + q(prefix), params={"prefix": "true"})
    assert r.status_code == 200, r.text
    return r.json()


def store_rev(c):
    return listing(c, "__no_such_prefix__/")["revision"]


def http_txn(c, body):
    r = requests.post(c.url + "/v1/txn", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def grant(c, ttl):
    r = requests.post(c.url + "/v1/leases", json={"ttl": ttl})
    assert r.status_code == 200, r.text
    return r.json()["id"]


def snapshot(c):
    r = requests.get(c.url + "/v1/snapshot")
    assert r.status_code == 200, r.text
    return r.json()


def b64(b):
    return base64.b64encode(b).decode()


# Every server runs a node session: it registers the node (citrus/nodes/<id>)
# and holds the controller leader key, both attached to one session lease.
# Keys under citrus/ are Citrus's own; the tests' user data lives outside it.
SYSTEM_PREFIX = "citrus/"
NODE_ID = "node1"  # the default node id
SESSION_KEYS = ["citrus/controller/leader", f"citrus/nodes/{NODE_ID}"]  # in key order
SESSION_TTL = 5  # the default session lease TTL, seconds


def user_items(items):
    return [i for i in items if not i["key"].startswith(SYSTEM_PREFIX)]


def system_items(items):
    return [i for i in items if i["key"].startswith(SYSTEM_PREFIX)]


def assert_session_keys(items):
    """items (a listing, snapshot or backup) hold exactly the node session's
    keys under citrus/: the registration and the leader key naming this node,
    both on one lease. Returns that lease id."""
    sys_items = {i["key"]: i for i in system_items(items)}
    assert sorted(sys_items) == SESSION_KEYS, sys_items
    leader, reg = sys_items["citrus/controller/leader"], sys_items[f"citrus/nodes/{NODE_ID}"]
    assert base64.b64decode(leader["value"]) == NODE_ID.encode()
    assert json.loads(base64.b64decode(reg["value"]))["id"] == NODE_ID
    assert leader["lease"] != 0 and reg["lease"] == leader["lease"], sys_items
    return leader["lease"]


def assert_only_session_writes_since(c, rev):
    """Everything written after rev is the node session's own (keys under
    citrus/), up to the current revision, which is returned. Used where a
    (re)start moves the revision: no user key changed meanwhile."""
    now = store_rev(c)
    assert now > rev  # the session registered and campaigned again
    w = requests.get(c.url + f"/v1/watch/?from_revision={rev + 1}&timeout=1s").json()
    assert w["events"], w
    assert all(e["key"].startswith(SYSTEM_PREFIX) for e in w["events"]), w
    assert max(e["mod_revision"] for e in w["events"]) == now, w
    return now


def strip_session_lines(out, items):
    """`kv ls` text output without the lines of the session's keys in items
    (each must be there exactly once)."""
    for i in system_items(items):
        line = i["key"].encode() + b"\t" + base64.b64decode(i["value"]) + b"\n"
        assert out.count(line) == 1, (line, out[:300])
        out = out.replace(line, b"")
    return out


def put_line(rev, mod, version):
    return f"OK revision={rev} mod_revision={mod} version={version}\n".encode()


def free_port():
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LineReader:
    """Collects a process's stdout lines on a thread, so a test can wait for
    output while the process keeps running."""

    def __init__(self, proc):
        self.proc = proc
        self.lines = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        for line in iter(self.proc.stdout.readline, b""):
            self.lines.append(line)

    def finish(self, timeout):
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"process did not exit within {timeout}s; got {self.lines!r}")
        self.thread.join(5)
        return self.proc.returncode


def popen_cli(*args):
    e = dict(os.environ)
    e.pop("CITRUS_ENDPOINT", None)
    return subprocess.Popen([CITRUS_BIN] + [str(a) for a in args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=e)


@pytest.fixture
def watch_procs():
    """Popen'd watchers, killed (by PID) if a test leaves one running."""
    procs = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
        for f in (p.stdout, p.stderr):
            if f:
                f.close()


# ---- kv get / put -------------------------------------------------------------

def test_put_get_text_and_json(citrus):
    r0 = store_rev(citrus)
    assert ok(kv(citrus, "put", "app/db/url", "postgres://a")) == put_line(r0 + 1, r0 + 1, 1)
    out = ok(kv(citrus, "put", "app/db/url", "postgres://b", "-o", "json"))
    assert out.endswith(b"\n") and out.count(b"\n") == 1
    assert json.loads(out) == {"key": "app/db/url", "revision": r0 + 2, "create_revision": r0 + 1,
                               "mod_revision": r0 + 2, "version": 2}
    # get prints exactly the value's bytes: no newline added
    assert ok(kv(citrus, "get", "app/db/url")) == b"postgres://b"
    assert ok(kv(citrus, "get", "app/db/url", "--consistency", "strong")) == b"postgres://b"
    assert ok(kv(citrus, "-o", "text", "get", "app/db/url", "--consistency=bounded")) == \
        b"postgres://b"
    # -o json prints the server's answer as it came
    out = ok(kv(citrus, "get", "app/db/url", "-o", "json"))
    http = requests.get(citrus.url + "/v1/kv/app/db/url?format=json")
    assert out == http.content
    assert json.loads(out) == {"key": "app/db/url", "value": b64(b"postgres://b"),
                               "create_revision": r0 + 1, "mod_revision": r0 + 2, "version": 2,
                               "lease": 0, "revision": r0 + 2}
    assert http_get(citrus, "app/db/url").content == b"postgres://b"
    # the endpoint may come from $CITRUS_ENDPOINT (with a trailing '/')
    r = cli("kv", "get", "app/db/url", env={"CITRUS_ENDPOINT": citrus.url + "/"})
    assert ok(r) == b"postgres://b"


def test_put_stdin_binary_and_unusual_keys(citrus):
    blob = bytes(range(256)) * 4 + b"\n\x00tail\r\n"
    r0 = store_rev(citrus)
    assert ok(kv(citrus, "put", "bin/blob", "-", input=blob)) == put_line(r0 + 1, r0 + 1, 1)
    assert http_get(citrus, "bin/blob").content == blob
    assert ok(kv(citrus, "get", "bin/blob")) == blob
    assert base64.b64decode(json.loads(ok(kv(citrus, "get", "bin/blob", "-o", "json")))
                            ["value"]) == blob
    # more than the CLI's first 64 KiB read buffer
    big = hashlib.sha256(b"seed").digest() * 10000  # 320000 bytes
    ok(kv(citrus, "put", "big/one", "-", input=big))
    assert http_get(citrus, "big/one").content == big
    assert ok(kv(citrus, "get", "big/one")) == big
    # empty standard input: an empty value
    assert ok(kv(citrus, "put", "bin/empty", "-", input=b"")) == put_line(r0 + 3, r0 + 3, 1)
    g = http_get(citrus, "bin/empty")
    assert g.status_code == 200 and g.content == b""
    assert ok(kv(citrus, "get", "bin/empty")) == b""
    # listing prints key TAB raw value NL, binary included
    assert ok(kv(citrus, "ls", "bin/")) == b"bin/blob\t" + blob + b"\nbin/empty\t\n"
    # UTF-8 and spaces in keys and values
    key, val = "dir/naïve key ✓/ünï", "välue with  spaces ✓"
    ok(kv(citrus, "put", key, val))
    assert http_get(citrus, key).content == val.encode()
    assert ok(kv(citrus, "get", key)) == val.encode()
    assert ok(kv(citrus, "ls", "dir/")) == f"{key}\t{val}\n".encode()
    assert ok(kv(citrus, "ls", "dir/naïve key")) == f"{key}\t{val}\n".encode()
    assert ok(kv(citrus, "ls", "dir/", "--keys-only")) == f"{key}\n".encode()
    assert json.loads(ok(kv(citrus, "ls", "dir/", "-o", "json")))["items"][0]["key"] == key
    # characters that must be escaped in a URL path
    odd = "odd/a?b#c%d&e=f+g"
    ok(kv(citrus, "put", odd, "x"))
    assert entry(citrus, odd)["key"] == odd
    assert ok(kv(citrus, "get", odd)) == b"x"
    assert ok(kv(citrus, "ls", "odd/", "--keys-only")) == (odd + "\n").encode()
    # a key starting with '-' after -- (options before it)
    ok(cli("kv", "--endpoint", citrus.url, "put", "--", "-dash", "-v"))
    assert http_get(citrus, "-dash").content == b"-v"
    assert ok(cli("kv", "get", "--endpoint", citrus.url, "--", "-dash")) == b"-v"
    # an invalid key is the server's 400, exit 1, nothing written
    r1 = store_rev(citrus)
    fails(kv(citrus, "put", "a//b", "x"), 1, r"error: invalid_key: .+\n")
    assert store_rev(citrus) == r1


def test_put_cas(citrus):
    r0 = store_rev(citrus)
    assert ok(kv(citrus, "put", "cfg", "1", "--cas", "0")) == put_line(r0 + 1, r0 + 1, 1)
    fails(kv(citrus, "put", "cfg", "2", "--cas", "0"), 1,
          rf"error: compare_failed: .+ \(mod_revision {r0 + 1}\)\n")
    fails(kv(citrus, "put", "cfg", "2", "--cas", str(r0 + 50)), 1,
          rf"error: compare_failed: .+ \(mod_revision {r0 + 1}\)\n")
    assert http_get(citrus, "cfg").content == b"1"
    assert store_rev(citrus) == r0 + 1  # failed compares write nothing
    assert ok(kv(citrus, "put", "cfg", "2", "--cas", str(r0 + 1))) == put_line(r0 + 2, r0 + 2, 2)
    assert http_get(citrus, "cfg").content == b"2"
    # a stale revision now fails, for put and for del
    fails(kv(citrus, "put", "cfg", "3", "--cas", str(r0 + 1)), 1,
          rf"error: compare_failed: .+ \(mod_revision {r0 + 2}\)\n")
    fails(kv(citrus, "del", "cfg", "--cas", str(r0 + 1)), 1,
          rf"error: compare_failed: .+ \(mod_revision {r0 + 2}\)\n")
    assert http_get(citrus, "cfg").content == b"2"
    assert ok(kv(citrus, "del", "cfg", "--cas", str(r0 + 2))) == \
        f"deleted 1 (revision {r0 + 3})\n".encode()
    assert http_get(citrus, "cfg").status_code == 404
    # --cas 0 creates again once the key is gone
    assert ok(kv(citrus, "put", "cfg", "4", "--cas", "0")) == put_line(r0 + 4, r0 + 4, 1)


def test_put_with_lease(citrus):
    lid = grant(citrus, 60)
    r0 = store_rev(citrus)
    assert ok(kv(citrus, "put", "eph/a", "x", "--lease", str(lid))) == put_line(r0 + 1, r0 + 1, 1)
    ok(kv(citrus, "put", "eph/b", "-", "--lease", str(lid), input=b"\x00y"))
    ok(kv(citrus, "put", "eph/keep", "z"))
    assert json.loads(ok(kv(citrus, "get", "eph/a", "-o", "json")))["lease"] == lid
    assert entry(citrus, "eph/b")["lease"] == lid
    assert entry(citrus, "eph/keep")["lease"] == 0
    # an unknown lease: exit 1, nothing written
    fails(kv(citrus, "put", "eph/c", "x", "--lease", str(lid + 1)), 1,
          r"error: lease_not_found: .+\n")
    assert http_get(citrus, "eph/c").status_code == 404
    assert store_rev(citrus) == r0 + 3
    # revoking the lease deletes what the CLI attached to it
    assert requests.delete(citrus.url + f"/v1/leases/{lid}").status_code == 200
    fails(kv(citrus, "get", "eph/a"), 1, r"error: not_found: .*eph/a.*\n")
    assert ok(kv(citrus, "ls", "eph/", "--keys-only")) == b"eph/keep\n"


def test_del_and_del_prefix(citrus):
    for k in ("d/a", "d/b", "d/c/e", "dd", "e"):
        http_put(citrus, k, b"x")
    r0 = store_rev(citrus)
    assert ok(kv(citrus, "del", "d/", "--prefix")) == f"deleted 3 (revision {r0 + 1})\n".encode()
    assert [i["key"] for i in user_items(listing(citrus)["items"])] == ["dd", "e"]
    assert_session_keys(listing(citrus)["items"])  # only d/ went
    # nothing to delete: revision unchanged
    assert ok(kv(citrus, "del", "d/", "--prefix")) == f"deleted 0 (revision {r0 + 1})\n".encode()
    assert ok(kv(citrus, "del", "absent")) == f"deleted 0 (revision {r0 + 1})\n".encode()
    out = ok(kv(citrus, "del", "e", "-o", "json"))
    assert json.loads(out) == {"deleted": 1, "revision": r0 + 2} and out.endswith(b"}\n")
    assert [i["key"] for i in user_items(listing(citrus)["items"])] == ["dd"]
    assert_session_keys(listing(citrus)["items"])


# ---- kv ls ----------------------------------------------------------------------

def fill_keys(c, keys, value=lambda k: k):
    """Writes keys in txns of 100 puts (one revision per txn)."""
    for i in range(0, len(keys), 100):
        http_txn(c, {"success": [{"op": "put", "key": k, "value": value(k)}
                                 for k in keys[i:i + 100]]})


def test_ls_many_keys_limit_keys_only(citrus):
    keys = [f"ls/k{i:03d}" for i in range(250)]
    fill_keys(citrus, keys, lambda k: "v" + k[4:])
    fill_keys(citrus, ["ls2/x", "lt", "l"])
    rev = store_rev(citrus)
    text = "".join(f"{k}\tv{k[4:]}\n" for k in keys).encode()
    assert ok(kv(citrus, "ls", "ls/")) == text
    assert ok(kv(citrus, "ls", "ls/", "--keys-only")) == "".join(k + "\n" for k in keys).encode()
    full = json.loads(ok(kv(citrus, "ls", "ls/", "-o", "json")))
    assert full == {"revision": rev, "items": listing(citrus, "ls/")["items"], "more": False}
    assert len(full["items"]) == 250 and full["items"][7]["value"] == b64(b"v007")
    # --limit stops early; json says there is more
    assert ok(kv(citrus, "ls", "ls/", "--limit", "100")) == \
        "".join(f"{k}\tv{k[4:]}\n" for k in keys[:100]).encode()
    lim = json.loads(ok(kv(citrus, "ls", "ls/", "--limit", "100", "-o", "json", "--keys-only")))
    assert lim["more"] is True and lim["revision"] == rev
    assert lim["items"] == [{k: v for k, v in i.items() if k != "value"}
                            for i in full["items"][:100]]
    exact = json.loads(ok(kv(citrus, "ls", "ls/", "--limit", "250", "-o", "json")))
    assert exact["more"] is False and exact["items"] == full["items"]
    assert json.loads(ok(kv(citrus, "ls", "ls/", "--limit", "1000", "-o", "json"))) == full
    # no prefix lists everything, in key order: the session's keys too
    every = ok(kv(citrus, "ls", "--keys-only")).decode().splitlines()
    assert every == sorted(keys + ["ls2/x", "lt", "l"] + SESSION_KEYS)
    assert ok(kv(citrus, "ls", "", "--keys-only")).decode().splitlines() == every
    # a prefix with nothing under it
    assert ok(kv(citrus, "ls", "nothing/")) == b""
    assert json.loads(ok(kv(citrus, "ls", "nothing/", "-o", "json"))) == \
        {"revision": rev, "items": [], "more": False}


class PagingProxy:
    """Forwards GETs to a citrus server, capping ?limit at `page`.

    The server answers a listing without a limit in one response, so the
    CLI's page-by-page loop (after = last key) only runs against a server
    that pages; this proxy makes the real server's answers come in pages.
    """

    def __init__(self, upstream, page):
        self.seen = []  # the query of every request, decoded
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                u = urllib.parse.urlsplit(self.path)
                qs = urllib.parse.parse_qsl(u.query, keep_blank_values=True)
                proxy.seen.append(dict(qs))
                want = int(dict(qs).get("limit", "0"))
                qs = [(k, v) for k, v in qs if k != "limit"]
                qs.append(("limit", str(min(want, page) if want else page)))
                r = requests.get(upstream + u.path + "?" +
                                 urllib.parse.urlencode(qs, quote_via=urllib.parse.quote))
                self.send_response(r.status_code)
                self.send_header("Content-Type", r.headers.get("Content-Type", ""))
                self.send_header("Content-Length", str(len(r.content)))
                self.end_headers()
                self.wfile.write(r.content)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def paging_proxy(citrus):
    p = PagingProxy(citrus.url, 64)
    yield p
    p.close()


def test_ls_follows_pages(citrus, paging_proxy):
    # UTF-8 and spaces at page boundaries: "after" must be escaped right
    keys = sorted([f"pg/ключ {i:03d}" for i in range(150)] + ["pg/a+b&c=d", "pg/z?"])
    fill_keys(citrus, keys, lambda k: k.upper())
    http_put(citrus, "pg0", b"outside")
    http_put(citrus, "ph/x", b"outside")
    p = paging_proxy
    out = ok(cli("kv", "ls", "pg/", "--endpoint", p.url))
    assert out == "".join(f"{k}\t{k.upper()}\n" for k in keys).encode()
    # three pages (64 + 64 + 24), each continuing after the last key seen
    assert [s.get("after") for s in p.seen] == [None, keys[63], keys[127]]
    assert all(s["prefix"] == "true" and "limit" not in s for s in p.seen)
    # json gathers the pages into one answer
    p.seen.clear()
    j = json.loads(ok(cli("kv", "ls", "pg/", "-o", "json", "--endpoint", p.url)))
    assert j["more"] is False and j["items"] == listing(citrus, "pg/")["items"]
    assert len(p.seen) == 3
    # --limit across pages asks for what is still missing
    p.seen.clear()
    out = ok(cli("kv", "ls", "pg/", "--limit", "100", "--keys-only", "--endpoint", p.url))
    assert out == "".join(k + "\n" for k in keys[:100]).encode()
    assert [(s["limit"], s.get("after"), s["keys_only"]) for s in p.seen] == \
        [("100", None, "true"), ("36", keys[63], "true")]
    p.seen.clear()
    j = json.loads(ok(cli("kv", "ls", "pg/", "--limit", "130", "-o", "json", "--endpoint", p.url)))
    assert [i["key"] for i in j["items"]] == keys[:130] and j["more"] is True
    assert [s["limit"] for s in p.seen] == ["130", "66", "2"]


# ---- errors -----------------------------------------------------------------------

def test_get_absent_and_unreachable(citrus):
    fails(kv(citrus, "get", "nope/x"), 1, r"error: not_found: .*'nope/x'.*\n")
    fails(kv(citrus, "get", "nope/x", "-o", "json"), 1, r"error: not_found: .*'nope/x'.*\n")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    unreachable = rf"error: {re.escape(url)}/v1/[^:]*: .*[Cc]onnect.*\n"
    t0 = time.monotonic()
    for args in (("get", "k"), ("put", "k", "v"), ("del", "k"), ("ls", "p/"),
                 ("watch", "p/"), ("watch", "p/", "--count", "1")):
        fails(cli("kv", *args, "--endpoint", url, timeout=20), 1, unreachable)
    assert time.monotonic() - t0 < 20


@pytest.mark.parametrize("args,message", [
    ((), r"usage: citrus kv <command>.*"),
    (("frob",), r"citrus kv: unknown command 'frob'\n.*"),
    (("get",), r"citrus kv: get: missing argument\n.*"),
    (("get", "a", "b"), r"citrus kv: get: too many arguments\n.*"),
    (("put", "a"), r"citrus kv: put: missing argument\n.*"),
    (("watch",), r"citrus kv: watch: missing argument\n.*"),
    (("txn",), r"citrus kv: txn: missing argument\n.*"),
    (("get", "a", "--prefix"), r"citrus kv: get does not take --prefix\n.*"),
    (("ls", "--cas", "1"), r"citrus kv: ls does not take --cas\n.*"),
    (("put", "a", "b", "--count", "1"), r"citrus kv: put does not take --count\n.*"),
    (("del", "a", "--prefix", "--cas", "3"), r"citrus kv: del: --cas applies to one key.*"),
    (("put", "a", "b", "--cas", "-1"), r"citrus kv: --cas needs a revision.*'-1'.*"),
    (("put", "a", "b", "--cas", "x"), r"citrus kv: --cas needs a revision.*'x'.*"),
    (("put", "a", "b", "--lease", "0"), r"citrus kv: --lease needs a lease id, not '0'.*"),
    (("ls", "--limit", "0"), r"citrus kv: --limit needs a count >= 1, not '0'.*"),
    (("watch", "p", "--count", "0"), r"citrus kv: --count needs a number >= 1.*"),
    (("watch", "p", "--from-revision", "0"), r"citrus kv: --from-revision needs .*"),
    (("get", "a", "--consistency", "eventual"), r"citrus kv: --consistency must be .*"),
    (("get", "a", "-o", "yaml"), r"citrus kv: -o must be json or text, not 'yaml'\n.*"),
    (("get", "a", "--endpoint"), r"citrus kv: option '--endpoint' needs a value\n.*"),
    (("get", "a", "--bogus"), r"citrus kv: unknown option '--bogus'\n.*"),
    (("get", "a", "--endpoint", "ftp://x"),
     r"citrus kv: --endpoint must be an http:// or https:// URL, not 'ftp://x'\n.*"),
])
def test_kv_usage_errors_exit_2(args, message):
    # --endpoint points nowhere: a usage error must stop before any request
    r = cli("kv", *args) if "--endpoint" in args else \
        cli("kv", *args, env={"CITRUS_ENDPOINT": f"http://127.0.0.1:{free_port()}"})
    fails(r, 2, message)
    if args:
        assert r.err.endswith("Try 'citrus kv --help'.\n"), r


def test_kv_help():
    out = ok(cli("kv", "--help")).decode()
    for verb in ("get KEY", "put KEY", "del KEY", "ls [PREFIX]", "watch PREFIX", "txn FILE"):
        assert verb in out
    assert ok(cli("kv", "get", "--help")).decode() == out


# ---- kv watch -------------------------------------------------------------------

def watch_line(ev_type, key, value, rev):
    if ev_type == "delete":
        return f"DELETE {key} (rev {rev})\n".encode()
    return f"PUT {key} ".encode() + value + f" (rev {rev})\n".encode()


def test_watch_count_receives_concurrent_writes(citrus, watch_procs):
    r0 = store_rev(citrus)
    p = popen_cli("kv", "watch", "w/", "--from-revision", r0 + 1, "--count", "5",
                  "--endpoint", citrus.url)
    watch_procs.append(p)
    reader = LineReader(p)
    ra = http_put(citrus, "w/a", b"1")["revision"]
    wait_until(lambda: reader.lines, 10, what="the first watch event")
    assert p.poll() is None  # still waiting for 4 more
    # the rest happen while the watch is live
    http_put(citrus, "other/x", b"filtered out")
    rb = http_put(citrus, "w/b b", b"two words \x00")["revision"]
    rd = requests.delete(citrus.url + "/v1/kv/w/a").json()["revision"]
    http_put(citrus, "wx", b"not under w/")
    rc_ = http_put(citrus, "w/c", b"\xff\xfe")["revision"]
    wait_until(lambda: len(reader.lines) >= 4, 10, what="four watch events")
    assert p.poll() is None
    re_ = http_put(citrus, "w/ü", b"5")["revision"]
    http_put(citrus, "w/late", b"after the count")
    assert reader.finish(15) == 0
    assert p.stderr.read() == b""
    assert b"".join(reader.lines) == b"".join([
        watch_line("put", "w/a", b"1", ra),
        watch_line("put", "w/b b", b"two words \x00", rb),
        watch_line("delete", "w/a", None, rd),
        watch_line("put", "w/c", b"\xff\xfe", rc_),
        watch_line("put", "w/ü", b"5", re_),
    ])


def test_watch_from_now(citrus, watch_procs):
    """Without --from-revision the watch starts at the next change: what it
    prints is a gap-free run of the writes made after it started."""
    p = popen_cli("kv", "watch", "now/", "--count", "3", "--endpoint", citrus.url)
    watch_procs.append(p)
    written = []
    deadline = time.monotonic() + 20
    i = 0
    while p.poll() is None and time.monotonic() < deadline:
        rev = http_put(citrus, f"now/k{i}", f"v{i}".encode())["revision"]
        written.append(watch_line("put", f"now/k{i}", f"v{i}".encode(), rev))
        http_put(citrus, f"other/k{i}", b"x")
        i += 1
        time.sleep(0.02)
    out, err = p.communicate(timeout=15)
    assert p.returncode == 0 and err == b"", (p.returncode, err)
    lines = out.splitlines(keepends=True)
    assert len(lines) == 3, out
    assert lines[0] in written, (lines, written)
    j = written.index(lines[0])
    assert lines == written[j:j + 3]


def test_watch_json_history_across_polls(citrus):
    """More events than one long poll returns (the server caps an answer at
    1000): the CLI polls again from where the answer ended, without gaps."""
    r0 = store_rev(citrus)
    for t in range(9):
        http_txn(citrus, {"success": [{"op": "put", "key": f"h/{t}/{i:03d}", "value": f"{t}.{i}"}
                                      for i in range(128)]})
    requests.delete(citrus.url + "/v1/kv/h/?prefix=true")
    http_put(citrus, "h/last", b"end")
    http_put(citrus, "i/outside", b"x")
    # the same events over HTTP, poll by poll
    events, frm = [], r0 + 1
    while len(events) < 9 * 128 * 2 + 1:
        j = requests.get(citrus.url + f"/v1/watch/h/?from_revision={frm}&timeout=2s").json()
        assert j["events"], j
        events += j["events"]
        frm = j["revision"] + 1
    assert len(events) == 2305
    r = cli("kv", "watch", "h/", "--from-revision", r0 + 1, "--count", 2305, "-o", "json",
            "--endpoint", citrus.url)
    got = [json.loads(line) for line in ok(r).splitlines()]
    assert got == events
    r = cli("kv", "watch", "h/", "--from-revision", r0 + 1, "--count", 2305,
            "--endpoint", citrus.url)
    expected = b"".join(watch_line(e["type"], e["key"], base64.b64decode(e.get("value", "")),
                                   e["mod_revision"]) for e in events)
    assert ok(r) == expected
    # --count stops in the middle of an answer (the first poll holds 896 events)
    r = cli("kv", "watch", "h/", "--from-revision", r0 + 1, "--count", 3, "--endpoint", citrus.url)
    assert ok(r) == b"".join(expected.splitlines(keepends=True)[:3])
    r = cli("kv", "watch", "h/1/", "--from-revision", r0 + 1, "--count", 130, "-o", "json",
            "--endpoint", citrus.url)
    assert [json.loads(line) for line in ok(r).splitlines()] == \
        [e for e in events if e["key"].startswith("h/1/")][:130]


def test_watch_sigint_exits_0(citrus, watch_procs):
    p = popen_cli("kv", "watch", "s/", "--endpoint", citrus.url)
    watch_procs.append(p)
    reader = LineReader(p)
    # write until the watch shows it is polling (it starts at the next change)
    written = []

    def seen():
        if not reader.lines:
            i = len(written)
            rev = http_put(citrus, f"s/k{i}", f"v{i}".encode())["revision"]
            written.append(watch_line("put", f"s/k{i}", f"v{i}".encode(), rev))
        return reader.lines
    wait_until(seen, 15, interval=0.1, what="the watch to print an event")
    # now it sits in a 30 s long poll; Ctrl-C ends it at once, status 0
    t0 = time.monotonic()
    p.send_signal(signal.SIGINT)
    assert reader.finish(10) == 0
    assert time.monotonic() - t0 < 5
    assert p.stderr.read() == b""
    lines = reader.lines
    assert lines and lines[0] in written, (lines, written)
    j = written.index(lines[0])
    assert lines == written[j:j + len(lines)]


# ---- kv txn ---------------------------------------------------------------------

TXN = {"compare": [{"key": "t/a", "target": "exists", "exists": False}],
       "success": [{"op": "put", "key": "t/a", "value": "1"},
                   {"op": "put", "key": "t/b", "value_b64": b64(b"\x00\x01")},
                   {"op": "delete", "key": "t/none"},
                   {"op": "get", "key": "t/", "prefix": True}],
       "failure": [{"op": "get", "key": "t/a"}]}


def test_txn_file_and_stdin(citrus, tmp_path):
    f = tmp_path / "txn.json"
    f.write_text(json.dumps(TXN, indent=2))
    r0 = store_rev(citrus)
    r = r0 + 1
    assert ok(kv(citrus, "txn", f)) == (
        f"SUCCESS revision={r}\nput mod_revision={r} version=1\n"
        f"put mod_revision={r} version=1\ndelete deleted=0\nget count=2\n").encode() + \
        b"t/a\t1\nt/b\t\x00\x01\n"
    assert http_get(citrus, "t/b").content == b"\x00\x01"
    # again, from standard input: the key exists now, the failure branch runs
    assert ok(kv(citrus, "txn", "-", input=json.dumps(TXN).encode())) == \
        f"FAILURE revision={r}\nget count=1\nt/a\t1\n".encode()
    # -o json is the server's answer as it came
    out = ok(kv(citrus, "txn", "-", "-o", "json", input=json.dumps(TXN).encode()))
    assert out == requests.post(citrus.url + "/v1/txn", json=TXN).content
    assert json.loads(out) == {"succeeded": False, "revision": r, "results": [
        {"op": "get", "items": [{"key": "t/a", "value": b64(b"1"), "create_revision": r,
                                 "mod_revision": r, "version": 1, "lease": 0}], "more": False}]}
    assert store_rev(citrus) == r
    # bad input: exit 1, nothing written
    f.write_text("[1]")
    fails(kv(citrus, "txn", f), 1, rf"error: {re.escape(str(f))}: not a JSON object\n")
    fails(kv(citrus, "txn", "-", input=b"{x"), 1,
          r"error: standard input: not a JSON object: .+\n")
    fails(kv(citrus, "txn", tmp_path / "missing.json"), 1,
          r"error: cannot open .*missing\.json: No such file or directory\n")
    fails(kv(citrus, "txn", "-", input=b'{"success":[{"op":"bogus","key":"t/x"}]}'), 1,
          r"error: bad_json: .+\n")
    assert store_rev(citrus) == r


# ---- backup and restore -------------------------------------------------------------

def build_dataset(c):
    """A few hundred keys: bulk txn writes, single writes with binary values,
    updates, deletes and re-creates, UTF-8 keys, leased keys, a key moved off
    its lease, and a lease with no keys. Returns the lease ids."""
    s = requests.Session()
    l1, l2, l3 = grant(c, 600), grant(c, 300), grant(c, 120)
    for b in range(2):
        http_txn(c, {"success": [{"op": "put", "key": f"bulk/{b}/{i:03d}",
                                  "value": f"bulk {b} {i}"} for i in range(100)]})

    def put(key, val, **params):
        r = s.put(c.url + "/v1/kv/" + q(key), data=val, params=params)
        assert r.status_code == 200, r.text

    for i in range(100):
        val = bytes([i, 0, 255, 10, 13]) + bytes(range(i % 50)) if i % 5 == 0 else f"one {i}"
        params = {"lease": l1} if i % 7 == 0 else {"lease": l2} if i % 11 == 0 else {}
        put(f"one/k{i:03d}", val, **params)
    for i in range(30):
        put(f"one/k{i:03d}", f"update {i}".encode())  # drops a lease
        put(f"one/k{i:03d}", f"update {i} again".encode(),
            **({"lease": l2} if i % 4 == 0 else {}))
    for i in range(50, 55):
        assert s.delete(c.url + f"/v1/kv/one/k{i:03d}").status_code == 200
        put(f"one/k{i:03d}", b"recreated")
    assert s.delete(c.url + "/v1/kv/bulk/0/01?prefix=true").json()["deleted"] == 10
    put("utf/naïve key ✓", "välue ✓".encode())
    put("utf/empty", b"")
    put("utf/big", hashlib.sha256(b"x").digest() * 2000)
    return l1, l2, l3


def read_backup(path):
    data = open(path, "rb").read()
    lines = data.split(b"\n")
    assert lines[-1] == b""
    header, trailer = json.loads(lines[0]), json.loads(lines[-2])
    return data, header, trailer, lines


def backup_keys(path):
    """The keys of a backup's items, after its header["leases"] lease lines;
    checks the session's keys are there on one of those leases."""
    _, header, _, lines = read_backup(path)
    leases = [json.loads(x)["lease"]["id"] for x in lines[1:1 + header["leases"]]]
    items = [json.loads(x) for x in lines[1 + header["leases"]:-2]]
    assert len(items) == header["count"]
    assert assert_session_keys(items) in leases
    return [i["key"] for i in items]


def test_backup_restore_roundtrip(make_citrus, tmp_path):
    c1 = make_citrus()
    l1, l2, l3 = build_dataset(c1)
    before = snapshot(c1)
    n, rev = len(before["items"]), before["revision"]
    users = user_items(before["items"])
    assert 280 <= len(users) <= 320
    assert {i["lease"] for i in users} == {0, l1, l2}
    # the catalog also holds c1's session: its two keys on its lease
    s1 = assert_session_keys(before["items"])
    assert n == len(users) + len(SESSION_KEYS)
    assert s1 not in (l1, l2, l3)
    assert sorted(x["id"] for x in before["leases"]) == sorted([l1, l2, l3, s1])
    f = tmp_path / "cat.backup"
    assert ok(cli("backup", "--endpoint", c1.url, "-o", f)) == \
        f"backup: {n} keys at revision {rev} -> {f}\n".encode()
    assert snapshot(c1)["revision"] == rev  # nothing wrote meanwhile
    assert not os.path.exists(str(f) + ".tmp")
    assert stat.S_IMODE(os.stat(f).st_mode) == 0o600
    # the file: header, the leases, the items in key order, a sha256 trailer;
    # a backup is of the whole catalog: the session's keys and lease too
    data, header, trailer, lines = read_backup(f)
    assert header["format"] == "citrus-backup" and header["version"] == 1
    assert (header["revision"], header["count"], header["leases"]) == (rev, n, 4)
    assert trailer == {"sha256": hashlib.sha256(data[:data.rindex(b"\n", 0, -1) + 1]).hexdigest()}
    assert sorted(json.loads(x)["lease"]["id"] for x in lines[1:5]) == sorted([l1, l2, l3, s1])
    assert [json.loads(x) for x in lines[5:-2]] == before["items"]

    d2 = tmp_path / "restored" / "nested"
    assert ok(cli("restore", f, "--data-dir", d2)) == \
        f"restore: {n} keys at revision {rev} -> {d2}\n".encode()
    assert os.listdir(d2) == ["catalog.db"]
    c2 = make_citrus(data_dir=d2)
    after = snapshot(c2)
    # every user key, value, create/mod revision, version and lease
    assert user_items(after["items"]) == users
    # c2's session registered again under a lease of its own and released
    # the restored leader key of c1's lease (revoking that lease): the only
    # writes since the restored revision, which c2 measures once ready
    s2 = assert_session_keys(after["items"])
    assert s2 not in (l1, l2, l3, s1)
    rev2 = assert_only_session_writes_since(c2, rev)
    assert after["revision"] == rev2
    assert after["compact_revision"] == rev + 1  # history starts empty
    assert sorted((x["id"], x["ttl"]) for x in after["leases"]) == \
        sorted([(l1, 600), (l2, 300), (l3, 120), (s2, SESSION_TTL)])
    # the CLI sees the same catalog on both servers (the user keys; each
    # server lists its own session's keys)
    out1, out2 = ok(kv(c1, "ls")), ok(kv(c2, "ls"))
    assert strip_session_lines(out2, after["items"]) == strip_session_lines(out1, before["items"])
    j1 = json.loads(ok(kv(c1, "ls", "-o", "json")))
    j2 = json.loads(ok(kv(c2, "ls", "-o", "json")))
    assert (j1["revision"], j2["revision"]) == (rev, rev2)
    assert j1["more"] is False and j2["more"] is False and j1.keys() == j2.keys()
    assert user_items(j2["items"]) == user_items(j1["items"]) == users
    assert system_items(j2["items"]) == system_items(after["items"])
    for key in ("one/k005", "one/k035", "utf/naïve key ✓", "utf/big", "utf/empty"):
        assert ok(kv(c2, "get", key)) == http_get(c1, key).content
    fails(kv(c2, "get", "bulk/0/010"), 1, r"error: not_found: .+\n")
    # history before the restore is gone: a watch from there is compacted
    fails(kv(c2, "watch", "", "--from-revision", "1"), 1,
          rf"error: compacted: .+ \(compact_revision {rev + 1}\)\n")
    # leases work: keepalive renews to the full TTL
    for lid, ttl in ((l1, 600), (l2, 300), (l3, 120)):
        ka = requests.post(c2.url + f"/v1/leases/{lid}/keepalive")
        assert ka.status_code == 200 and ka.json() == {"id": lid, "ttl": ttl}, ka.text
    # the first write after the restore (and the session's writes) gets the
    # next revision, a key keeps its history
    assert ok(kv(c2, "put", "after/first", "x")) == put_line(rev2 + 1, rev2 + 1, 1)
    old = entry(c1, "one/k001")
    assert json.loads(ok(kv(c2, "put", "one/k001", "next", "-o", "json"))) == {
        "key": "one/k001", "revision": rev2 + 2, "create_revision": old["create_revision"],
        "mod_revision": rev2 + 2, "version": old["version"] + 1}
    # revoking a restored lease deletes exactly the keys attached to it, in one revision
    on_l2 = sorted(i["key"] for i in users if i["lease"] == l2)
    assert len(on_l2) >= 10
    assert requests.delete(c2.url + f"/v1/leases/{l2}").status_code == 200
    w = requests.get(c2.url + f"/v1/watch/?from_revision={rev2 + 3}&timeout=2s").json()
    assert sorted(e["key"] for e in w["events"]) == on_l2
    assert {(e["type"], e["mod_revision"]) for e in w["events"]} == {("delete", rev2 + 3)}
    final = snapshot(c2)["items"]
    left = {i["key"] for i in user_items(final)}
    expect = {i["key"] for i in users} - set(on_l2) | {"after/first"}
    assert left == expect
    assert system_items(final) == system_items(after["items"])  # the session's keys stay


def test_backup_under_write_load_is_one_revision(make_citrus, tmp_path):
    """A backup taken while 4 clients write holds exactly the state at its
    revision: every write up to it, none after it."""
    c = make_citrus()
    log = []  # (revision, key, value or None for a delete), every acknowledged write
    lock = threading.Lock()
    stop = threading.Event()

    errors = []

    def writer(w):
        try:
            write_until_stopped(w)
        except Exception as e:  # surfaced by the test, not lost in the thread
            errors.append(repr(e))

    def write_until_stopped(w):
        s = requests.Session()
        i = 0
        while not stop.is_set():
            key = f"cw/w{w}/k{i % 20}"
            if w == 0 and i % 5 == 4:
                r = s.delete(c.url + "/v1/kv/" + key)
                val = None
            else:
                val = f"{w}:{i}"
                r = s.put(c.url + "/v1/kv/" + key, data=val.encode())
            assert r.status_code == 200, r.text
            if val is None and r.json()["deleted"] == 0:
                i += 1
                continue  # deleting nothing makes no revision
            with lock:
                log.append((r.json()["revision"], key, val))
            i += 1

    r0 = store_rev(c)  # the session's registration and candidacy are done
    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: len(log) >= 100, 20, what="100 writes")
        f = tmp_path / "load.backup"
        r = cli("backup", "-o", f, "--endpoint", c.url)
        wait_until(lambda: len(log) >= 300, 20, what="writes after the backup")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []
    ok(r)
    _, header, _, lines = read_backup(f)
    rev = header["revision"]
    # every revision after r0 is ours
    assert sorted(x[0] for x in log) == list(range(r0 + 1, r0 + 1 + len(log)))
    assert r0 + 100 <= rev < r0 + len(log)  # writes before and after the backup
    state = {}
    for wrev, key, val in sorted(log):
        if wrev > rev:
            break
        if val is None:
            state.pop(key, None)
        else:
            state[key] = (val, wrev)
    # the one lease is the session's, and its keys are the only ones beside ours
    assert header["leases"] == 1
    lease = json.loads(lines[1])["lease"]["id"]
    items = [json.loads(x) for x in lines[2:-2]]
    assert header["count"] == len(items)
    assert assert_session_keys(items) == lease
    users = user_items(items)
    assert {i["key"]: (base64.b64decode(i["value"]).decode(), i["mod_revision"]) for i in users} \
        == state
    d = tmp_path / "restored"
    assert ok(cli("restore", f, "--data-dir", d)) == \
        f"restore: {len(items)} keys at revision {rev} -> {d}\n".encode()
    c2 = make_citrus(data_dir=d)
    after = snapshot(c2)
    assert user_items(after["items"]) == users
    assert assert_session_keys(after["items"]) != lease  # c2's own session
    # restored at rev: since then only c2's session wrote
    assert after["compact_revision"] == rev + 1
    assert assert_only_session_writes_since(c2, rev) == after["revision"]


def test_backup_replaces_file_and_never_leaves_partial_files(citrus, tmp_path):
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    f = tmp_path / "b.backup"
    http_put(citrus, "a", b"1")
    r1 = store_rev(citrus)
    # the counts include the session's two keys (a backup is of the whole catalog)
    assert ok(cli("backup", "-o", f, "--endpoint", citrus.url)) == \
        f"backup: {1 + len(SESSION_KEYS)} keys at revision {r1} -> {f}\n".encode()
    assert backup_keys(f) == sorted(["a"] + SESSION_KEYS)
    http_put(citrus, "b", b"2")
    assert ok(cli("backup", "--output", f, "--endpoint", citrus.url)) == \
        f"backup: {2 + len(SESSION_KEYS)} keys at revision {r1 + 1} -> {f}\n".encode()
    good = open(f, "rb").read()
    assert read_backup(f)[1]["revision"] == r1 + 1
    assert backup_keys(f) == sorted(["a", "b"] + SESSION_KEYS)
    assert os.listdir(tmp_path) == ["b.backup"]
    # unreachable endpoint: exit 1, no new file, no temp file, the old one untouched
    url = f"http://127.0.0.1:{free_port()}"
    new = tmp_path / "new.backup"
    fails(cli("backup", "-o", new, "--endpoint", url), 1,
          rf"backup: {re.escape(url)}/v1/snapshot\?reveal=true: .*[Cc]onnect.*\n")
    assert not new.exists() and not os.path.exists(str(new) + ".tmp")
    fails(cli("backup", "-o", f, "--endpoint", url), 1, r"backup: .*[Cc]onnect.*\n")
    assert open(f, "rb").read() == good and not os.path.exists(str(f) + ".tmp")
    # a server that answers with an error: the same
    fails(cli("backup", "-o", new, "--endpoint", citrus.url + "/nope"), 1,
          r"backup: server error: route_not_found: .*\n")
    assert not new.exists() and not os.path.exists(str(new) + ".tmp")
    # FILE is a directory: the temp file is written, the rename fails, the
    # temp file is removed
    d = tmp_path / "isdir.backup"
    d.mkdir()
    fails(cli("backup", "-o", d, "--endpoint", citrus.url), 1,
          rf"backup: cannot rename {re.escape(str(d))}\.tmp to {re.escape(str(d))}: .+\n")
    assert os.listdir(d) == [] and not os.path.exists(str(d) + ".tmp")
    assert sorted(os.listdir(tmp_path)) == ["b.backup", "isdir.backup"]
    # a directory that does not exist
    fails(cli("backup", "-o", tmp_path / "no" / "dir.backup", "--endpoint", citrus.url), 1,
          r"backup: cannot create .*dir\.backup\.tmp: No such file or directory\n")
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize("args,message", [
    ((), r"citrus backup: missing -o FILE\n.*"),
    (("-o",), r"citrus backup: missing value for -o\n.*"),
    (("-o", "f", "extra"), r"citrus backup: unexpected argument extra\n.*"),
    (("-o", "f", "--frob"), r"citrus backup: unknown option --frob\n.*"),
    (("-o", "f", "--endpoint", "ftp://x"), r"citrus backup: --endpoint must be .*ftp://x\n.*"),
])
def test_backup_usage_errors(tmp_path, args, message):
    fails(cli("backup", *args, env={"CITRUS_ENDPOINT": f"http://127.0.0.1:{free_port()}"},
              cwd=tmp_path), 2, message)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("args,message", [
    ((), r"citrus restore: missing backup FILE\n.*"),
    (("f",), r"citrus restore: missing --data-dir DIR\n.*"),
    (("f", "g", "--data-dir", "d"), r"citrus restore: unexpected argument g\n.*"),
    (("f", "--data-dir"), r"citrus restore: missing value for --data-dir\n.*"),
    (("f", "--data-dir", "d", "--frob"), r"citrus restore: unknown option --frob\n.*"),
])
def test_restore_usage_errors(tmp_path, args, message):
    (tmp_path / "f").write_bytes(b"")
    fails(cli("restore", *args, cwd=tmp_path), 2, message)
    assert os.listdir(tmp_path) == ["f"]


def small_backup(c, path):
    lid = grant(c, 600)
    fill_keys(c, [f"s/{i:02d}" for i in range(40)], lambda k: "value of " + k)
    http_put(c, "s/leased", b"\x00\xff", lease=lid)
    http_put(c, "s/ü", "ü".encode())
    ok(cli("backup", "-o", path, "--endpoint", c.url))
    return open(path, "rb").read()


def with_trailer(body):
    """body with a correct sha256 trailer (a damaged file that checks out)."""
    return body + json.dumps({"sha256": hashlib.sha256(body).hexdigest()},
                             separators=(",", ":")).encode() + b"\n"


def test_restore_refuses_damaged_files(citrus, tmp_path):
    good = small_backup(citrus, tmp_path / "good.backup")
    body = good[:good.rindex(b"\n", 0, -1) + 1]  # everything but the trailer
    header_end = good.index(b"\n") + 1
    mid = len(good) // 2
    lines = body.split(b"\n")[:-1]
    hdr = json.loads(lines[0])

    def flip(at):
        b = bytearray(good)
        b[at] ^= 0x01
        return bytes(b)

    wrong_hash = body + json.dumps({"sha256": hashlib.sha256(b"other").hexdigest()},
                                   separators=(",", ":")).encode() + b"\n"
    cases = {
        "flip-middle": flip(mid),
        "flip-header": flip(header_end // 2),
        "flip-last-item": flip(len(body) - 10),
        "flip-trailer": flip(len(good) - 10),
        "empty": b"",
        "cut-1": good[:1],
        "cut-in-header": good[:header_end - 1],
        "cut-after-header": good[:header_end],
        "cut-third": good[:len(good) // 3],
        "cut-middle": good[:mid],
        "cut-before-trailer": body,
        "cut-in-trailer": good[:len(good) - 20],
        "cut-last-newline": good[:-1],
        "wrong-checksum": wrong_hash,
        "no-trailer-hash": body + b'{"sha256":""}\n',
        "extra-line": good + b'{"sha256":"' + b"0" * 64 + b'"}\n',
        # damage that the checksum does not catch: the content checks do
        "count-mismatch": with_trailer(json.dumps(dict(hdr, count=hdr["count"] + 1), separators=(
            ",", ":")).encode() + b"\n" + b"".join(x + b"\n" for x in lines[1:])),
        "missing-item": with_trailer(b"".join(x + b"\n" for x in lines[:-1])),
        "not-a-backup": with_trailer(b'{"format":"other"}\n'),
    }
    assert len(set(cases.values())) == len(cases)
    for name, data in cases.items():
        bad = tmp_path / f"{name}.backup"
        bad.write_bytes(data)
        dest = tmp_path / f"dest-{name}"
        r = cli("restore", bad, "--data-dir", dest)
        assert r.rc == 1 and r.out == b"", (name, r)
        assert r.err.startswith(f"restore: {bad}") and r.err.endswith("\n"), (name, r)
        assert f"restore: {bad} is corrupt: " in r.err, (name, r)
        assert not dest.exists(), (name, os.listdir(dest))
    # an existing empty directory stays empty; standard input works the same
    dest = tmp_path / "empty-dir"
    dest.mkdir()
    fails(cli("restore", tmp_path / "flip-middle.backup", "--data-dir", dest), 1,
          r"restore: .* is corrupt: .+\n")
    fails(cli("restore", "-", "--data-dir", dest, input=cases["cut-middle"]), 1,
          r"restore: - is corrupt: .+\n")
    assert os.listdir(dest) == []
    # specific reasons
    fails(cli("restore", tmp_path / "empty.backup", "--data-dir", dest), 1,
          r"restore: .* is corrupt: file is empty\n")
    fails(cli("restore", tmp_path / "wrong-checksum.backup", "--data-dir", dest), 1,
          r"restore: .* is corrupt: sha256 mismatch.*\n")
    fails(cli("restore", tmp_path / "cut-before-trailer.backup", "--data-dir", dest), 1,
          r"restore: .* is corrupt: no sha256 trailer.*\n")
    # a file that does not exist
    missing = tmp_path / "missing.backup"
    fails(cli("restore", missing, "--data-dir", dest), 1,
          rf"restore: cannot open {re.escape(str(missing))}: No such file or directory\n")
    fails(cli("restore", missing, "--data-dir", tmp_path / "never"), 1, r"restore: cannot open.*")
    assert not (tmp_path / "never").exists()
    assert os.listdir(dest) == []
    # and the intact file restores (the refusals were about the damage)
    ok(cli("restore", "-", "--data-dir", dest, input=good))
    assert os.listdir(dest) == ["catalog.db"]


def dir_state(d):
    return {name: hashlib.sha256(open(os.path.join(d, name), "rb").read()).hexdigest()
            for name in sorted(os.listdir(d)) if os.path.isfile(os.path.join(d, name))}


def test_restore_never_overwrites_a_catalog(make_citrus, tmp_path):
    c = make_citrus()
    backup = tmp_path / "other.backup"
    small_backup(make_citrus(), backup)
    http_put(c, "mine", b"original")
    http_put(c, "mine", b"original 2")
    rev = store_rev(c)
    before = snapshot(c)
    old_lease = assert_session_keys(before["items"])
    assert c.stop() == 0
    state = dir_state(c.data_dir)
    assert "catalog.db" in state
    fails(cli("restore", backup, "--data-dir", c.data_dir), 1,
          r"restore: .*catalog\.db already exists; refusing to overwrite a catalog.*\n")
    assert dir_state(c.data_dir) == state
    c.start()
    # the user keys are as they were; the revision moved only by the session:
    # the stop released the old session lease, the restart registered and
    # campaigned again under a new one
    after = snapshot(c)
    assert user_items(after["items"]) == user_items(before["items"])
    new_lease = assert_session_keys(after["items"])
    assert [x["id"] for x in after["leases"]] == [new_lease] and new_lease != old_lease
    assert assert_only_session_writes_since(c, rev) == after["revision"]
    assert ok(kv(c, "get", "mine")) == b"original 2"
    # a stale write-ahead log alone is refused too (it would be replayed)
    d = tmp_path / "wal-only"
    d.mkdir()
    (d / "catalog.db-wal").write_bytes(b"stale")
    fails(cli("restore", backup, "--data-dir", d), 1,
          r"restore: .*catalog\.db-wal already exists; refusing.*\n")
    assert dir_state(d) == {"catalog.db-wal": hashlib.sha256(b"stale").hexdigest()}
    # --data-dir naming a file
    f = tmp_path / "a-file"
    f.write_bytes(b"x")
    fails(cli("restore", backup, "--data-dir", f), 1, r"restore: cannot create directory .*\n")
    assert f.read_bytes() == b"x"
