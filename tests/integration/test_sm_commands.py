"""Issue 15, item 3: the shard management worker. Commands on
citrus.sm.commands run as the API runs them; each outcome is one event on
citrus.sm.events (beside the lifecycle relay's transition events);
idempotent by command id and by target state; commands no attempt can
carry out are failed at once and dead-lettered; writing onto the command
topic needs sm-admin, as retiring and deleting shards do on the API."""
import sqlite3

import requests

from cluster import make_cluster  # noqa: F401 (fixture)
from conftest import wait_until
from test_events_api import Node, ev

CMDS = "citrus.sm.commands"
EVENTS = "citrus.sm.events"


def sm_events(url, headers=None):
    out = []
    for p in range(4):
        r = requests.get(f"{url}/v1/topics/{EVENTS}/events?partition={p}&limit=1000",
                         headers=headers, timeout=10)
        assert r.status_code == 200, r.text
        out += [e["event"] for e in r.json()["events"]]
    return out


def command(cid, op, **data):
    subject = data.get("shardId", data.get("businessId", ""))
    return ev(cid, type=f"citrus.sm.{op}", subject=subject, data=data,
              correlationid=f"corr-{cid}")


def publish(url, *events, headers=None):
    r = requests.post(f"{url}/v1/topics/{CMDS}/events", json={"events": list(events)},
                      headers=headers, timeout=30)
    assert r.status_code == 200, r.text


def outcomes(url, cid):
    return [e for e in sm_events(url) if e["id"] in (f"smcmd-{cid}", f"smcmd-{cid}-failed")]


def wait_outcome(url, cid):
    return wait_until(lambda: outcomes(url, cid), 30, what=f"the outcome of {cid}")[0]


def state(url, sid):
    return requests.get(f"{url}/v1/shards/{sid}", timeout=10).json()["state"]


def test_commands_run_once_with_their_outcome(citrus_shards):
    u = citrus_shards.url
    publish(u, command("c1", "drain", shardId="shard-1"))
    out = wait_outcome(u, "c1")
    assert out["type"] == "citrus.sm.command.completed", out
    assert out["data"] == {"changed": True, "state": "draining", "commandId": "c1",
                           "command": "citrus.sm.drain", "shardId": "shard-1"}
    assert out["correlationid"] == "corr-c1" and out["subject"] == "shard-1"
    assert state(u, "shard-1") == "draining"
    # the transition itself is on the topic too, from the lifecycle relay
    wait_until(lambda: [e for e in sm_events(u) if e["type"] == "citrus.shard.state_changed"
                        and e["data"]["shardId"] == "shard-1"
                        and e["data"]["to"] == "draining"
                        and e["data"]["actor"] == "sm-worker"], 30, what="the transition event")
    # the same command again (same id): the ledger skips it, no second outcome
    # another id, same target: succeeds without a change
    publish(u, command("c1", "drain", shardId="shard-1"),
            command("c2", "drain", shardId="shard-1"))
    out = wait_outcome(u, "c2")
    assert out["data"]["changed"] is False and out["data"]["state"] == "draining"
    wait_until(lambda: requests.get(u + "/metrics").text.count(
        'citrus_worker_duplicates_total{worker="shard_management"} 1') == 1, 30,
        what="the duplicate counted")
    assert len(outcomes(u, "c1")) == 1
    # back, and read_only, as the API's actions
    publish(u, command("c3", "activate", shardId="shard-1"),
            command("c4", "read_only", shardId="shard-2"))
    assert wait_outcome(u, "c4")["data"]["state"] == "read_only"
    assert wait_outcome(u, "c3")["data"]["state"] == "active"
    assert state(u, "shard-1") == "active" and state(u, "shard-2") == "read_only"


def test_provision_command(citrus_shards):
    u = citrus_shards.url
    publish(u, command("p1", "provision", shardId="fresh", template="retail"))
    out = wait_outcome(u, "p1")
    assert out["type"] == "citrus.sm.command.completed", out
    assert out["data"]["changed"] is True
    wait_until(lambda: state(u, "fresh") == "active", 30, what="the shard provisioned")
    # delivered again under another id: the shard it made is there
    publish(u, command("p2", "provision", shardId="fresh", template="retail"))
    assert wait_outcome(u, "p2")["data"]["changed"] is False


def test_commands_that_cannot_succeed_are_dead_lettered(citrus_shards):
    u = citrus_shards.url
    publish(u, command("b1", "explode", shardId="shard-0"),
            command("b2", "drain", shardId="nope"),
            ev("b3", type="citrus.sm.drain", subject="x", data={"force": True}),
            command("b4", "retire", shardId="shard-3"))  # active -> retired is not allowed
    for cid, code in (("b1", "invalid_argument"), ("b2", "not_found"), ("b3", "bad_json"),
                      ("b4", "invalid_transition")):
        out = wait_outcome(u, cid)
        assert out["type"] == "citrus.sm.command.failed", out
        assert out["data"]["error"] == code, out
    dead = wait_until(lambda: len(requests.get(f"{u}/v1/dlq/{CMDS}").json()["dead_letters"])
                      == 4 and requests.get(f"{u}/v1/dlq/{CMDS}").json()["dead_letters"], 30,
                      what="four dead letters")
    assert {d["event"]["id"] for d in dead} == {"b1", "b2", "b3", "b4"}
    assert all(d["attempts"] == 1 for d in dead)  # no retries for these
    assert state(u, "shard-3") == "active" and state(u, "shard-0") == "active"


def test_only_sm_admin_writes_commands(make_citrus):
    """sm-operator may publish events, but not onto the command topic: its
    commands retire and delete shards, which the API keeps to sm-admin."""
    node = Node(make_citrus(extra=["--auth", "api_key"]))
    before = node.offsets()[CMDS]
    r = node.publish(CMDS, command("o1", "drain", shardId="shard-1"))
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", r.text
    assert "sm-admin" in r.json()["error"]["message"]
    assert node.call("POST", f"/v1/dlq/{CMDS}/0-0/replay").status_code == 403
    assert node.offsets()[CMDS] == before
    r = node.publish(CMDS, command("o2", "drain", shardId="none-such"), token="admin")
    assert r.status_code == 200, r.text
    # other topics stay the operator's
    assert node.publish("citrus.platform.events", ev("o3")).status_code == 200


def pin(url, key):
    r = requests.post(f"{url}/api/register", json=dict(zip(
        ("businessId", "locationId", "businessType"), key.split(":") + ["retail"])), timeout=30)
    assert r.status_code in (200, 201), r.text
    return r


def test_register_location_command(make_citrus):
    """register_location registers as POST /api/register does: once per
    location (a replay under another id gives the same shard), the outcome
    names the shard and never its credentials; bad data is failed and
    dead-lettered at once; with no shard to place it on it is retried
    until one is there."""
    u = make_citrus(shards=True, extra=["--bus-backoff-base-ms", "200",
                                        "--bus-max-attempts", "30"]).url
    publish(u, command("r1", "register_location", businessId="acme", locationId="north",
                       businessType="retail"))
    out = wait_outcome(u, "r1")
    assert out["type"] == "citrus.sm.command.completed", out
    data = out["data"]
    assert data["changed"] is True and data["shardId"].startswith("shard-"), out
    assert {k: data[k] for k in ("businessId", "locationId", "businessType", "command")} == {
        "businessId": "acme", "locationId": "north", "businessType": "retail",
        "command": "citrus.sm.register_location"}
    text = str(out).lower()
    assert "sqlite:" not in text and "password" not in text and "connection" not in text
    assert out["subject"] == data["shardId"]
    # the synchronous call finds it registered there (200, not 201)
    r = pin(u, "acme:north")
    assert r.status_code == 200 and r.json()["shardId"] == data["shardId"], r.text
    # another command for the location: the same shard, no change
    publish(u, command("r2", "register_location", businessId="acme", locationId="north",
                       businessType="retail"))
    again = wait_outcome(u, "r2")["data"]
    assert again["shardId"] == data["shardId"] and again["changed"] is False

    # bad data, a type without a template: failed at once, dead-lettered, no retry
    publish(u, command("rb1", "register_location", businessId="acme", businessType="retail"),
            command("rb2", "register_location", businessId="a b", locationId="x",
                    businessType="retail"),
            command("rb3", "register_location", businessId="acme", locationId="north",
                    businessType="food"),
            command("rb4", "register_location", businessId="acme", locationId="x",
                    businessType="retail", dsn="sqlite:///tmp/x.db"))
    for cid, code in (("rb1", "invalid_argument"), ("rb2", "invalid_argument"),
                      ("rb3", "unknown_business_type"), ("rb4", "bad_json")):
        out = wait_outcome(u, cid)
        assert out["type"] == "citrus.sm.command.failed", out
        assert out["data"]["error"] == code, out
    dead = wait_until(lambda: [d for d in requests.get(f"{u}/v1/dlq/{CMDS}").json()["dead_letters"]
                               if d["event"]["id"].startswith("rb")], 30, what="dead letters")
    wait_until(lambda: len([d for d in requests.get(f"{u}/v1/dlq/{CMDS}").json()["dead_letters"]
                            if d["event"]["id"].startswith("rb")]) == 4, 30, what="four")
    assert all(d["attempts"] == 1 for d in dead)
    assert requests.get(f"{u}/v1/tenants/acme:x", timeout=10).status_code == 404

    # no active shard: retried (no outcome yet), then done once one is active
    for sid in ("shard-0", "shard-1", "shard-2", "shard-3"):
        r = requests.post(f"{u}/v1/shards/{sid}/drain", timeout=10)
        assert r.status_code == 200, r.text
    publish(u, command("r3", "register_location", businessId="acme", locationId="south",
                       businessType="retail"))
    wait_until(lambda: 'citrus_worker_retried_total{worker="shard_management"}' in
               requests.get(u + "/metrics").text and float(
                   [ln for ln in requests.get(u + "/metrics").text.splitlines() if ln.startswith(
                       'citrus_worker_retried_total{worker="shard_management"}')][0].split()[-1])
               >= 2, 30, what="retries")
    assert outcomes(u, "r3") == []
    r = requests.post(f"{u}/v1/shards/shard-2/activate", timeout=10)
    assert r.status_code == 200, r.text
    out = wait_outcome(u, "r3")
    assert out["type"] == "citrus.sm.command.completed" and out["data"]["shardId"] == "shard-2"


def test_commands_run_on_the_controller_leader_only(make_cluster, tmp_path):
    """Two nodes over one etcd, each with the workers role and its own
    embedded log: the shard management worker runs commands only on the
    controller leader (its writes fenced by the leader's token), so a
    follower refuses to take commands it could never run (503), the leader
    runs them, and once it stops the node that takes over does."""
    cl, _ = make_cluster(citrus_extra=["--workers"], n_etcd=1, n_nodes=2)
    urls = [n.url for n in cl.nodes]
    db = tmp_path / "one.db"
    sqlite3.connect(db).close()
    r = requests.post(urls[0] + "/v1/shards", json={"id": "one", "dsn": f"sqlite://{db}"},
                      timeout=30)
    assert r.status_code == 201, r.text

    name = wait_until(lambda: requests.get(urls[0] + "/v1/cluster", timeout=10).json()[
        "controller"]["leader"], 20, what="a leader")
    li = int(name.replace("node", "")) - 1
    fi = 1 - li
    r = requests.post(f"{urls[fi]}/v1/topics/{CMDS}/events", timeout=30,
                      json={"events": [command("f1", "drain", shardId="one")]})
    assert r.status_code == 503 and r.json()["error"]["code"] == "unavailable", r.text
    assert "leader" in r.json()["error"]["message"]
    publish(urls[li], command("l1", "drain", shardId="one"))
    out = wait_outcome(urls[li], "l1")
    assert out["type"] == "citrus.sm.command.completed", out
    assert requests.get(f"{urls[fi]}/v1/shards/one", timeout=10).json()["state"] == "draining"
    # the leader stops (its session revoked): the other node leads, and runs commands
    cl.nodes[li].stop()
    cl.nodes[li].killed = True  # stopped on purpose
    wait_until(lambda: requests.get(urls[fi] + "/v1/cluster", timeout=10).json()[
        "controller"]["leader"] == f"node{fi + 1}", 20, what="the other node to lead")
    publish(urls[fi], command("l2", "activate", shardId="one"))
    out = wait_outcome(urls[fi], "l2")
    assert out["type"] == "citrus.sm.command.completed", out
    assert out["data"]["state"] == "active"
