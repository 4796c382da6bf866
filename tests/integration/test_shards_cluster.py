"""The shard manager on the etcd catalog: two `citrus server` nodes over one
etcd answer the same (a change made through one is seen by the other), and
provisioning runs on the controller leader. Also, on the embedded store, a
server killed in the middle of provisioning finishes the job after a
restart."""
import os
import signal
import sqlite3
import stat
import time

import requests

from cluster import make_cluster  # noqa: F401 (fixture)
from conftest import shard_settled, wait_until


def post(url, path, body=None, **params):
    return requests.post(url + path, json=body, params=params, timeout=30)


def test_two_nodes_on_etcd_answer_the_same(make_cluster, tmp_path):
    shared = tmp_path / "shards"
    cl, _ = make_cluster(citrus_extra=["--provisioner", "sqlite",
                                       "--provisioner-sqlite-dir", str(shared),
                                       "--templates-dir", str(tmp_path / "templates")],
                         n_etcd=1, n_nodes=2)
    os.makedirs(tmp_path / "templates" / "retail")
    (tmp_path / "templates" / "retail" / "001_t.sql").write_text(
        "CREATE TABLE t (id TEXT PRIMARY KEY);\n")
    n1, n2 = cl.nodes[0].url, cl.nodes[1].url
    # an existing database registered through node 1 ...
    db = tmp_path / "one.db"
    sqlite3.connect(db).close()
    r = post(n1, "/v1/shards", {"id": "one", "dsn": f"sqlite://{db}"})
    assert r.status_code == 201, r.text
    # ... is there on node 2, with the same ring
    s2 = requests.get(f"{n2}/v1/shards/one").json()
    assert s2["state"] == "active" and s2["tokens"] == 256
    # provisioning asked on node 2 runs on the controller leader, whichever it is
    r = post(n2, "/v1/shards", {"id": "two", "provision": {"template": "retail"}})
    assert r.status_code == 202, r.text
    s = shard_settled(n1, "two")
    assert s["state"] == "active", s
    assert os.path.exists(shared / "two.db")
    # a tenant registered on node 1 routes the same on node 2 (read-your-writes
    # on node 1, and node 2's copy catches up within the bound)
    reg = post(n1, "/api/register", {"businessId": "b", "locationId": "l",
                                     "businessType": "retail"})
    assert reg.status_code == 201, reg.text
    sid = reg.json()["shardId"]
    assert requests.get(f"{n1}/v1/route/b:l").json()["shard_id"] == sid
    wait_until(lambda: requests.get(f"{n2}/v1/route/b:l").json().get("source") == "directory",
               5, what="node 2 sees the pin")
    r1 = requests.get(f"{n1}/v1/route/b:l").json()
    r2 = requests.get(f"{n2}/v1/route/b:l").json()
    assert r1 == r2
    keys = [f"k{i}" for i in range(500)]
    a = post(n1, "/v1/route", {"keys": keys}).json()
    b = wait_until(lambda: (lambda j: j if j["ring_version"] == a["ring_version"] else None)(
        post(n2, "/v1/route", {"keys": keys}).json()), 5, what="same ring version")
    assert a["routes"] == b["routes"]
    # a lifecycle change on node 2 shows on node 1
    assert post(n2, "/v1/shards/one/drain").status_code == 200
    assert requests.get(f"{n1}/v1/shards/one").json()["state"] == "draining"
    assert requests.get(f"{n1}/api/shard/b:l").json()["shardId"] == sid


SLOW_PROVISIONER = """#!/bin/sh
# Provisions a SQLite file; the first call for a shard stalls (the test kills
# the server meanwhile). Idempotent, as the exec contract asks.
req=$(cat)
id=$(printf '%s' "$req" | sed -n 's/.*"shard_id": *"\\([^"]*\\)".*/\\1/p')
dir="{dir}"
mkdir -p "$dir"
if [ ! -e "$dir/$id.started" ]; then
  touch "$dir/$id.started"
  # stall until the test says so (it kills the server meanwhile), at most 30 s
  i=0
  while [ ! -e "$dir/release" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
fi
touch "$dir/$id.db"
printf '{{"dsn":"sqlite://%s/%s.db","replicas":[]}}' "$dir" "$id"
"""


def test_restart_in_the_middle_of_provisioning_finishes_it(make_citrus, tmp_path):
    d = tmp_path / "prov"
    script = tmp_path / "provision.sh"
    script.write_text(SLOW_PROVISIONER.format(dir=d))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    extra = ["--provisioner", "exec", "--provisioner-exec", str(script),
             "--provisioner-exec-timeout", "60000"]
    c = make_citrus(mode="server", extra=extra)
    r = post(c.url, "/v1/shards", {"id": "slow", "provision": {}})
    assert r.status_code == 202, r.text
    wait_until(lambda: (d / "slow.started").exists(), 10, what="the provisioner ran")
    try:
        c.kill9()
        c.start()
        s = shard_settled(c.url, "slow", 30)
    finally:
        (d / "release").touch()  # the killed server's provisioner ends too
    assert s["state"] == "active", s
    assert [e["to"] for e in s["history"]] == ["provisioning", "initializing", "active"]
    assert s["dsn"] == f"sqlite://{d}/slow.db" and s["tokens"] == 256
    # a provisioner that fails marks the shard failed with its stderr
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/bin/sh\ncat >/dev/null\necho 'quota exceeded' >&2\nexit 3\n")
    bad.chmod(bad.stat().st_mode | stat.S_IXUSR)
    c.stop()
    c2 = make_citrus(mode="server", data_dir=c.data_dir,
                     extra=["--provisioner", "exec", "--provisioner-exec", str(bad)])
    r = post(c2.url, "/v1/shards", {"id": "nope", "provision": {}})
    assert r.status_code == 202
    s = shard_settled(c2.url, "nope")
    assert s["state"] == "failed" and "quota exceeded" in s["error"], s
    # retry goes back to provisioning (and fails the same way here)
    r = post(c2.url, "/v1/shards/nope/retry")
    assert r.status_code == 200 and r.json()["state"] == "provisioning", r.text
    s = shard_settled(c2.url, "nope")
    assert s["state"] == "failed"
    assert [e["to"] for e in s["history"]][-3:] == ["failed", "provisioning", "failed"]


def test_router_keeps_routing_from_its_copy_when_etcd_is_down(make_cluster, tmp_path):
    """Catalog outage (docs/requirements.md, "Routing"): with etcd stopped, the router answers from
    the node's copy at once and says so (X-Citrus-Catalog: cached, and
    /health/ready's routing detail); when etcd is back it is live again."""
    cl, _ = make_cluster(citrus_extra=["--router-listen", "127.0.0.1:0",
                                       "--etcd-request-timeout", "2000"],
                         n_etcd=1, n_nodes=1)
    node, member = cl.nodes[0], cl.etcd[0]
    db = tmp_path / "s.db"
    sqlite3.connect(db).close()
    assert post(node.url, "/v1/shards", {"id": "s", "dsn": f"sqlite://{db}"}).status_code == 201
    rq = lambda body: requests.post(node.router_url + "/v1/query", json=body, timeout=10)  # noqa
    r = rq({"key": "k", "sql": "CREATE TABLE t (x INTEGER)"})
    assert r.status_code == 200 and r.headers["X-Citrus-Catalog"] == "live", r.text
    assert rq({"key": "k", "sql": "INSERT INTO t VALUES (1)"}).status_code == 200
    member.signal(signal.SIGSTOP)
    try:
        wait_until(lambda: node.ready(timeout=5).json().get("routing") == "cached", 10,
                   what="the node notices the outage")
        t0 = time.monotonic()
        r = rq({"key": "k", "sql": "SELECT x FROM t"})
        took = time.monotonic() - t0
        assert r.status_code == 200, r.text
        assert r.headers["X-Citrus-Catalog"] == "cached" and r.json()["rows"] == [[1]]
        assert took < 1.5, f"a cached route took {took:.2f}s"
        assert rq({"key": "k2", "sql": "INSERT INTO t VALUES (2)"}).status_code == 200
    finally:
        member.signal(signal.SIGCONT)
    wait_until(lambda: rq({"key": "k", "sql": "SELECT count(*) FROM t"}).headers.get(
        "X-Citrus-Catalog") == "live", 15, what="live routing again")
