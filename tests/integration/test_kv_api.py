"""The KV REST API of `citrus dev`: happy paths and every bad input."""
import base64
import json
import re
import subprocess

import requests

from conftest import wait_until


def b64(s):
    return base64.b64encode(s if isinstance(s, bytes) else s.encode()).decode()


def err(resp, status, code):
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]
    return body["error"]


def test_put_get_revisions(citrus):
    u = citrus.url
    r1 = requests.put(u + "/v1/kv/app/db/url", data=b"postgres://a")
    assert r1.status_code == 200
    j1 = r1.json()
    assert j1["key"] == "app/db/url"
    assert j1["version"] == 1 and j1["create_revision"] == j1["mod_revision"] == j1["revision"]
    r2 = requests.put(u + "/v1/kv/app/db/url", data=b"postgres://b").json()
    assert r2["revision"] == j1["revision"] + 1
    assert r2["version"] == 2 and r2["create_revision"] == j1["create_revision"]
    g = requests.get(u + "/v1/kv/app/db/url")
    assert g.status_code == 200 and g.content == b"postgres://b"
    assert g.headers["X-Citrus-Mod-Revision"] == str(r2["mod_revision"])
    assert g.headers["X-Citrus-Create-Revision"] == str(j1["create_revision"])
    assert g.headers["X-Citrus-Version"] == "2"
    assert int(g.headers["X-Citrus-Revision"]) >= r2["revision"]
    assert g.headers["X-Citrus-Consistency"] in ("strong", "bounded")
    js = requests.get(u + "/v1/kv/app/db/url?format=json").json()
    assert base64.b64decode(js["value"]) == b"postgres://b" and js["version"] == 2


def test_binary_and_empty_values(citrus):
    blob = bytes(range(256)) * 10
    assert requests.put(citrus.url + "/v1/kv/bin", data=blob).status_code == 200
    assert requests.get(citrus.url + "/v1/kv/bin").content == blob
    assert requests.put(citrus.url + "/v1/kv/empty", data=b"").status_code == 200
    g = requests.get(citrus.url + "/v1/kv/empty")
    assert g.status_code == 200 and g.content == b""


def test_get_absent_is_json_404(citrus):
    err(requests.get(citrus.url + "/v1/kv/nope"), 404, "not_found")


def test_cas(citrus):
    u = citrus.url + "/v1/kv/cfg"
    assert requests.put(u + "?cas=0", data=b"1").status_code == 200
    e = err(requests.put(u + "?cas=0", data=b"2"), 409, "compare_failed")
    mod = e["mod_revision"]
    assert mod > 0
    err(requests.put(u + f"?cas={mod + 100}", data=b"2"), 409, "compare_failed")
    ok = requests.put(u + f"?cas={mod}", data=b"2")
    assert ok.status_code == 200
    assert requests.get(u).content == b"2"
    e = err(requests.delete(u + f"?cas={mod}"), 409, "compare_failed")
    assert e["mod_revision"] == ok.json()["mod_revision"]
    d = requests.delete(u + f"?cas={ok.json()['mod_revision']}").json()
    assert d["deleted"] == 1


def test_prefix_listing_and_pagination(citrus):
    u = citrus.url
    keys = [f"svc/k{i:03d}" for i in range(25)] + ["svc2/x", "sv"]
    for k in keys:
        assert requests.put(u + "/v1/kv/" + k, data=k.encode()).status_code == 200
    full = requests.get(u + "/v1/kv/svc/?prefix=true").json()
    assert [i["key"] for i in full["items"]] == sorted(k for k in keys if k.startswith("svc/"))
    assert full["more"] is False
    assert base64.b64decode(full["items"][0]["value"]) == b"svc/k000"
    seen, after = [], None
    while True:
        q = "?prefix=true&limit=10" + (f"&after={after}" if after else "")
        page = requests.get(u + "/v1/kv/svc/" + q).json()
        seen += [i["key"] for i in page["items"]]
        if not page["more"]:
            break
        after = page["items"][-1]["key"]
    assert seen == [i["key"] for i in full["items"]]
    ko = requests.get(u + "/v1/kv/svc?prefix=true&keys_only=true").json()
    assert len(ko["items"]) == 26 and "value" not in ko["items"][0]
    # count_only: how many, no items; after narrows it, limit does not
    for prefix, extra, n in (("svc", {}, 26), ("svc/", {}, 25), ("svc/", {"after": "svc/k019"}, 5),
                             ("svc/", {"limit": 2}, 25), ("nothing/", {}, 0)):
        for level in ("strong", "bounded"):
            c = requests.get(u + "/v1/kv/" + prefix, params={
                "prefix": "true", "count_only": "true", "consistency": level, **extra}).json()
            assert c["count"] == n and "items" not in c and c["revision"] > 0, (prefix, level, c)
    err(requests.get(u + "/v1/kv/svc/?prefix=true&count_only=maybe"), 400, "invalid_argument")
    everything = requests.get(u + "/v1/kv/?prefix=true").json()
    user = [i["key"] for i in everything["items"] if not i["key"].startswith("citrus/")]
    assert user == sorted(keys)
    # the rest is the node's own registration and the controller leader key
    system = {i["key"] for i in everything["items"]} - set(user)
    assert system == {"citrus/controller/leader", "citrus/nodes/node1"}


def test_delete_key_and_prefix(citrus):
    u = citrus.url
    for k in ("d/a", "d/b", "d/c/e", "dd"):
        requests.put(u + "/v1/kv/" + k, data=b"x")
    before = requests.get(u + "/v1/kv/?prefix=true").json()["revision"]
    r = requests.delete(u + "/v1/kv/d/?prefix=true").json()
    assert r["deleted"] == 3 and r["revision"] == before + 1
    assert requests.get(u + "/v1/kv/dd").status_code == 200
    none = requests.delete(u + "/v1/kv/absent").json()
    assert none["deleted"] == 0 and none["revision"] == before + 1


def test_txn(citrus):
    u = citrus.url
    body = {"compare": [{"key": "t/a", "target": "exists", "exists": False}],
            "success": [{"op": "put", "key": "t/a", "value": "1"},
                        {"op": "put", "key": "t/b", "value_b64": b64(b"\x00\x01")},
                        {"op": "get", "key": "t/", "prefix": True}],
            "failure": [{"op": "get", "key": "t/a"}]}
    r = requests.post(u + "/v1/txn", json=body).json()
    assert r["succeeded"] is True
    assert [x["op"] for x in r["results"]] == ["put", "put", "get"]
    assert r["results"][0]["mod_revision"] == r["results"][1]["mod_revision"] == r["revision"]
    assert [i["key"] for i in r["results"][2]["items"]] == ["t/a", "t/b"]
    r2 = requests.post(u + "/v1/txn", json=body).json()
    assert r2["succeeded"] is False and r2["revision"] == r["revision"]
    assert base64.b64decode(r2["results"][0]["items"][0]["value"]) == b"1"
    cmp = {"compare": [{"key": "t/a", "target": "value", "op": "eq", "value": "1"},
                       {"key": "t/a", "target": "version", "op": "lt", "number": 2},
                       {"key": "t/b", "target": "mod_revision", "op": "gt", "number": 0}],
           "success": [{"op": "delete", "key": "t/", "prefix": True}]}
    r3 = requests.post(u + "/v1/txn", json=cmp).json()
    assert r3["succeeded"] and r3["results"][0]["deleted"] == 2


def test_txn_atomic_on_error(citrus):
    u = citrus.url
    rev = requests.put(u + "/v1/kv/atom", data=b"0").json()["revision"]
    body = {"success": [{"op": "put", "key": "atom", "value": "1"},
                        {"op": "put", "key": "atom2", "value": "1", "lease": 999999}]}
    err(requests.post(u + "/v1/txn", json=body), 404, "lease_not_found")
    assert requests.get(u + "/v1/kv/atom").content == b"0"
    assert requests.get(u + "/v1/kv/atom2").status_code == 404
    assert int(requests.get(u + "/v1/kv/atom").headers["X-Citrus-Revision"]) == rev


def test_txn_bad_inputs(citrus):
    u = citrus.url + "/v1/txn"
    hdr = {"Content-Type": "application/json"}
    err(requests.post(u, data="{", headers=hdr), 400, "bad_json")
    err(requests.post(u, data="[]", headers=hdr), 400, "bad_json")
    err(requests.post(u, data="", headers=hdr), 400, "bad_json")
    err(requests.post(u, json={"compare": "x"}), 400, "bad_json")
    err(requests.post(u, json={"extra": []}), 400, "bad_json")
    err(requests.post(u, json={"success": [{"op": "frob", "key": "a"}]}), 400, "bad_json")
    err(requests.post(u, json={"success": [{"op": "put"}]}), 400, "bad_json")
    err(requests.post(u, json={"success": [{"op": "put", "key": "a", "value": 5}]}), 400,
        "bad_json")
    err(requests.post(u, json={"success": [{"op": "put", "key": "a", "value_b64": "!!"}]}), 400,
        "bad_json")
    err(requests.post(u, json={"success": [{"op": "put", "key": "/a", "value": ""}]}), 400,
        "invalid_key")
    err(requests.post(u, json={"compare": [{"key": "a", "target": "colour"}]}), 400, "bad_json")
    err(requests.post(u, json={"compare": [{"key": "a", "target": "version", "op": "le",
                                             "number": 1}]}), 400, "bad_json")
    err(requests.post(u, json={"compare": [{"key": "a", "target": "version"}]}), 400, "bad_json")
    err(requests.post(u, json={"success": [{"op": "get", "key": "a"}] * 129}), 400, "too_many")
    e = err(requests.post(u, json={"success": [{"op": "put", "key": "a", "value": "1"},
                                                {"op": "delete", "key": "a"}]}),
            400, "invalid_argument")
    assert "twice" in e["message"]
    # a POST is JSON or nothing: a form or text is what a page may send cross-site without a
    # preflight (docs/security.md), 403; another type only a program sends, 415
    for ctype in ("text/plain", "Text/Plain; charset=utf-8", "multipart/form-data; boundary=x",
                  "application/x-www-form-urlencoded"):
        err(requests.post(u, data='{"success":[]}', headers={"Content-Type": ctype}), 403,
            "cross_origin")
    for ctype in ("application/xml", "text/plainx", "application/jsonx", "text/csv"):
        err(requests.post(u, data='{"success":[]}', headers={"Content-Type": ctype}), 415,
            "unsupported_media_type")
    err(requests.put(citrus.url + "/v1/tenants/t", data='{}',
                     headers={"Content-Type": "text/plain"}), 415, "unsupported_media_type")
    # nothing above changed the store
    assert requests.get(citrus.url + "/v1/kv/a").status_code == 404


def test_invalid_keys(citrus):
    u = citrus.url + "/v1/kv/"
    # dots are percent-encoded: HTTP clients remove literal dot segments
    for bad in ["a//b", "a/%2E/b", "a/%2E%2E/b", "a/", "a%00b", "a%01b", "%ff%fe", "x" * 1025]:
        err(requests.put(u + bad, data=b"v"), 400, "invalid_key")
        err(requests.get(u + bad), 400, "invalid_key")
    err(requests.put(u, data=b"v"), 400, "invalid_key")
    assert requests.put(u + "x" * 1024, data=b"v").status_code == 200
    assert requests.put(u + "caf%C3%A9/%E2%82%AC", data=b"v").status_code == 200
    assert requests.get(u + "caf\u00e9/\u20ac").content == b"v"
    nul = err(requests.get(u + "a%00b"), 400, "invalid_key")
    assert "NUL" in nul["message"]


def test_bad_query_arguments(citrus):
    u = citrus.url + "/v1/kv/"
    err(requests.put(u + "k?cas=abc", data=b"v"), 400, "invalid_argument")
    err(requests.put(u + "k?cas=-1", data=b"v"), 400, "invalid_argument")
    err(requests.put(u + "k?lease=x", data=b"v"), 400, "invalid_argument")
    err(requests.get(u + "k?consistency=maybe"), 400, "invalid_argument")
    err(requests.get(u + "k?prefix=perhaps"), 400, "invalid_argument")
    err(requests.get(u + "k?prefix=true&limit=-3"), 400, "invalid_argument")
    err(requests.get(u + "k?format=xml"), 400, "invalid_argument")
    err(requests.delete(u + "k?prefix=true&cas=1"), 400, "invalid_argument")
    err(requests.put(u + "k?lease=12345", data=b"v"), 404, "lease_not_found")
    assert requests.get(u + "k").status_code == 404


def test_strong_and_bounded_reads(citrus):
    requests.put(citrus.url + "/v1/kv/c", data=b"v")
    for level in ("strong", "bounded", "any"):
        g = requests.get(citrus.url + f"/v1/kv/c?consistency={level}")
        assert g.status_code == 200 and g.content == b"v"
        # the embedded store answers every level from its committed state
        assert g.headers["X-Citrus-Consistency"] == "strong"
        assert g.headers["X-Citrus-Staleness-Ms"] == "0"


def test_routing_errors(citrus):
    u = citrus.url
    err(requests.get(u + "/v2/nothing"), 404, "route_not_found")
    r = requests.post(u + "/v1/kv/a", data=b"x")
    err(r, 405, "method_not_allowed")
    assert set(r.headers["Allow"].split(", ")) == {"GET", "PUT", "DELETE"}
    r = requests.put(u + "/v1/txn", json={})
    err(r, 405, "method_not_allowed")
    assert r.headers["Allow"] == "POST"


def test_body_limits(citrus):
    u = citrus.url
    big = b"x" * (1024 * 1024 + 1)
    err(requests.put(u + "/v1/kv/big", data=big), 413, "body_too_large")
    ok = b"x" * (1024 * 1024)
    assert requests.put(u + "/v1/kv/big", data=ok).status_code == 200
    assert len(requests.get(u + "/v1/kv/big").content) == 1024 * 1024

    def chunks():
        for _ in range(17):
            yield b"y" * 65536

    err(requests.put(u + "/v1/kv/chunked", data=chunks()), 413, "body_too_large")
    assert requests.get(u + "/v1/kv/chunked").status_code == 404
    # curl sends Expect: 100-continue for large bodies and gets 413 before uploading
    out = subprocess.run(["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "-X", "PUT",
                          "-H", "Expect: 100-continue", "--data-binary", "@-",
                          u + "/v1/kv/viacurl"], input=b"z" * (2 * 1024 * 1024),
                         capture_output=True, timeout=30)
    body, code = out.stdout.rsplit(b"\n", 1)
    assert code == b"413" and json.loads(body)["error"]["code"] == "body_too_large"
    assert requests.get(u + "/v1/kv/viacurl").status_code == 404


def test_value_limit_configurable(make_citrus):
    c = make_citrus(extra=["--max-value-bytes", "1000"])
    err(requests.put(c.url + "/v1/kv/v", data=b"x" * 1001), 400, "value_too_large")
    assert requests.put(c.url + "/v1/kv/v", data=b"x" * 1000).status_code == 200
    err(requests.post(c.url + "/v1/txn", json={"success": [
        {"op": "put", "key": "w", "value": "y" * 1001}]}), 400, "value_too_large")


def test_correlation_ids(citrus):
    u = citrus.url
    r = requests.get(u + "/v1/kv/x", headers={"X-Correlation-Id": "abc-123"})
    assert r.headers["X-Correlation-Id"] == "abc-123"
    gen = [requests.get(u + "/v1/kv/x").headers["X-Correlation-Id"] for _ in range(40)]
    v4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
    assert all(v4.match(g) for g in gen), gen
    assert len(set(gen)) == len(gen)  # across refills of the random buffer too
    err(requests.get(u + "/v1/kv/x", headers={"X-Correlation-Id": "bad id!"}), 400,
        "invalid_argument")
    requests.put(u + "/v1/kv/y", data=b"1", headers={"X-Correlation-Id": "trace-put-1"})
    # the access line is written once the answer is sent: poll for it
    lines = wait_until(lambda: [l for l in citrus.log_lines()
                                if l.get("correlation_id") == "trace-put-1"], 5,
                       what="the request's log line")
    assert all(l["msg"] and l["ts"] and l["level"] and l["component"] for l in lines)


def test_logs_are_json_lines(citrus):
    requests.get(citrus.url + "/v1/kv/x")
    with open(citrus.stdout_path) as f:
        raw = [l for l in f.read().splitlines() if l.strip()]
    assert raw
    for line in raw:
        obj = json.loads(line)
        assert set(obj) >= {"ts", "level", "msg", "component", "correlation_id", "fields"}


def test_metrics(citrus):
    u = citrus.url
    requests.put(u + "/v1/kv/m", data=b"1")
    requests.get(u + "/v1/kv/m")
    requests.get(u + "/v1/kv/absent")
    # A request is counted when its connection reports it complete, which may
    # come just after the client has read the answer: poll.
    want = 'citrus_http_requests_total{route="/v1/kv/{key*}",method="GET",status="404"} 1'
    text = wait_until(lambda: (lambda t: t if want in t else None)(requests.get(u + "/metrics").text),
                      what="the 404 counted")
    assert '# TYPE citrus_http_requests_total counter' in text
    assert 'citrus_http_request_duration_seconds_bucket{route="/v1/kv/{key*}",method="PUT",le="+Inf"}' in text
    assert 'citrus_store_ops_total{op="txn",result="ok"}' in text


def test_health(citrus):
    live = requests.get(citrus.url + "/health/live")
    assert live.status_code == 200 and live.json()["status"] == "ok"
    ready = requests.get(citrus.url + "/health/ready")
    assert ready.status_code == 200
    j = ready.json()
    assert j["status"] == "ready" and j["catalog"]["backend"] == "embedded"
    assert j["catalog"]["writable"] is True
    # the embedded store is one member that leads itself
    assert j["catalog"]["leader"] == "embedded" and j["catalog"]["quorum"] is True
    assert j["catalog"]["members"] == 1 and j["catalog"]["healthy"] == 1
    assert j["cache"]["lag_ms"] == 0 and j["cache"]["revision"] == j["catalog"]["revision"]
    assert j["node_id"] == "node1" and j["registered"] is True


def test_header_limit_is_json_431(make_citrus):
    c = make_citrus(extra=["--max-header-bytes", "8192"])
    e = err(requests.get(c.url + "/v1/kv/a", headers={"X-Big": "x" * 9000}), 431,
            "headers_too_large")
    assert "8192" in e["message"]
    err(requests.get(c.url + "/v1/kv/a?q=" + "y" * 9000), 431, "headers_too_large")
    # well past the limit it is still our JSON, not libmicrohttpd's page: its
    # pool (limit + 16 KiB, zeroed per request) holds the whole header block
    err(requests.get(c.url + "/v1/kv/a", headers={"X-Big": "x" * 18000}), 431,
        "headers_too_large")
    assert requests.get(c.url + "/v1/kv/a", headers={"X-Ok": "x" * 4000}).status_code == 404


def test_connection_limit_and_idle_timeout(make_citrus):
    import socket
    import time
    # one pool thread: libmicrohttpd splits the connection limit across its threads
    c = make_citrus(extra=["--max-connections", "3", "--idle-timeout", "2", "--threads", "1"])
    req = b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    held = []
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", c.port))
        s.settimeout(5)
        s.sendall(req)
        assert s.recv(12) == b"HTTP/1.1 200"
        held.append(s)
    extra = socket.create_connection(("127.0.0.1", c.port))  # queued by the kernel
    extra.settimeout(1.0)
    extra.sendall(req)
    t0 = time.monotonic()
    try:
        early = extra.recv(12)
    except socket.timeout:
        early = None
    assert early is None, "a 4th connection was served while 3 were open"
    # the idle timeout closes the held connections; then the 4th is served
    for s in held:
        s.settimeout(10)
        while s.recv(4096):
            pass
    extra.settimeout(10)
    assert extra.recv(12) == b"HTTP/1.1 200"
    assert time.monotonic() - t0 < 8


def test_listing_pages_are_capped(citrus):
    s = requests.Session()
    for batch in range(80):  # 10240 keys, 128 per txn
        body = {"success": [{"op": "put", "key": f"cap/k{batch:03d}{i:03d}", "value": "v"}
                            for i in range(128)]}
        assert s.post(citrus.url + "/v1/txn", json=body).status_code == 200
    first = s.get(citrus.url + "/v1/kv/cap/?prefix=true&keys_only=true").json()
    assert len(first["items"]) == 10000 and first["more"] is True
    rest = s.get(citrus.url + "/v1/kv/cap/?prefix=true&keys_only=true&after=" +
                 first["items"][-1]["key"]).json()
    assert len(rest["items"]) == 240 and rest["more"] is False
    big = s.get(citrus.url + "/v1/kv/cap/?prefix=true&keys_only=true&limit=20000").json()
    assert len(big["items"]) == 10000 and big["more"] is True
    # a count is not capped: it carries no items
    assert s.get(citrus.url + "/v1/kv/cap/?prefix=true&count_only=true").json()["count"] == 10240


def test_error_messages_are_always_utf8(citrus):
    u = citrus.url
    # a parser excerpt quoting invalid bytes, and a path with invalid UTF-8
    r = requests.post(u + "/v1/txn", data=b'{"x": "\xe4\xa4', headers={
        "Content-Type": "application/json"})
    assert err(r, 400, "bad_json")
    r = requests.patch(u + "/v1/kv/%ff")
    assert err(r, 405, "method_not_allowed")
    # an unknown field whose long name gets cut inside a character
    name = "x" + "\u00e9" * 300
    assert err(requests.post(u + "/v1/txn", json={name: 1}), 400, "bad_json")


def test_txn_unknown_item_fields_refused(citrus):
    u = citrus.url + "/v1/txn"
    e = err(requests.post(u, json={"success": [{"op": "put", "key": "k", "valeu": "x"}]}),
            400, "bad_json")
    assert "valeu" in e["message"]
    err(requests.post(u, json={"compare": [{"key": "k", "target": "version", "op": 1,
                                            "number": 0}]}), 400, "bad_json")
    err(requests.post(u, json={"compare": [{"key": "k", "target": "version", "number": 0,
                                            "colour": "red"}]}), 400, "bad_json")
    assert requests.get(citrus.url + "/v1/kv/k").status_code == 404
