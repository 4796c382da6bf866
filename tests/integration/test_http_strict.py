"""Strict HTTP (issue 13, item 9): each attack as a raw-socket case.

libmicrohttpd 0.9.75 alone accepted two Content-Length headers (the second
body ran as a smuggled request), Content-Length with Transfer-Encoding, a raw
NUL in the path (/v1/kv/a<NUL>zzz became key "a"), a raw space, control
characters and obsolete line folding; a header line every few seconds kept a
connection (and, on the router, its thread) forever; a form-encoded
cross-origin POST took effect; any Host was accepted under auth none. Each
test below sends the attack and checks it is refused and changed nothing.
"""
import socket
import subprocess
import threading
import time

import requests

from conftest import CITRUS_BIN, liveness, wait_until


def hostport(url):
    host, port = url.rsplit("//", 1)[1].rsplit(":", 1)
    return host, int(port)


def connect(url, source="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((source, 0))
    s.connect(hostport(url))
    return s


def exchange(url, data, wait=3.0):
    """Sends data on a new connection; everything read until the server
    closes it (closed=True) or wait seconds pass with nothing more."""
    s = connect(url)
    s.sendall(data)
    s.settimeout(wait)
    out, closed = b"", False
    try:
        while True:
            b = s.recv(65536)
            if not b:
                closed = True
                break
            out += b
    except socket.timeout:
        pass
    except ConnectionResetError:
        closed = True
    s.close()
    return out, closed


def refused_400(url, data):
    out, closed = exchange(url, data)
    assert out.startswith(b"HTTP/1.1 400 "), out
    assert out.count(b"HTTP/1.1") == 1, out  # nothing after it was served
    assert b"malformed request" in out, out
    assert closed, "the connection stays open after a framing error"
    return out


HOST = b"Host: 127.0.0.1\r\n"


def test_two_content_lengths_smuggle_nothing(citrus):
    smuggled = b"PUT /v1/kv/smuggled HTTP/1.1\r\n" + HOST + b"Content-Length: 1\r\n\r\nx"
    body = b"{}" + smuggled
    req = (b"POST /v1/txn HTTP/1.1\r\n" + HOST + b"Content-Type: application/json\r\n"
           b"Content-Length: 2\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    out = refused_400(citrus.url, req)
    assert b"more than one Content-Length" in out
    assert requests.get(citrus.url + "/v1/kv/smuggled").status_code == 404


def test_content_length_with_transfer_encoding(citrus):
    smuggled = b"PUT /v1/kv/smuggled2 HTTP/1.1\r\n" + HOST + b"Content-Length: 1\r\n\r\nx"
    req = (b"POST /v1/txn HTTP/1.1\r\n" + HOST + b"Content-Type: application/json\r\n"
           b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled)
    out = refused_400(citrus.url, req)
    assert b"both Content-Length and Transfer-Encoding" in out
    req = (b"POST /v1/txn HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: gzip\r\n\r\n")
    refused_400(citrus.url, req)
    assert requests.get(citrus.url + "/v1/kv/smuggled2").status_code == 404


def test_nul_space_and_control_in_target(citrus):
    assert requests.put(citrus.url + "/v1/kv/a", data=b"keep").status_code == 200
    # /v1/kv/a<NUL>zzz became key "a": refused, "a" untouched
    out = refused_400(citrus.url, b"PUT /v1/kv/a\x00zzz HTTP/1.1\r\n" + HOST +
                      b"Content-Length: 3\r\n\r\nnew")
    assert b"NUL in the request target" in out
    refused_400(citrus.url, b"GET /v1/kv/a b HTTP/1.1\r\n" + HOST + b"\r\n")
    refused_400(citrus.url, b"GET /v1/kv/a\x01b HTTP/1.1\r\n" + HOST + b"\r\n")
    refused_400(citrus.url, b"GET /v1/kv/a\x7f HTTP/1.1\r\n" + HOST + b"\r\n")
    refused_400(citrus.url, b"GET /v1/kv/a\tb HTTP/1.1\r\n" + HOST + b"\r\n")
    assert requests.get(citrus.url + "/v1/kv/a").content == b"keep"
    # an escaped space or NUL is data, as before
    out, _ = exchange(citrus.url, b"GET /v1/kv/a%20b HTTP/1.1\r\n" + HOST +
                      b"Connection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 404 "), out


def test_header_nul_control_and_obs_fold(citrus):
    live = b"GET /health/live HTTP/1.1\r\n" + HOST
    refused_400(citrus.url, live + b"X-A: a\r\n b\r\n\r\n")       # obs-fold
    refused_400(citrus.url, live + b"X-A: a\r\n\tb\r\n\r\n")      # obs-fold with a tab
    refused_400(citrus.url, live + b"X-A: a\x00b\r\nX-B: c\r\n\r\n")
    refused_400(citrus.url, live + b"X-A: a\x00b\r\n\r\n")
    refused_400(citrus.url, live + b"X-A: ab\x00\r\n\r\n")
    refused_400(citrus.url, live + b"X-A: a\x01b\r\n\r\n")
    refused_400(citrus.url, live + b"X A: b\r\n\r\n")              # not a token
    # well-formed heads still pass: bare LF line ends, empty values, tabs
    out, _ = exchange(citrus.url, b"GET /health/live HTTP/1.1\nHost: 127.0.0.1\nX-A:\n"
                      b"X-B: \tc d\t\nConnection: close\n\n")
    assert out.startswith(b"HTTP/1.1 200 "), out


def slowloris(url, source, stop, lines_every=0.3):
    """A connection sending a header line every lines_every seconds; returns
    (socket, closed-event) and runs until the server closes it or stop."""
    s = connect(url, source)
    closed = threading.Event()

    def run():
        try:
            s.sendall(b"GET /health/live HTTP/1.1\r\n" + HOST)
            i = 0
            while not stop.is_set():
                s.sendall(b"X-%d: %s\r\n" % (i, b"y" * 10))
                i += 1
                s.settimeout(lines_every)
                try:
                    if s.recv(4096) == b"":
                        break
                except socket.timeout:
                    pass
        except OSError:
            pass
        closed.set()
    threading.Thread(target=run, daemon=True).start()
    return s, closed


def test_slow_headers_cut_at_the_deadline(make_citrus):
    c = make_citrus(extra=["--header-timeout", "1500"])
    for url in (c.url, c.router_url):
        stop = threading.Event()
        start = time.monotonic()
        s, closed = slowloris(url, "127.0.0.1", stop)
        try:
            assert closed.wait(liveness(6)), f"{url}: a header line every 0.3 s kept it open"
            took = time.monotonic() - start
            assert took >= 1.2, f"{url}: cut after {took:.2f}s, before the deadline"
        finally:
            stop.set()
            s.close()
    metrics = requests.get(c.url + "/metrics").text
    for server in ("api", "router"):
        assert f'citrus_http_header_timeouts_total{{server="{server}"}} ' in metrics, metrics
    # an idle keep-alive connection is closed at the deadline as well
    s = connect(c.router_url)
    s.sendall(b"GET /health/live HTTP/1.1\r\n" + HOST + b"\r\n")
    s.settimeout(liveness(6))
    first = s.recv(65536)
    assert first.startswith(b"HTTP/1.1 200 "), first
    rest = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        rest += b
    assert rest == b""
    s.close()


def test_slowloris_does_not_starve_the_router(make_citrus):
    """16 slow connections from one address against a router serving 16
    connections: the per-address limit (8) keeps the other clients served,
    /health/live answers at once, queries run; without it the 16 held every
    slot (a thread each) until the deadline."""
    c = make_citrus(shards=True, extra=["--header-timeout", "3000", "--max-conns-per-ip", "8",
                                        "--router-max-connections", "16"])
    stop = threading.Event()
    conns = [slowloris(c.router_url, "127.0.0.2", stop, lines_every=0.5) for _ in range(16)]
    try:
        # the ones past the limit are closed at once; 8 stay
        wait_until(lambda: sum(cl.is_set() for _, cl in conns) >= 8, liveness(2),
                   what="connections past the per-address limit closed")
        time.sleep(0.2)
        assert sum(not cl.is_set() for _, cl in conns) == 8
        t0 = time.monotonic()
        r = requests.get(c.router_url + "/health/live", timeout=2)
        assert r.status_code == 200
        r = requests.get(c.url + "/health/live", timeout=2)
        assert r.status_code == 200
        r = requests.post(c.router_url + "/v1/query", json={"key": "t1", "sql": "SELECT 1"},
                          timeout=2)
        assert r.status_code == 200, r.text
        assert time.monotonic() - t0 < liveness(2)
    finally:
        stop.set()
        for s, _ in conns:
            s.close()


def test_per_address_connection_limit(make_citrus):
    c = make_citrus(extra=["--max-conns-per-ip", "4"])
    for url in (c.url, c.router_url):
        held = [connect(url, "127.0.0.3") for _ in range(4)]
        extra = connect(url, "127.0.0.3")
        extra.sendall(b"GET /health/live HTTP/1.1\r\n" + HOST + b"\r\n")
        extra.settimeout(liveness(3))
        try:
            got = extra.recv(4096)
        except ConnectionResetError:
            got = b""
        assert got == b"", f"{url}: a fifth connection from one address was served: {got!r}"
        # another address is served meanwhile
        assert requests.get(url + "/health/live", timeout=2).status_code == 200
        for s in held + [extra]:
            s.close()


def shard_state(c, sid):
    return requests.get(f"{c.url}/v1/shards/{sid}").json()["state"]


def test_cross_origin_post_changes_nothing(make_citrus):
    c = make_citrus(shards=True)
    sid = requests.get(c.url + "/v1/shards").json()["shards"][0]["id"]
    assert shard_state(c, sid) == "active"
    path = f"/v1/shards/{sid}/read-only".encode()
    # what a page's <form method=post> sends, with and without an Origin
    for extra in (b"Origin: https://evil.example\r\n", b"", b"Origin: null\r\n"):
        for ctype in (b"application/x-www-form-urlencoded", b"text/plain",
                      b"multipart/form-data; boundary=x"):
            out, _ = exchange(c.url, b"POST " + path + b" HTTP/1.1\r\n" + HOST + extra +
                              b"Content-Type: " + ctype + b"\r\nContent-Length: 3\r\n"
                              b"Connection: close\r\n\r\na=b")
            assert out.startswith(b"HTTP/1.1 403 "), out
            assert b'"cross_origin"' in out, out
    # fetch(url, {method: "POST", mode: "no-cors"}) sends no body and no type, with an Origin
    r = requests.post(c.url + path.decode(), headers={"Origin": "https://evil.example"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "cross_origin"
    assert shard_state(c, sid) == "active"
    # the CLI still does it (its POSTs say application/json)
    p = subprocess.run([CITRUS_BIN, "shard", "read-only", sid, "--endpoint", c.url],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert shard_state(c, sid) == "read_only"


def test_cors_preflight_only_for_allowed_origins(make_citrus):
    good = "https://app.example"
    c = make_citrus(extra=["--cors-allowed-origins", good + ",http://localhost:3000"])
    pre = {"Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "content-type"}
    r = requests.options(c.url + "/v1/kv/x", headers={"Origin": good, **pre})
    assert r.status_code == 204, r.text
    assert r.headers["Access-Control-Allow-Origin"] == good
    assert "PUT" in r.headers["Access-Control-Allow-Methods"]
    r = requests.options(c.url + "/v1/kv/x", headers={"Origin": "https://evil.example", **pre})
    assert r.status_code == 403 and r.json()["error"]["code"] == "cross_origin"
    assert "Access-Control-Allow-Origin" not in r.headers
    # a prefix of an allowed origin is not allowed
    r = requests.options(c.url + "/v1/kv/x", headers={"Origin": "https://app.exampl", **pre})
    assert r.status_code == 403
    # the allowed origin's request itself is served
    r = requests.put(c.url + "/v1/kv/x", data=b"v", headers={"Origin": good})
    assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] == good
    r = requests.put(c.url + "/v1/kv/y", data=b"v", headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    assert requests.get(c.url + "/v1/kv/y").status_code == 404


def test_host_must_be_loopback_under_auth_none(make_citrus):
    c = make_citrus()  # citrus dev: auth none
    for host in (b"evil.example", b"evil.example:80", b"10.0.0.1", b"localhost.evil.example"):
        out, _ = exchange(c.url, b"GET /v1/kv/a HTTP/1.1\r\nHost: " + host +
                          b"\r\nConnection: close\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 403 ") and b"cross_origin" in out, (host, out)
    for host in (b"localhost", b"LOCALHOST:1", b"127.0.0.1:9", b"127.1.2.3", b"[::1]:8081"):
        out, _ = exchange(c.url, b"GET /health/live HTTP/1.1\r\nHost: " + host +
                          b"\r\nConnection: close\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 200 "), (host, out)
    # with credentials required, any Host is fine
    k = make_citrus(extra=["--auth", "api_key"])
    out, _ = exchange(k.url, b"GET /health/live HTTP/1.1\r\nHost: citrus.internal\r\n"
                      b"Connection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200 "), out


def test_raw_put_from_curl_still_works(citrus):
    # curl -d sends Content-Type: application/x-www-form-urlencoded; a PUT
    # needs a preflight from a browser, so any type is taken as raw bytes
    p = subprocess.run(["curl", "-sS", "-X", "PUT", "--data-binary", "raw value",
                        citrus.url + "/v1/kv/curl"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and '"revision"' in p.stdout, p.stdout + p.stderr
    assert requests.get(citrus.url + "/v1/kv/curl").content == b"raw value"
    p = subprocess.run([CITRUS_BIN, "kv", "put", "cli", "v", "--endpoint", citrus.url],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
