"""Operating the event bus (issue 15, item 6): GET /v1/topics, publishing and
reading events, consumer groups, dead letters and their replay; roles,
audit rows and bad input (item 7: clear JSON errors, nothing written).

No worker consumes the bus yet, so the dead letters and consumer group
positions these routes show are written into the node's bus.db (the
embedded log's tables, docs/events.md) while the node is stopped, as the
bus itself would have written them.
"""
import json
import os
import sqlite3
import time

import pytest
import requests

TOPIC = "citrus.platform.events"
# a topic no worker of citrus dev consumes (its dead letters and groups
# are seeded by the tests): shard ingest commands go to the shards' own
# consumers
CMDS = "citrus.shard.ingest.commands"


def ev(eid, **kw):
    e = {"specversion": "1.0", "id": eid, "source": "/tests", "type": "test.event"}
    e.update(kw)
    return e


class Node:
    def __init__(self, c):
        self.c = c
        self.admin = open(os.path.join(c.data_dir, "admin.key")).read().strip()
        self.reader = self.key("reader", ["reader"])
        self.oper = self.key("ops", ["sm-operator"])

    def key(self, name, roles):
        r = requests.post(self.c.url + "/v1/auth/keys", json={"name": name, "roles": roles},
                          headers={"Authorization": f"Bearer {self.admin}"}, timeout=10)
        assert r.status_code == 201, r.text
        return r.json()["key"]

    def call(self, method, path, token="oper", **kw):
        tok = {"oper": self.oper, "reader": self.reader, "admin": self.admin}.get(token, token)
        h = kw.pop("headers", {})
        if tok:
            h["Authorization"] = f"Bearer {tok}"
        return requests.request(method, self.c.url + path, headers=h, timeout=30, **kw)

    def publish(self, topic, body, query="", token="oper"):
        return self.call("POST", f"/v1/topics/{topic}/events{query}", token, json=body)

    def read(self, topic, query, token="reader"):
        return self.call("GET", f"/v1/topics/{topic}/events{query}", token)

    def offsets(self):
        r = self.call("GET", "/v1/topics", "reader")
        assert r.status_code == 200, r.text
        return {t["name"]: [(o["low"], o["high"]) for o in t["offsets"]]
                for t in r.json()["topics"]}

    def audit(self, action):
        r = self.call("GET", f"/v1/audit?action={action}&limit=1000", "admin")
        assert r.status_code == 200, r.text
        return r.json()["entries"]


@pytest.fixture
def node(make_citrus):
    c = make_citrus(extra=["--auth", "api_key", "--bus-partitions", "2",
                           "--bus-max-event-bytes", "4096"])
    return Node(c)


def err(r):
    return r.json()["error"]


def test_topics_listing(node):
    topics = {t["name"]: t for t in node.call("GET", "/v1/topics", "reader").json()["topics"]}
    names = ["citrus.enrollment.events", "citrus.sm.commands", CMDS,
             "citrus.sm.events", TOPIC, "citrus.registrations"]
    assert sorted(topics) == sorted(names + [n + ".dlq" for n in names])
    t = topics[TOPIC]
    assert t["partitions"] == 2 and not t["dead_letter"]
    assert t["dead_letter_topic"] == TOPIC + ".dlq"
    assert t["retention_ms"] == 168 * 3600 * 1000 and t["messages"] == 0
    assert t["offsets"] == [{"partition": 0, "low": 0, "high": 0},
                            {"partition": 1, "low": 0, "high": 0}]
    d = topics[TOPIC + ".dlq"]
    assert d["dead_letter"] and d["source_topic"] == TOPIC


def test_publish_read_and_audit(node):
    one = ev("e-1", subject="ignored-for-key", tenantx="kept", data={"n": 1})
    r = node.publish(TOPIC, one, "?key=k1")
    assert r.status_code == 200, r.text
    [pub] = r.json()["events"]
    assert pub["id"] == "e-1" and pub["key"] == "k1" and pub["offset"] == 0
    p1 = pub["partition"]
    # a batch: keyed by subject, else by id; one key, one partition, in order
    batch = [ev("e-2", subject="s-a"), ev("e-3", subject="s-a"), ev("e-4")]
    r = node.publish(TOPIC, {"events": batch})
    assert r.status_code == 200, r.text
    got = r.json()["events"]
    assert [g["key"] for g in got] == ["s-a", "s-a", "e-4"]
    assert got[0]["partition"] == got[1]["partition"]
    assert got[1]["offset"] == got[0]["offset"] + 1
    # read back without leasing: the envelope as sent, unknown members kept
    r = node.read(TOPIC, f"?partition={p1}&from_offset=0")
    assert r.status_code == 200, r.text
    page = r.json()
    first = page["events"][0]
    assert first["key"] == "k1" and first["offset"] == 0
    assert first["event"] == one
    assert page["low"] == 0 and page["next_offset"] == page["high"] and page["more"] is False
    pa = got[0]["partition"]
    r = node.read(TOPIC, f"?partition={pa}&from_offset={got[0]['offset']}&limit=2")
    assert [e["event"]["id"] for e in r.json()["events"]] == ["e-2", "e-3"]
    assert r.json()["next_offset"] == got[1]["offset"] + 1
    # GET /v1/topics counts them
    offs = node.offsets()[TOPIC]
    assert sum(h - lo for lo, h in offs) == 4
    # one audit row per request, target the topic
    rows = node.audit("event.publish")
    assert len(rows) == 2
    assert all(x["target"] == TOPIC and x["status"] == 200 for x in rows)
    assert all(x["principal"].endswith("/ops") for x in rows)


def test_bad_input_writes_nothing(node):
    assert node.publish(TOPIC, ev("seed")).status_code == 200
    before = node.offsets()
    big = ev("big", data={"x": "y" * 5000})
    cases = [
        (ev("x", specversion="2.0"), "", 400, "invalid_argument", "specversion"),
        ({"specversion": "1.0", "source": "/s", "type": "t"}, "", 400, "bad_json", "id"),
        ({"events": [ev("ok-1"), {"specversion": "1.0", "id": "x", "type": "t"},
                     ev("ok-2")]}, "", 400, "bad_json", "events[1]: source"),
        ({"events": [ev("ok-3"), ev("bad", time="yesterday")]}, "", 400, "invalid_argument",
         "events[1]: time"),
        (ev("x", data=1, data_base64="AA=="), "", 400, None, "data"),
        (ev("x", BadName=1), "", 400, None, "BadName"),
        ({"events": []}, "", 400, "bad_json", "events"),
        ({"events": [ev(f"m{i}") for i in range(1001)]}, "", 400, "too_many", "1000"),
        ([ev("x")], "", 400, "bad_json", None),
        (big, "", 413, "body_too_large", "max_event_bytes"),
        ({"events": [ev("fine"), big]}, "", 413, "body_too_large", "events[1]"),
        (ev("x"), "?key=", 400, "invalid_argument", "key"),
        (ev("x"), "?key=" + "k" * 1025, 400, "invalid_argument", "key"),
        (ev("x"), "?key=%FF", 400, "invalid_argument", "UTF-8"),
    ]
    for body, query, status, code, words in cases:
        r = node.publish(TOPIC, body, query)
        assert r.status_code == status, (body if len(str(body)) < 300 else "...", r.text)
        if code:
            assert err(r)["code"] == code, r.text
        if words:
            assert words in err(r)["message"], r.text
    r = node.call("POST", f"/v1/topics/{TOPIC}/events", data=b"{not json",
                  headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and err(r)["code"] == "bad_json"
    r = node.publish("no.such.topic", ev("x"))
    assert r.status_code == 404 and err(r)["code"] == "not_found"
    assert "no.such.topic" in err(r)["message"]
    r = node.publish(TOPIC + ".dlq", ev("x"))
    assert r.status_code == 400 and "dead-letter" in err(r)["message"]
    # reads
    for query, status, code in [
        ("", 400, "invalid_argument"),                      # partition is required
        ("?partition=2", 400, "invalid_argument"),          # 2 partitions: 0..1
        ("?partition=-1", 400, "invalid_argument"),
        ("?partition=x", 400, "invalid_argument"),
        ("?partition=0&limit=0", 400, "invalid_argument"),
        ("?partition=0&limit=abc", 400, "invalid_argument"),
        ("?partition=0&limit=1001", 400, "invalid_argument"),
        ("?partition=0&from_offset=-1", 400, "invalid_argument"),
        ("?partition=0&from_offset=99", 416, "offset_out_of_range"),
    ]:
        r = node.read(TOPIC, query)
        assert r.status_code == status, (query, r.text)
        assert err(r)["code"] == code, (query, r.text)
    r = node.read(TOPIC, "?partition=0&from_offset=99")
    assert err(r)["low"] == before[TOPIC][0][0] and err(r)["high"] == before[TOPIC][0][1]
    assert node.read("no.such.topic", "?partition=0").status_code == 404
    # nothing moved
    assert node.offsets() == before
    # the refused publishes are audited too (one row each, with their status)
    statuses = [x["status"] for x in node.audit("event.publish")]
    assert statuses.count(200) == 1 and 413 in statuses and 404 in statuses


def test_an_unknown_topic_is_404_whatever_the_body(node):
    """A publish onto the embedded log skips listing the topics (the
    publish checks the topic in its own transaction), so each way a
    request can fail is tried on an unknown topic: still 404 first, as the
    listing said it, and nothing written."""
    assert node.publish(TOPIC, ev("seed")).status_code == 200
    before = node.offsets()
    h = {"Content-Type": "application/json"}
    for topic in ["no.such.topic", "bad name!", "x" * 250]:
        for data in [b"", b"{not json", json.dumps({"events": []}).encode(),
                     json.dumps(ev("x", specversion="2.0")).encode(),
                     json.dumps(ev("fine")).encode()]:
            r = node.call("POST", f"/v1/topics/{topic}/events", data=data, headers=h)
            assert r.status_code == 404, (topic, data, r.text)
            assert err(r)["code"] == "not_found" and "no topic" in err(r)["message"], r.text
    # a dead-letter topic, known or not, whatever the body
    for topic, status in [(TOPIC + ".dlq", 400), ("nope.dlq", 404)]:
        for data in [b"{not json", json.dumps(ev("fine")).encode()]:
            r = node.call("POST", f"/v1/topics/{topic}/events", data=data, headers=h)
            assert r.status_code == status, (topic, data, r.text)
    assert node.offsets() == before


def test_concurrent_publishes_each_audited_before_the_answer(node):
    """16 producers on keep-alive connections: every answered publish has
    its audit row (status 200, its correlation id), and every event is on
    the topic once."""
    import concurrent.futures
    n_threads, per = 16, 25

    def producer(t):
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {node.oper}"
        got = []
        for i in range(per):
            cid = f"conc-{t}-{i}"
            r = s.post(f"{node.c.url}/v1/topics/{TOPIC}/events", json=ev(cid),
                       headers={"X-Correlation-Id": cid}, timeout=30)
            assert r.status_code == 200, r.text
            got.append(cid)
        return got

    with concurrent.futures.ThreadPoolExecutor(n_threads) as ex:
        ids = [i for got in ex.map(producer, range(n_threads)) for i in got]
    assert len(ids) == n_threads * per
    rows = node.audit("event.publish")
    by_corr = {x["correlation_id"]: x for x in rows}
    for cid in ids:
        assert cid in by_corr, cid
        assert by_corr[cid]["status"] == 200 and by_corr[cid]["target"] == TOPIC
    seen = []
    for p in range(2):
        off = 0
        while True:
            page = node.read(TOPIC, f"?partition={p}&from_offset={off}&limit=1000").json()
            seen += [e["event"]["id"] for e in page["events"]]
            off = page["next_offset"]
            if not page["more"]:
                break
    assert sorted(i for i in seen if i.startswith("conc-")) == sorted(ids)


def test_roles(node):
    r = node.publish(TOPIC, ev("by-reader"), token="reader")
    assert r.status_code == 403 and err(r)["code"] == "forbidden"
    r = node.call("POST", f"/v1/dlq/{TOPIC}/0-0/replay", "reader")
    assert r.status_code == 403
    for method, path in [("GET", "/v1/topics"), ("GET", f"/v1/topics/{TOPIC}/events?partition=0"),
                         ("GET", "/v1/consumers"), ("GET", f"/v1/dlq/{TOPIC}"),
                         ("POST", f"/v1/dlq/{TOPIC}/0-0/replay")]:
        r = node.call(method, path, token=None)
        assert r.status_code == 401, (method, path, r.text)
    r = node.call("POST", f"/v1/topics/{TOPIC}/events", token=None, json=ev("anon"))
    assert r.status_code == 401
    for path in ["/v1/topics", "/v1/consumers", f"/v1/dlq/{TOPIC}",
                 f"/v1/topics/{TOPIC}/events?partition=1"]:
        assert node.call("GET", path, "reader").status_code == 200, path
    assert all(h == 0 for _, h in node.offsets()[TOPIC])


def next_offset(db, topic, part):
    """A partition's next offset as the bus reads it: past its last message,
    and never below the floor kept in bus_partitions (src/bus/bus_sqlite.c,
    Offsets)."""
    (off,) = db.execute(
        "SELECT max(next_offset, coalesce((SELECT max(off) FROM bus_messages"
        " WHERE topic=?1 AND part=?2) + 1, 0)) FROM bus_partitions WHERE topic=?1 AND part=?2",
        (topic, part)).fetchone()
    return off


def seed(db_path, dead_letters=(), groups=(), leases=(), trim=()):
    """Writes into a stopped node's bus.db what the bus would have: dead
    letters (topic.dlq, partition, key, value, error, attempts, source),
    group offsets, open leases, and a retention trim of a partition's
    first offsets."""
    db = sqlite3.connect(db_path)
    with db:
        for topic, part, key, value, error, attempts, sp, so in dead_letters:
            off = next_offset(db, topic, part)
            db.execute("INSERT INTO bus_messages VALUES (?,?,?,?,?,?,?,?,?,?)",
                       (topic, part, off, key.encode(), value.encode(), int(time.time() * 1000), error,
                        attempts, sp, so))
        for grp, topic, part, nxt in groups:
            db.execute("INSERT INTO bus_offsets VALUES (?,?,?,?)", (grp, topic, part, nxt))
        for grp, topic, part, off in leases:
            db.execute("INSERT INTO bus_leases VALUES (?,?,?,?,1,?,0,NULL)",
                       (grp, topic, part, off, 4102444800000))
        for topic, part, upto in trim:
            # as the bus trims: the next offset kept first
            db.execute("UPDATE bus_partitions SET next_offset=? WHERE topic=? AND part=?",
                       (next_offset(db, topic, part), topic, part))
            db.execute("DELETE FROM bus_messages WHERE topic=? AND part=? AND off<=?",
                       (topic, part, upto))
    db.close()


def test_dead_letters_consumers_and_replay(node):
    # two commands on one partition, three events on one partition
    r = node.publish(CMDS, {"events": [ev("c-1", subject="k"), ev("c-2", subject="k")]})
    pc = r.json()["events"][0]["partition"]
    r = node.publish(TOPIC, {"events": [ev(f"p-{i}", subject="k") for i in range(3)]})
    pt = r.json()["events"][0]["partition"]
    dead = ev("dead-1", subject="shard-9", data={"op": "drain"}, tenantx="kept")
    node.c.stop()
    seed(os.path.join(node.c.data_dir, "bus.db"),
         dead_letters=[(CMDS + ".dlq", 1, "shard-9", json.dumps(dead), "boom", 5, 1, 7),
                       (CMDS + ".dlq", 0, "\u00e9t\u00e9", "not json", "bad", 3, 0, 2)],
         groups=[("shard-ingest", CMDS, pc, 1),
                 ("shard-ingest", CMDS, 1 - pc, 0)],
         leases=[("shard-ingest", CMDS, pc, 1)],
         trim=[(TOPIC, pt, 0)])
    node.c.start()
    # the dead letters, in partition then offset order
    r = node.call("GET", f"/v1/dlq/{CMDS}", "reader")
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["dead_letter_topic"] == CMDS + ".dlq" and page["more"] is False
    d0, d1 = page["dead_letters"]
    assert d0["id"] == "0-0" and d0["key"] == "\u00e9t\u00e9"
    assert d0["value_base64"] and "event" not in d0
    assert d1["id"] == "1-0" and d1["error"] == "boom" and d1["attempts"] == 5
    assert d1["source_partition"] == 1 and d1["source_offset"] == 7
    assert d1["event"] == dead and d1["key"] == "shard-9"
    # the dead-letter topic read as a topic shows the same
    [raw] = node.read(CMDS + ".dlq", "?partition=1").json()["events"]
    assert d1["replay"] is None and d0["replay"] is None  # not replayed yet
    assert raw == {k: v for k, v in d1.items() if k != "replay"}
    # pages of one
    r = node.call("GET", f"/v1/dlq/{CMDS}?limit=1", "reader").json()
    assert [d["id"] for d in r["dead_letters"]] == ["0-0"] and r["more"]
    assert r["next"] == {"partition": 1, "from_offset": 0}
    r = node.call("GET", f"/v1/dlq/{CMDS}?limit=1&partition=1&from_offset=0", "reader").json()
    assert [d["id"] for d in r["dead_letters"]] == ["1-0"] and not r["more"]
    assert node.call("GET", "/v1/dlq/nope", "reader").status_code == 404
    assert node.call("GET", f"/v1/dlq/{CMDS}.dlq", "reader").status_code == 404
    assert node.call("GET", f"/v1/dlq/{CMDS}?partition=5", "reader").status_code == 400
    # consumer groups
    rows = node.call("GET", "/v1/consumers", "reader").json()
    assert rows["more"] is False
    mine = {r["partition"]: r for r in rows["consumers"]
            if r["group"] == "shard-ingest"}
    assert mine[pc] == {"group": "shard-ingest", "topic": CMDS, "partition": pc,
                        "committed": 1, "end": 2, "lag": 1, "in_flight": 1}
    assert mine[1 - pc]["lag"] == 0 and mine[1 - pc]["in_flight"] == 0
    r = node.call("GET", "/v1/consumers?group=nobody", "reader").json()
    assert r["consumers"] == []
    assert node.call("GET", "/v1/consumers?limit=0", "reader").status_code == 400
    assert node.call("GET", "/v1/consumers?group=bad%20name", "reader").status_code == 400
    # a trimmed offset: 410 compacted with the range
    r = node.read(TOPIC, f"?partition={pt}&from_offset=0")
    assert r.status_code == 410 and err(r)["code"] == "compacted"
    assert err(r)["low"] == 1 and err(r)["high"] == 3
    assert [e["offset"] for e in node.read(TOPIC, f"?partition={pt}").json()["events"]] == [1, 2]
    # replay: bad ids and unknown topics first, nothing written
    before = node.offsets()
    for path, status in [(f"/v1/dlq/{CMDS}/abc/replay", 400), (f"/v1/dlq/{CMDS}/1-/replay", 400),
                         (f"/v1/dlq/{CMDS}/-1-0/replay", 400), (f"/v1/dlq/{CMDS}/1-5/replay", 404),
                         (f"/v1/dlq/{CMDS}/7-0/replay", 404), ("/v1/dlq/nope/1-0/replay", 404)]:
        r = node.call("POST", path)
        assert r.status_code == status, (path, r.text)
    assert node.offsets() == before
    r = node.call("POST", f"/v1/dlq/{CMDS}/1-0/replay")
    assert r.status_code == 200, r.text
    rep = r.json()
    assert rep["replayed_from"] == {"topic": CMDS + ".dlq", "partition": 1, "offset": 0}
    got = node.read(CMDS, f"?partition={rep['partition']}&from_offset={rep['offset']}").json()
    [again] = got["events"]
    assert again["event"] == dead and again["key"] == "shard-9"
    rows = node.audit("event.replay")
    assert [(x["target"], x["status"]) for x in rows if x["status"] == 200] == [(CMDS, 200)]
    assert len(rows) == 7  # one per request, refused ones too


def seed_two_dead_letters(node):
    dead = ev("dead-1", subject="shard-9", data={"op": "drain"})
    node.c.stop()
    seed(os.path.join(node.c.data_dir, "bus.db"),
         dead_letters=[(CMDS + ".dlq", 1, "shard-9", json.dumps(dead), "boom", 5, 1, 7),
                       (CMDS + ".dlq", 0, "k0", json.dumps(ev("dead-0")), "bad", 3, 0, 2)])
    node.c.start()
    return dead


def listed(node, token="reader"):
    r = node.call("GET", f"/v1/dlq/{CMDS}", token)
    assert r.status_code == 200, r.text
    return {d["id"]: d for d in r.json()["dead_letters"]}


def test_a_replayed_dead_letter_is_marked_and_not_replayed_twice(node):
    dead = seed_two_dead_letters(node)
    r = node.call("POST", f"/v1/dlq/{CMDS}/1-0/replay", headers={"X-Correlation-Id": "replay-one"})
    assert r.status_code == 200, r.text
    rep = r.json()
    first = (rep["partition"], rep["offset"])
    mark = rep["replay"]
    assert mark["state"] == "replayed" and (mark["partition"], mark["offset"]) == first
    assert mark["by"].endswith("/ops") and mark["correlation_id"] == "replay-one"
    assert mark["replays"] == 1 and mark["time"].endswith("Z")
    # listed as replayed, with where it went; the other one not
    d = listed(node)
    assert d["0-0"]["replay"] is None
    # a reader is not told who replayed it (the principal: the audit log's)
    assert d["1-0"]["replay"] == {k: v for k, v in mark.items() if k != "by"}
    assert listed(node, "oper")["1-0"]["replay"] == mark
    # a second replay: 409 with the first one's location, nothing published
    before = node.offsets()
    r = node.call("POST", f"/v1/dlq/{CMDS}/1-0/replay")
    assert r.status_code == 409, r.text
    assert err(r)["code"] == "already_exists" and "force=true" in err(r)["message"]
    assert err(r)["replay"] == mark
    assert f"partition {first[0]} offset {first[1]}" in err(r)["message"]
    # junk force, a reader: refused, nothing published
    r = node.call("POST", f"/v1/dlq/{CMDS}/1-0/replay?force=maybe")
    assert r.status_code == 400 and "force" in err(r)["message"], r.text
    assert node.call("POST", f"/v1/dlq/{CMDS}/1-0/replay?force=true", "reader").status_code == 403
    assert node.offsets() == before
    # forced: published again, counted
    r = node.call("POST", f"/v1/dlq/{CMDS}/1-0/replay?force=true")
    assert r.status_code == 200, r.text
    again = r.json()
    assert again["partition"] == first[0] and again["offset"] > first[1]
    assert again["replay"]["replays"] == 2
    got = node.read(CMDS, f"?partition={again['partition']}&from_offset={again['offset']}")
    assert got.json()["events"][0]["event"] == dead
    assert listed(node, "oper")["1-0"]["replay"] == again["replay"]
    # audited: one row per request of the operator's, the replay's with its
    # correlation id (the mark's)
    rows = node.audit("event.replay")
    assert sorted(x["status"] for x in rows if x["principal"].endswith("/ops")) == \
        [200, 200, 400, 409]
    assert [x["status"] for x in rows if x["correlation_id"] == "replay-one"] == [200]


def put_mark(node, part, off, body):
    path = f"/v1/kv/citrus/dlq-replays/{CMDS}/{part:04d}-{off:019d}?unsafe=true"
    r = node.call("PUT", path, "admin", data=json.dumps(body))
    assert r.status_code in (200, 201), r.text


def test_a_replay_cut_short_is_settled(node):
    """The mark says "replaying" while the replay is published and not yet
    recorded: the next replay settles it from the topic instead of
    publishing again; one cut short before its publish is replayed."""
    seed_two_dead_letters(node)
    r = node.call("POST", f"/v1/dlq/{CMDS}/1-0/replay")
    assert r.status_code == 200, r.text
    p, o = r.json()["partition"], r.json()["offset"]
    now = int(time.time() * 1000)
    # published, then the node died before the mark said so
    put_mark(node, 1, 0, {"state": "replaying", "partition": p, "from_offset": o, "at_ms": now,
                          "time": "t", "by": "x", "correlation_id": "c", "replays": 0})
    assert listed(node)["1-0"]["replay"]["state"] == "replaying"
    before = node.offsets()
    r = node.call("POST", f"/v1/dlq/{CMDS}/1-0/replay")
    assert r.status_code == 409, r.text
    assert err(r)["replay"]["state"] == "replayed" and err(r)["replay"]["offset"] == o
    assert node.offsets() == before
    m = listed(node)["1-0"]["replay"]
    assert (m["state"], m["partition"], m["offset"], m["replays"]) == ("replayed", p, o, 1)
    # under way (a fresh mark, no copy on the topic yet): 409, nothing published
    high = node.offsets()[CMDS]
    put_mark(node, 0, 0, {"state": "replaying", "partition": 0, "from_offset": high[0][1],
                          "at_ms": now, "time": "t", "by": "x", "correlation_id": "c",
                          "replays": 0})
    r = node.call("POST", f"/v1/dlq/{CMDS}/0-0/replay")
    assert r.status_code == 409 and "under way" in err(r)["message"], r.text
    assert node.offsets() == before
    # cut short before its publish (an old mark, no copy): replayed now
    put_mark(node, 0, 0, {"state": "replaying", "partition": 0, "from_offset": high[0][1],
                          "at_ms": now - 120000, "time": "t", "by": "x", "correlation_id": "c",
                          "replays": 0})
    r = node.call("POST", f"/v1/dlq/{CMDS}/0-0/replay")
    assert r.status_code == 200, r.text
    assert listed(node)["0-0"]["replay"]["state"] == "replayed"
    assert sum(h - low for low, h in node.offsets()[CMDS]) == \
        sum(h - low for low, h in before[CMDS]) + 1


def test_reads_stop_at_the_response_bound(make_citrus):
    c = make_citrus(extra=["--max-response-bytes", "65536", "--bus-max-event-bytes", "8192",
                           "--bus-partitions", "1"])
    events = [ev(f"b-{i}", data={"pad": "x" * 6000}) for i in range(30)]
    r = requests.post(f"{c.url}/v1/topics/{TOPIC}/events", json={"events": events}, timeout=30)
    assert r.status_code == 200, r.text
    seen, frm, pages = [], 0, 0
    while True:
        r = requests.get(f"{c.url}/v1/topics/{TOPIC}/events?partition=0&from_offset={frm}"
                         "&limit=1000", timeout=10)
        assert r.status_code == 200, r.text
        assert len(r.content) <= 65536 + 512
        page = r.json()
        pages += 1
        seen += [e["event"]["id"] for e in page["events"]]
        frm = page["next_offset"]
        if not page["more"]:
            break
    assert seen == [f"b-{i}" for i in range(30)] and pages >= 3
