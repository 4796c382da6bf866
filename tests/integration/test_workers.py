"""The workers role and the event notification worker (docs/events.md,
"Workers", "Notifications").

What runs today: the role's switches (on in `citrus dev`, off in `citrus
server` unless `--workers`), a bad notification filter refused at start,
and GET /v1/notifications with its bad-input answers.

Events are published over HTTP (`POST /v1/topics/{topic}/events`, body
`{"events": [envelope, ...]}`). The runner's own behaviour (retries,
dead letters, duplicates, the kill -9 window) is tested without HTTP in
tests/unit/test_workers.c on the embedded bus and a real records store.
"""
import json
import os
import sqlite3
import subprocess
import time
import uuid

import pytest
import requests

from conftest import CITRUS_BIN, liveness, wait_until

TOPIC = "citrus.platform.events"
GROUP = "citrus-event-notification"
WORKER = 'worker="event_notification"'


def metric(url, name, labels=WORKER):
    text = requests.get(url + "/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith(f"{name}{{{labels}}} "):
            return float(line.split()[-1])
    return None


def notifications(url, **params):
    r = requests.get(url + "/v1/notifications", params=params, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def all_notifications(url):
    rows, after = [], 0
    while True:
        page = notifications(url, limit=1000, after=after)
        rows += page["notifications"]
        if page["next_after"] is None:
            return rows
        after = page["next_after"]


def event(i, source="/platform/disk", type_="disk.full", severity=None, data=None, **extra):
    ev = {"specversion": "1.0", "id": f"ev-{i}", "source": source, "type": type_,
          "correlationid": f"corr-{i}"}
    if severity is not None:
        ev["severity"] = severity
    if data is not None:
        ev["data"] = data
    ev.update(extra)
    return ev


# ---- what runs today ------------------------------------------------------------------------

def test_dev_runs_the_notification_worker(citrus):
    assert metric(citrus.url, "citrus_worker_processed_total") == 0
    started = {line["fields"]["worker"]: line["fields"] for line in citrus.log_lines()
               if line.get("component") == "worker" and line.get("msg") == "started"}
    assert sorted(started) == ["enrollment_ingest", "event_notification", "registration",
                             "shard_management"], started
    f = started["event_notification"]
    assert (f["topic"], f["group"]) == (TOPIC, GROUP)
    f = started["enrollment_ingest"]
    assert (f["topic"], f["group"]) == ("citrus.enrollment.events", "citrus-enrollment-ingest")


def test_the_role_is_a_switch(make_citrus):
    off = make_citrus(mode="server")
    assert metric(off.url, "citrus_worker_processed_total") is None
    off.stop()
    on = make_citrus(mode="server", extra=["--workers"])  # alone: true
    assert metric(on.url, "citrus_worker_processed_total") == 0
    on.stop()
    dev_off = make_citrus(extra=["--workers", "false"])
    assert metric(dev_off.url, "citrus_worker_processed_total") is None
    dev_off.stop()
    # the config file and its group setting
    cfg = os.path.join(dev_off.data_dir, "..", "w.json")
    with open(cfg, "w") as f:
        json.dump({"workers": {"enabled": True, "notification_filter": {"types": ["a.*"]}},
                   "bus": {"groups": {"event_notification": "ops-notes"}}}, f)
    named = make_citrus(mode="server", extra=["--config", cfg, "--auth", "none",
                                              "--auth-allow-none", "true"])
    started = [line["fields"] for line in named.log_lines()
               if line.get("component") == "worker" and line.get("msg") == "started"
               and line["fields"]["worker"] == "event_notification"]
    assert started and started[0]["group"] == "ops-notes"


def run(*args, timeout=20):
    return subprocess.run([CITRUS_BIN, *args], capture_output=True, text=True, timeout=timeout)


def test_bad_filter_refused_at_start(tmp_path):
    base = ["dev", "--data-dir", str(tmp_path / "d"), "--listen", "127.0.0.1:0",
            "--router-listen", "off", "--dev-shards", "0"]
    r = run(*base, "--notification-filter-severities", "x" * 33)
    assert r.returncode == 2, r.stderr
    assert "workers.notification_filter.severities" in r.stderr
    r = run(*base, "--notification-filter-types", "a,,b")
    assert r.returncode == 2, r.stderr
    assert "notification_filter" in r.stderr
    r = run(*base, "--worker-batch", "0")
    assert r.returncode == 2, r.stderr


def test_notifications_route_and_bad_input(citrus):
    assert notifications(citrus.url) == {"notifications": [], "next_after": None}
    assert notifications(citrus.url, source="/x", type="t", severity="ERROR",
                         since="2026-01-02T03:04:05Z", limit=1, after=0)["notifications"] == []
    for bad in ({"limit": "0"}, {"limit": "1001"}, {"limit": "x"}, {"after": "-1"},
                {"since": "yesterday"}, {"source": ""}, {"type": "t" * 257},
                {"severity": "s" * 33}):
        r = requests.get(citrus.url + "/v1/notifications", params=bad, timeout=5)
        assert r.status_code == 400, (bad, r.text)
        body = r.json()
        assert body["error"]["code"] == "invalid_argument", body
        assert list(bad)[0] in body["error"]["message"], body
    r = requests.post(citrus.url + "/v1/notifications", json={}, timeout=5)
    assert r.status_code == 405


# ---- events published over POST /v1/topics/{topic}/events ----------------------------------------

def publish(url, events, topic=TOPIC):
    r = requests.post(f"{url}/v1/topics/{topic}/events", json={"events": events}, timeout=30)
    assert r.status_code in (200, 201, 202), r.text
    return r


def test_platform_events_become_filtered_notifications(make_citrus):
    c = make_citrus(extra=["--notification-filter-sources", "/platform/*",
                           "--notification-filter-severities", "warning,error"])
    publish(c.url, [
        event(1, severity="Error", subject="node-3", time="2026-12-07T01:02:03Z",
              data={"pct": 97}),
        event(2, data={"severity": "info"}),                   # severity: no
        event(3, source="/other", severity="error"),           # source: no
        event(4, source="/platform/net", type_="net.slow", data={"severity": "warning"}),
    ])
    wait_until(lambda: metric(c.url, "citrus_worker_processed_total") == 4, liveness(10),
               what="4 events processed")
    # events of other keys are in other partitions: stored in no set order
    rows = sorted(all_notifications(c.url), key=lambda r: r["event_id"])
    assert [r["event_id"] for r in rows] == ["ev-1", "ev-4"]
    assert rows[0]["severity"] == "error" and rows[0]["subject"] == "node-3"
    assert rows[0]["time"].startswith("2026-12-07T01:02:03")
    assert rows[0]["data"] == {"pct": 97} and rows[0]["correlation_id"] == "corr-1"
    assert metric(c.url, "citrus_worker_skipped_total") == 2
    assert [r["event_id"] for r in notifications(c.url, severity="WARNING")["notifications"]] \
        == ["ev-4"]
    assert [r["event_id"] for r in notifications(c.url, type="disk.full")["notifications"]] \
        == ["ev-1"]
    # the worker's log lines carry the event's correlation id
    publish(c.url, [event(5, severity="error", data="not an object"), event(5, severity="error")])
    wait_until(lambda: metric(c.url, "citrus_worker_duplicates_total") == 1, liveness(10),
               what="the copy of ev-5 found in the ledger")
    assert len(all_notifications(c.url)) == 3
    lines = [line for line in c.log_lines() if line.get("component") == "worker"
             and line.get("correlation_id") == "corr-5"]
    assert lines, "no worker line with the event's correlation id"


def test_kill9_mid_batch_every_event_stored_once(make_citrus):
    """kill -9 of the node while the worker is mid-batch under load: after a
    restart every event is processed and stored exactly once (the rows and
    the processed-ids ledger)."""
    N = 20000
    c = make_citrus(extra=["--workers", "false"])
    for start in range(0, N, 500):  # the backlog, with no worker running
        publish(c.url, [event(i) for i in range(start, min(start + 500, N))])
    c.stop()
    c.extra = [a for a in c.extra if a not in ("--workers", "false")] + ["--worker-batch", "50"]
    c.start()
    wait_until(lambda: 0 < (metric(c.url, "citrus_worker_processed_total") or 0) < N,
               liveness(30), interval=0.005, what="the worker mid-way")
    c.kill9()
    c.start()
    wait_until(lambda: len(all_notifications(c.url)) >= N, liveness(180), interval=0.5,
               what=f"{N} notifications after the restart")
    time.sleep(1)  # anything stored twice would show by now
    rows = all_notifications(c.url)
    ids = [r["event_id"] for r in rows]
    assert len(ids) == N and len(set(ids)) == N
    assert set(ids) == {f"ev-{i}" for i in range(N)}
    c.stop()
    db = sqlite3.connect(os.path.join(c.data_dir, "records.db"))
    try:
        ledger = db.execute("SELECT count(*), count(DISTINCT event_id) FROM citrus_processed"
                            " WHERE grp = ?", (GROUP,)).fetchone()
    finally:
        db.close()
    assert ledger == (N, N)


def test_malformed_platform_event_refused_or_dead_lettered(make_citrus):
    """A malformed envelope published on the topic never becomes a
    notification: the route refuses it (400), or, if it reached the topic,
    the worker dead-letters it on its first delivery."""
    c = make_citrus()
    r = requests.post(f"{c.url}/v1/topics/{TOPIC}/events",
                      json={"events": [{"specversion": "1.0", "source": "/s", "type": "t"}]},
                      timeout=10)
    assert r.status_code == 400, r.text
    assert notifications(c.url)["notifications"] == []
    ok = event(str(uuid.uuid4()))
    publish(c.url, [ok])
    wait_until(lambda: notifications(c.url)["notifications"], liveness(10), what="the good one")


# ---- enrollment manifests ----------------------------------------------------------------------

def test_manifests_put_get_and_bad_input(citrus):
    url = citrus.url + "/v1/manifests/enr-1"
    r = requests.put(url, json={"tenant_key": "acme:north", "items": [1, 2]}, timeout=5)
    assert r.status_code == 201, r.text
    assert r.json()["version"] == 1 and r.json()["manifest"]["items"] == [1, 2]
    r = requests.put(url, json={"tenant_key": "acme:south"}, timeout=5)
    assert r.status_code == 200 and r.json()["version"] == 2, r.text
    got = requests.get(url, timeout=5).json()
    assert got["id"] == "enr-1" and got["version"] == 2
    assert got["manifest"] == {"tenant_key": "acme:south"}
    assert requests.get(citrus.url + "/v1/manifests/nope", timeout=5).status_code == 404
    for body in ([], {"x": 1}, {"tenant_key": 7}, {"tenant_key": "bad key"}):
        r = requests.put(url, json=body, timeout=5)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error"]["code"] in ("bad_json", "invalid_argument")
    r = requests.put(citrus.url + "/v1/manifests/a%20b", json={"tenant_key": "a:b"}, timeout=5)
    assert r.status_code == 400 and "manifest id" in r.json()["error"]["message"]
    r = requests.put(url, data=b'{"tenant_key": "a:b", "pad": "' + b"x" * 300000 + b'"}',
                     headers={"Content-Type": "application/json"}, timeout=5)
    assert r.status_code == 400 and r.json()["error"]["code"] == "value_too_large", r.text
    assert requests.get(url, timeout=5).json()["version"] == 2  # nothing written
    audit = requests.get(citrus.url + "/v1/audit", params={"action": "manifest.put"},
                         timeout=5).json()["entries"]
    assert [e["target"] for e in audit if e["status"] in (200, 201)] == ["enr-1", "enr-1"]


def test_enrollment_ingest_end_to_end(make_citrus):
    """An enrollment-committed event whose manifest is
    there becomes one shard ingest command; one whose manifest comes later
    is retried with backoff and then succeeds; the same event again does
    nothing more (the ledger)."""
    c = make_citrus(shards=True, extra=["--bus-backoff-base-ms", "100",
                                        "--bus-backoff-cap-ms", "200"])
    ing = 'worker="enrollment_ingest"'
    r = requests.put(c.url + "/v1/manifests/m1", json={"tenant_key": "acme:north"}, timeout=5)
    assert r.status_code == 201, r.text
    enrollment = "citrus.enrollment.events"
    publish(c.url, [{"specversion": "1.0", "id": "enr-1", "source": "urn:enrollment",
                     "type": "enrollment.committed", "data": {"manifest_id": "m1"}}],
            topic=enrollment)
    wait_until(lambda: metric(c.url, "citrus_worker_processed_total", ing) == 1, liveness(10),
               what="the first enrollment processed")
    publish(c.url, [{"specversion": "1.0", "id": "enr-2", "source": "urn:enrollment",
                     "type": "enrollment.committed", "subject": "m-late"}], topic=enrollment)
    wait_until(lambda: (metric(c.url, "citrus_worker_retried_total", ing) or 0) >= 1,
               liveness(10), what="the missing manifest retried")
    r = requests.put(c.url + "/v1/manifests/m-late", json={"tenant_key": "acme:south"}, timeout=5)
    assert r.status_code == 201, r.text
    wait_until(lambda: metric(c.url, "citrus_worker_processed_total", ing) == 2, liveness(10),
               what="the late one processed")
    publish(c.url, [{"specversion": "1.0", "id": "enr-1", "source": "urn:enrollment",
                     "type": "enrollment.committed", "data": {"manifest_id": "m1"}}],
            topic=enrollment)
    wait_until(lambda: metric(c.url, "citrus_worker_duplicates_total", ing) == 1, liveness(10),
               what="the replay found in the ledger")
    assert metric(c.url, "citrus_worker_processed_total", ing) == 2
    assert (metric(c.url, "citrus_worker_dead_lettered_total", ing) or 0) == 0
