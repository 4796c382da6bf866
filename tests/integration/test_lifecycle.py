"""Issue 15, item 4: lifecycle events that never skip. Every shard and
tenant transition in the catalog has its event on citrus.sm.events (the id
made of the catalog revision), across kill -9 of the node between a
transition and its event; and no event lacks its transition. Each id is
on the topic exactly once (no duplicate after a crash either).

The test compares the catalog's own history (catalog.db's history table:
every put of a shard record, each carrying its lifecycle history with the
epoch of each change and the epoch it was written over) with the topic
(bus.db), both read after the node stopped."""
import json
import os
import random
import sqlite3
import threading
import time

import requests

from conftest import wait_until

TOPIC = "citrus.sm.events"


def topic_events(data_dir):
    db = sqlite3.connect(os.path.join(data_dir, "bus.db"))
    try:
        rows = db.execute("SELECT part, off, key, value FROM bus_messages WHERE topic = ? "
                          "ORDER BY part, off", (TOPIC,)).fetchall()
    finally:
        db.close()
    return [dict(json.loads(v), _part=p, _off=o, _key=bytes(k).decode()) for p, o, k, v in rows]


def catalog_transitions(data_dir):
    """{(shard id, epoch): (from, to)} of every lifecycle change the
    catalog's history holds, and the tenant pin changes [(rev, key, type)]."""
    db = sqlite3.connect(os.path.join(data_dir, "catalog.db"))
    try:
        rows = db.execute("SELECT rev, type, key, value, version FROM history "
                          "WHERE CAST(key AS TEXT) LIKE 'citrus/shards/%' "
                          "OR CAST(key AS TEXT) LIKE 'citrus/tenants/%' "
                          "ORDER BY rev, sub").fetchall()
        compacted = db.execute("SELECT compact_revision FROM meta").fetchone()[0]
    finally:
        db.close()
    assert compacted <= 1, "the test needs the whole history"
    shards, tenants = {}, []
    for rev, typ, key, value, version in rows:
        key = bytes(key).decode() if isinstance(key, bytes) else key
        if key.startswith("citrus/shards/"):
            if typ != 0:  # a delete
                continue
            rec = json.loads(value)
            for h in rec.get("history", []):
                if h.get("epoch", 0) > rec.get("base_epoch", 0):
                    shards[(rec["id"], h["epoch"])] = (h["from"], h["to"])
        else:
            tenants.append((rev, key[len("citrus/tenants/"):], typ, version))
    return shards, tenants


def missing_events(data_dir):
    """Transitions in the catalog's history without their event on the
    topic yet (both files read while the node runs: WAL readers)."""
    try:
        shards, _ = catalog_transitions(data_dir)
        events = topic_events(data_dir)
    except sqlite3.OperationalError:
        return None
    seen = {(e["data"]["shardId"], e["data"]["epoch"]) for e in events
            if e["type"] == "citrus.shard.state_changed"}
    return set(shards) - seen


def catch_up(c):
    """Waits (a liveness bound) until every transition in the catalog has
    its event; the relay's log lines are shown when it does not."""
    try:
        wait_until(lambda: missing_events(c.data_dir) == set(), 60,
                   what="every transition to have its event")
    except AssertionError:
        relay = [x for x in c.log_lines() if x.get("component") in ("relay", "controller")]
        raise AssertionError(f"missing {sorted(missing_events(c.data_dir) or [])[:10]}; "
                             f"relay log: {relay[-20:]}")


def check(data_dir):
    events = topic_events(data_dir)
    shards, tenants = catalog_transitions(data_dir)
    by_id, dups = {}, []
    for ev in events:
        if ev["source"] != "/citrus/controller":
            continue
        assert ev["id"] == f"sm-{ev['citrusrevision']}-" + ev["id"].split("-")[-1]
        prev = by_id.setdefault(ev["id"], ev)
        if prev is not ev:
            dups.append((prev, ev))
    # exactly one copy of each id: the relay reads the topic's tail when it
    # starts and does not publish again what a crash left published
    assert not dups, f"{len(dups)} ids published twice, e.g. {dups[:3]}"
    changed = {}
    for ev in by_id.values():
        if ev["type"] == "citrus.shard.state_changed":
            k = (ev["data"]["shardId"], ev["data"]["epoch"])
            assert k not in changed, f"two event ids for one transition {k}"
            changed[k] = (ev["data"]["from"], ev["data"]["to"])
    # no transition without its event, no event without its transition
    missing = set(shards) - set(changed)
    invented = set(changed) - set(shards)
    assert not missing, f"transitions without an event: {sorted(missing)[:10]}"
    assert not invented, f"events without a transition: {sorted(invented)[:10]}"
    for k, v in shards.items():
        assert changed[k] == v, k
    # tenant pins: one registered per created pin, one removed per delete
    regs = [t for t in tenants if t[2] == 0 and t[3] == 1]
    dels = [t for t in tenants if t[2] != 0]
    got_regs = [e for e in by_id.values() if e["type"] == "citrus.tenant.registered"]
    got_dels = [e for e in by_id.values() if e["type"] == "citrus.tenant.removed"]
    assert len(got_regs) == len(regs) and len(got_dels) == len(dels)
    # one key's events stay in one partition, in order
    parts = {}
    for ev in events:
        parts.setdefault(ev["_key"], set()).add(ev["_part"])
    assert all(len(p) == 1 for p in parts.values())
    return len(shards), len(by_id)


def flip(c, sid):
    """active -> read-only -> active, as fast as the API answers."""
    for action in ("read-only", "activate"):
        requests.post(f"{c.url}/v1/shards/{sid}/{action}", timeout=5)


def test_every_transition_has_its_event(citrus_shards):
    c = citrus_shards
    flip(c, "shard-1")
    r = requests.post(c.url + "/api/register", json={
        "businessId": "b1", "locationId": "l1", "businessType": "retail"}, timeout=10)
    assert r.status_code == 201, r.text
    requests.delete(c.url + "/v1/tenants/b1:l1", timeout=5)
    catch_up(c)
    c.stop()
    n, ids = check(c.data_dir)
    # four shards made active (2 each) and one flipped (2)
    assert n == 10 and ids >= 10 + 4 + 2


def test_kill9_between_transition_and_event(citrus_shards):
    """Transitions run flat out while the node is killed with SIGKILL at
    random moments, five times; after a clean restart the topic and the
    catalog agree exactly: every transition has exactly one event id, and
    each id is on the topic once."""
    c = citrus_shards
    rnd = random.Random(15)
    for _ in range(5):
        stop = threading.Event()

        def churn():
            while not stop.is_set():
                try:
                    flip(c, rnd.choice(["shard-0", "shard-1", "shard-2"]))
                except requests.RequestException:
                    return

        t = threading.Thread(target=churn)
        t.start()
        time.sleep(rnd.uniform(0.2, 1.0))
        c.kill9()
        stop.set()
        t.join()
        c.start()
    catch_up(c)
    c.stop()
    n, _ = check(c.data_dir)
    assert n > 8 + 10, n  # the churn made transitions
