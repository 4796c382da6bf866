"""The registration queue (issue 15 item 5, seed 003; docs/events.md,
"Registration queue"): POST /api/register[/batch]?async=true (or Prefer:
respond-async) answers 202 with a registration id per location and the
registration worker does what the synchronous call does; while the target
shard does not answer (a SIGSTOPped PostgreSQL shard) it retries with the
bus's backoff and succeeds once it answers, with no client retry; past
bus.max_attempts it is failed, listed, its message in the .dlq topic, and
POST /v1/businesses/{id}/register-shards re-drives it. Bad inputs are
synchronous 400/404/409 with nothing queued; a reader cannot retry."""
import json
import os
import sqlite3
from pathlib import Path

import pytest
import requests

from conftest import liveness, wait_until
from pg import make_postgres  # noqa: F401 (fixture)
from test_register_deadline import TEMPLATE, Stopped, locations_on, psql

TOPIC = "citrus.registrations"
ASYNC = {"Prefer": "respond-async"}


def register(url, biz, loc, typ="retail", headers=None, params=None):
    return requests.post(url + "/api/register", timeout=30, headers=headers, params=params,
                         json={"businessId": biz, "locationId": loc, "businessType": typ})


def add_type(c, name):
    """A business type with an empty schema template."""
    (Path(c.data_dir) / "templates" / name).mkdir(parents=True, exist_ok=True)


def registration(url, rid):
    r = requests.get(f"{url}/v1/registrations/{rid}", timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def wait_state(url, rid, states, timeout=30):
    got = {}

    def reached():
        got.update(registration(url, rid))
        return got["state"] in states
    wait_until(reached, timeout=liveness(timeout), what=f"{rid} in {states}")
    return dict(got)


def dlq_messages(c):
    db = sqlite3.connect(os.path.join(c.data_dir, "bus.db"))
    try:
        return [(json.loads(v), err) for v, err in db.execute(
            "SELECT value, error FROM bus_messages WHERE topic = ? ORDER BY part, off",
            (TOPIC + ".dlq",))]
    finally:
        db.close()


def registration_rows(c):
    db = sqlite3.connect(os.path.join(c.data_dir, "records.db"))
    try:
        return db.execute("SELECT count(*) FROM citrus_registrations").fetchone()[0]
    finally:
        db.close()


@pytest.fixture
def setup(make_citrus, make_postgres, tmp_path):
    def make(max_attempts=100, extra=()):
        pg = make_postgres()
        tdir = tmp_path / "templates" / "retail"
        tdir.mkdir(parents=True, exist_ok=True)
        (tdir / "001_orders.sql").write_text(TEMPLATE)
        c = make_citrus(shards=True, extra=[
            "--templates-dir", str(tmp_path / "templates"),
            "--bus-max-attempts", str(max_attempts), "--bus-backoff-base-ms", "100",
            "--bus-backoff-cap-ms", "300", "--bus-visibility-timeout-ms", "3000", *extra])
        psql(pg.admin_dsn, "CREATE DATABASE shard1")
        r = requests.post(c.url + "/v1/shards?allow_superuser=true",
                          json={"id": "pg-1", "dsn": pg.dsn("shard1")}, timeout=30)
        assert r.status_code == 201, r.text
        return c, pg
    return make


def test_async_register_happy_path(citrus_shards):
    c = citrus_shards
    r = register(c.url, "acme", "s1", params={"async": "true"})
    assert r.status_code == 202, r.text
    body = r.json()
    rid = body["registrationId"]
    assert r.headers["Location"] == f"/v1/registrations/{rid}"
    assert r.headers["Preference-Applied"] == "respond-async"
    assert body["state"] == "queued" and body["location"] == r.headers["Location"]
    got = wait_state(c.url, rid, {"succeeded"})
    pin = requests.get(c.url + "/api/shard/acme:s1", timeout=10).json()
    assert got["shard_id"] == pin["shardId"]
    assert got["attempts"] == 1 and got["last_error"] is None
    assert (got["business_id"], got["location_id"], got["business_type"]) == \
        ("acme", "s1", "retail")
    assert got["finished_at"] and got["created_at"]
    assert "dsn" not in json.dumps(got).lower() and "password" not in json.dumps(got)
    # the same location and type again, asynchronously: a success with the same pin
    again = register(c.url, "acme", "s1", headers=ASYNC).json()["registrationId"]
    assert again != rid
    assert wait_state(c.url, again, {"succeeded"})["shard_id"] == pin["shardId"]
    # synchronous registration is as it was
    r = register(c.url, "acme", "s2")
    assert r.status_code == 201 and "registrationId" not in r.json(), r.text
    # audited as the synchronous call
    audit = requests.get(c.url + "/v1/audit", params={"action": "tenant.register"},
                         timeout=10).json()
    assert len(audit["entries"]) == 3, audit


def test_async_batch_is_one_registration_per_location(citrus_shards):
    c = citrus_shards
    body = {"businessId": "bb", "locations": [{"locationId": f"l{i}", "businessType": "retail"}
                                              for i in range(3)]}
    r = requests.post(c.url + "/api/register/batch?async=1", json=body, timeout=30)
    assert r.status_code == 202, r.text
    regs = r.json()["registrations"]
    assert [x["locationId"] for x in regs] == ["l0", "l1", "l2"]
    assert r.headers["Location"] == f"/v1/registrations/{regs[0]['registrationId']}"
    for x in regs:
        assert wait_state(c.url, x["registrationId"], {"succeeded"})["shard_id"]
    listed = requests.get(c.url + "/v1/registrations", params={"business_id": "bb"},
                          timeout=10).json()
    assert sorted(x["id"] for x in listed["registrations"]) == \
        sorted(x["registrationId"] for x in regs)


def test_another_type_fails_at_once_without_retries(citrus_shards):
    c = citrus_shards
    assert register(c.url, "cx", "main").status_code == 201
    add_type(c, "restaurant")
    rid = register(c.url, "cx", "main", "restaurant", headers=ASYNC).json()["registrationId"]
    got = wait_state(c.url, rid, {"failed"})
    assert got["attempts"] == 1, got
    assert got["last_error"].startswith("conflict"), got
    assert any(m["data"]["registrationId"] == rid for m, _ in dlq_messages(c))


def test_stopped_shard_then_resumed_succeeds_without_a_client_retry(setup):
    c, pg = setup()
    [loc] = locations_on(c.url, "b1", "pg-1", 1)
    with Stopped(pg):
        r = register(c.url, "b1", loc, headers=ASYNC)
        assert r.status_code == 202, r.text
        rid = r.json()["registrationId"]
        got = wait_state(c.url, rid, {"retrying"})
        assert got["last_error"].startswith("shard_unreachable"), got
        assert got["next_attempt_at"] is not None
        wait_until(lambda: registration(c.url, rid)["attempts"] >= 2,
                   timeout=liveness(20), what="a second attempt")
    got = wait_state(c.url, rid, {"succeeded"})
    assert got["shard_id"] == "pg-1" and got["attempts"] >= 2
    assert psql(pg.dsn("shard1"), "SELECT name FROM citrus_migrations") == "001_orders.sql"
    assert requests.get(f"{c.url}/api/shard/b1:{loc}", timeout=10).json()["shardId"] == "pg-1"


def test_a_retry_holds_back_no_other_registration(setup):
    """One partition for the whole queue: a registration retrying against a
    stopped shard does not hold back another business's registration
    queued after it (its message is committed while it waits; the sweeper
    publishes its next attempt when due)."""
    c, pg = setup(extra=["--bus-partitions", "1"])
    [slow] = locations_on(c.url, "b1", "pg-1", 1)
    sqlite_shard = next(s["id"] for s in requests.get(c.url + "/v1/shards", timeout=10).json()[
        "shards"] if s["id"] != "pg-1" and s["state"] == "active")
    [fast] = locations_on(c.url, "b2", sqlite_shard, 1)
    with Stopped(pg):
        r = register(c.url, "b1", slow, headers=ASYNC)
        assert r.status_code == 202, r.text
        a = r.json()["registrationId"]
        wait_state(c.url, a, {"retrying"})
        r = register(c.url, "b2", fast, headers=ASYNC)
        assert r.status_code == 202, r.text
        b = r.json()["registrationId"]
        got = wait_state(c.url, b, {"succeeded"}, timeout=15)
        assert got["shard_id"] == sqlite_shard and got["attempts"] == 1, got
        # meanwhile the first one is still being retried, not given up
        assert registration(c.url, a)["state"] in ("retrying", "queued", "running")
        wait_until(lambda: registration(c.url, a)["attempts"] >= 3, timeout=liveness(20),
                   what="more attempts of the stopped shard's registration")
    got = wait_state(c.url, a, {"succeeded"})
    assert got["shard_id"] == "pg-1"


def test_a_worker_killed_mid_attempt_leaves_no_record_running(setup):
    """kill -9 while an attempt runs (the record says running): after the
    restart the redelivery goes on and succeeds; killed in its last
    delivery (bus.max_attempts 1, dead-lettered by the bus when its lease
    ends), the record does not stay running: it is failed, and says why."""
    c, pg = setup()
    [loc] = locations_on(c.url, "k1", "pg-1", 1)
    with Stopped(pg):
        r = register(c.url, "k1", loc, headers=ASYNC)
        rid = r.json()["registrationId"]
        got = wait_state(c.url, rid, {"running"})
        assert got["next_attempt_at"] is not None  # the attempt's deadline
        c.kill9()
    c.start()
    got = wait_state(c.url, rid, {"succeeded"}, timeout=30)
    assert got["attempts"] >= 2 and got["shard_id"] == "pg-1", got

    c, pg = setup(max_attempts=1)
    [loc] = locations_on(c.url, "k2", "pg-1", 1)
    with Stopped(pg):
        r = register(c.url, "k2", loc, headers=ASYNC)
        rid = r.json()["registrationId"]
        wait_state(c.url, rid, {"running"})
        c.kill9()
        c.start()
        # the lease (3 s) ends, the bus dead-letters the message, and a
        # lease later the sweeper finds the record abandoned
        got = wait_state(c.url, rid, {"failed"}, timeout=30)
    assert got["last_error"].startswith("worker_stopped: ") and "the last one" in got[
        "last_error"], got
    assert got["attempts"] == 1
    wait_until(lambda: [m for m, _ in dlq_messages(c) if m["data"]["registrationId"] == rid],
               timeout=liveness(20), what="its message dead-lettered")
    # re-driven once the shard answers again
    r = requests.post(f"{c.url}/v1/registrations/{rid}/retry", timeout=10)
    assert r.status_code == 202, r.text
    assert wait_state(c.url, rid, {"succeeded"})["shard_id"] == "pg-1"


def test_past_max_attempts_failed_listed_dead_lettered_then_redriven(setup):
    c, pg = setup(max_attempts=2)
    [loc] = locations_on(c.url, "b2", "pg-1", 1)
    with Stopped(pg):
        rid = register(c.url, "b2", loc, headers=ASYNC).json()["registrationId"]
        got = wait_state(c.url, rid, {"failed"}, timeout=40)
        assert got["attempts"] == 2 and got["last_error"].startswith("shard_unreachable")
        failed = requests.get(c.url + "/v1/registrations",
                              params={"state": "failed", "business_id": "b2"}, timeout=10).json()
        assert [x["id"] for x in failed["registrations"]] == [rid]
        wait_until(lambda: any(m["data"]["registrationId"] == rid for m, _ in dlq_messages(c)),
                   timeout=liveness(10), what="its message in the .dlq topic")
        assert requests.get(f"{c.url}/api/shard/b2:{loc}", timeout=10).status_code == 404
    r = requests.post(c.url + "/v1/businesses/b2/register-shards", timeout=30)
    assert r.status_code == 202, r.text
    assert r.json()["requeued"] == 1 and r.json()["registrations"] == [rid]
    got = wait_state(c.url, rid, {"succeeded"})
    assert got["shard_id"] == "pg-1" and got["attempts"] >= 3
    # nothing failed is left to re-drive
    r = requests.post(c.url + "/v1/businesses/b2/register-shards", timeout=30)
    assert r.json()["requeued"] == 0
    audit = requests.get(c.url + "/v1/audit", params={"action": "registration.redrive"},
                         timeout=10).json()
    assert len(audit["entries"]) == 2


def test_retry_of_a_failed_one_and_409_when_not_failed(citrus_shards):
    c = citrus_shards
    assert register(c.url, "rt", "main").status_code == 201
    add_type(c, "restaurant")
    rid = register(c.url, "rt", "main", "restaurant", headers=ASYNC).json()["registrationId"]
    wait_state(c.url, rid, {"failed"})
    ok = register(c.url, "rt", "other", headers=ASYNC).json()["registrationId"]
    wait_state(c.url, ok, {"succeeded"})
    r = requests.post(f"{c.url}/v1/registrations/{ok}/retry", timeout=10)
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "compare_failed"
    # the conflict is removed: the retried one succeeds
    assert requests.delete(c.url + "/v1/tenants/rt:main", timeout=10).status_code == 200
    r = requests.post(f"{c.url}/v1/registrations/{rid}/retry", timeout=10)
    assert r.status_code == 202, r.text
    assert r.headers["Location"] == f"/v1/registrations/{rid}"
    assert wait_state(c.url, rid, {"succeeded"})["attempts"] == 2


def topic_messages(c, rid):
    """The messages of registration rid on the registrations topic, in order."""
    db = sqlite3.connect(os.path.join(c.data_dir, "bus.db"))
    try:
        rows = [json.loads(v) for (v,) in db.execute(
            "SELECT value FROM bus_messages WHERE topic = ? ORDER BY part, off", (TOPIC,))]
    finally:
        db.close()
    return [m for m in rows if m["data"]["registrationId"] == rid]


def test_a_retry_keeps_the_correlation_id_unless_it_brings_its_own(citrus_shards):
    c = citrus_shards
    assert register(c.url, "cr", "main").status_code == 201
    add_type(c, "restaurant")
    r = register(c.url, "cr", "main", "restaurant",
                 headers={**ASYNC, "X-Correlation-Id": "orig-req-1"})
    assert r.status_code == 202, r.text
    rid = r.json()["registrationId"]
    got = wait_state(c.url, rid, {"failed"})
    assert got["correlation_id"] == "orig-req-1"
    assert [m.get("correlationid") for m in topic_messages(c, rid)] == ["orig-req-1"]
    # a retry without its own id: the re-published message keeps the original
    r = requests.post(f"{c.url}/v1/registrations/{rid}/retry", timeout=10)
    assert r.status_code == 202, r.text
    assert r.headers["X-Correlation-Id"] != "orig-req-1"  # the retry's own (generated) one
    assert r.json()["correlation_id"] == "orig-req-1"
    wait_until(lambda: len(topic_messages(c, rid)) == 2, timeout=liveness(10),
               what="the retry's message")
    msgs = topic_messages(c, rid)
    assert msgs[1]["id"] != msgs[0]["id"]
    assert msgs[1]["correlationid"] == "orig-req-1"
    wait_state(c.url, rid, {"failed"})
    # a re-drive that brings its own id: its messages carry that one, kept on the record
    r = requests.post(c.url + "/v1/businesses/cr/register-shards",
                      headers={"X-Correlation-Id": "redrive-op-7"}, timeout=30)
    assert r.status_code == 202, r.text
    assert r.json()["registrations"] == [rid]
    wait_until(lambda: len(topic_messages(c, rid)) == 3, timeout=liveness(10),
               what="the re-drive's message")
    assert topic_messages(c, rid)[2]["correlationid"] == "redrive-op-7"
    assert wait_state(c.url, rid, {"failed"})["correlation_id"] == "redrive-op-7"
    # a registration queued without a header: the id the server gave its request
    r = register(c.url, "cr", "other", headers=ASYNC)
    rid2 = r.json()["registrationId"]
    assert topic_messages(c, rid2)[0]["correlationid"] == r.headers["X-Correlation-Id"]
    assert registration(c.url, rid2)["correlation_id"] == r.headers["X-Correlation-Id"]


def test_bad_inputs(citrus_shards):
    c = citrus_shards
    before = registration_rows(c)
    # a malformed body stays a synchronous 400 and queues nothing
    for body in ({"businessId": "x"}, {"businessId": "x", "locationId": "a b",
                                       "businessType": "retail"}, [1]):
        r = requests.post(c.url + "/api/register?async=true", json=body, timeout=10)
        assert r.status_code == 400, r.text
    r = requests.post(c.url + "/api/register/batch", headers=ASYNC, timeout=10,
                      json={"businessId": "x", "locations": []})
    assert r.status_code == 400, r.text
    r = register(c.url, "x", "y", "nosuchtype", headers=ASYNC)
    assert r.status_code == 422, r.text
    r = register(c.url, "x", "y", params={"async": "maybe"})
    assert r.status_code == 400, r.text
    assert registration_rows(c) == before
    # unknown ids
    for path in ("/v1/registrations/nope", "/v1/registrations/" + "a" * 300):
        r = requests.get(c.url + path, timeout=10)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", r.text
    r = requests.post(c.url + "/v1/registrations/nope/retry", timeout=10)
    assert r.status_code == 404, r.text
    # bad query values
    for params in ({"state": "done"}, {"limit": "0"}, {"limit": "1001"}, {"after": "-1"},
                   {"business_id": "a b"}, {"limit": "x"}):
        r = requests.get(c.url + "/v1/registrations", params=params, timeout=10)
        assert r.status_code == 400, (params, r.text)
    r = requests.post(c.url + "/v1/businesses/a%20b/register-shards", timeout=10)
    assert r.status_code == 400, r.text


def test_paging(citrus_shards):
    c = citrus_shards
    ids = [register(c.url, "pg", f"l{i}", headers=ASYNC).json()["registrationId"]
           for i in range(5)]
    seen, after = [], 0
    while True:
        page = requests.get(c.url + "/v1/registrations", timeout=10,
                            params={"business_id": "pg", "limit": 2, "after": after}).json()
        assert len(page["registrations"]) <= 2
        seen += [x["id"] for x in page["registrations"]]
        if page["next_after"] is None:
            break
        after = page["next_after"]
    assert seen == ids


def test_roles_a_reader_reads_but_cannot_retry_or_redrive(make_citrus):
    c = make_citrus(shards=True, extra=["--auth", "api_key"])
    admin = open(os.path.join(c.data_dir, "admin.key")).read().strip()

    def key(name, roles):
        r = requests.post(c.url + "/v1/auth/keys", json={"name": name, "roles": roles},
                          headers={"Authorization": f"Bearer {admin}"}, timeout=10)
        assert r.status_code == 201, r.text
        return {"Authorization": f"Bearer {r.json()['key']}"}
    reader, oper = key("reader", ["reader"]), key("ops", ["sm-operator"])
    # a failed registration (another type for a registered location)
    assert requests.post(c.url + "/api/register", headers=oper, timeout=30, json={
        "businessId": "ro", "locationId": "m", "businessType": "retail"}).status_code == 201
    add_type(c, "restaurant")
    r = requests.post(c.url + "/api/register?async=true", headers=oper, timeout=30, json={
        "businessId": "ro", "locationId": "m", "businessType": "restaurant"})
    assert r.status_code == 202, r.text
    rid = r.json()["registrationId"]

    def failed():
        r = requests.get(f"{c.url}/v1/registrations/{rid}", headers=reader, timeout=10)
        assert r.status_code == 200, r.text
        return r.json()["state"] == "failed"
    wait_until(failed, timeout=liveness(30), what="failed")
    for path in (f"/v1/registrations/{rid}/retry", "/v1/businesses/ro/register-shards"):
        r = requests.post(c.url + path, headers=reader, timeout=10)
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", r.text
    assert requests.get(f"{c.url}/v1/registrations/{rid}", headers=reader,
                        timeout=10).json()["state"] == "failed"
    r = requests.post(f"{c.url}/v1/registrations/{rid}/retry", headers=oper, timeout=10)
    assert r.status_code == 202, r.text
    # audited: who retried it
    audit = requests.get(c.url + "/v1/audit", params={"action": "registration.retry"},
                         headers={"Authorization": f"Bearer {admin}"}, timeout=10).json()
    assert [(x["principal"].rsplit("/", 1)[-1], x["status"]) for x in audit["entries"]] == \
        [("ops", 202)]


def test_a_tenant_reads_its_own_registrations_only(make_citrus):
    """A tenant key queues registrations in its scopes and reads them back
    (one and listed); another tenant's ids answer 404 as unknown ones do
    and its list holds none of them; it still cannot retry."""
    c = make_citrus(shards=True, extra=["--auth", "api_key"])
    admin = open(os.path.join(c.data_dir, "admin.key")).read().strip()

    def key(name, roles, tenants=None):
        body = {"name": name, "roles": roles}
        if tenants:
            body["tenants"] = tenants
        r = requests.post(c.url + "/v1/auth/keys", json=body,
                          headers={"Authorization": f"Bearer {admin}"}, timeout=10)
        assert r.status_code == 201, r.text
        return {"Authorization": f"Bearer {r.json()['key']}"}
    acme, globex = key("acme", ["tenant"], ["acme:*"]), key("globex", ["tenant"], ["globex:*"])
    mine = register(c.url, "acme", "n1", headers=dict(acme, **ASYNC))
    assert mine.status_code == 202, mine.text
    theirs = register(c.url, "globex", "g1", headers=dict(globex, **ASYNC))
    assert theirs.status_code == 202, theirs.text
    mine, theirs = mine.json()["registrationId"], theirs.json()["registrationId"]
    r = requests.get(f"{c.url}/v1/registrations/{mine}", headers=acme, timeout=10)
    assert r.status_code == 200 and r.json()["business_id"] == "acme", r.text
    wait_until(lambda: requests.get(f"{c.url}/v1/registrations/{mine}", headers=acme,
                                    timeout=10).json()["state"] == "succeeded",
               timeout=liveness(30), what="succeeded")
    # the other tenant's: 404, word for word as an id that does not exist
    r = requests.get(f"{c.url}/v1/registrations/{theirs}", headers=acme, timeout=10)
    nope = requests.get(f"{c.url}/v1/registrations/{'0' * 36}", headers=acme, timeout=10)
    assert r.status_code == 404 and nope.status_code == 404, r.text
    assert r.json()["error"]["code"] == nope.json()["error"]["code"] == "not_found"
    assert "globex" not in r.text
    # lists: its own only, with or without a business filter
    ids = {x["id"] for x in requests.get(f"{c.url}/v1/registrations", headers=acme,
                                         timeout=10).json()["registrations"]}
    assert ids == {mine}
    r = requests.get(f"{c.url}/v1/registrations?business_id=globex", headers=acme, timeout=10)
    assert r.status_code == 200 and r.json()["registrations"] == [], r.text
    ids = {x["id"] for x in requests.get(f"{c.url}/v1/registrations", headers=globex,
                                         timeout=10).json()["registrations"]}
    assert ids == {theirs}
    # an admin sees both; a tenant still cannot retry or re-drive
    ids = {x["id"] for x in requests.get(f"{c.url}/v1/registrations", timeout=10, headers={
        "Authorization": f"Bearer {admin}"}).json()["registrations"]}
    assert ids == {mine, theirs}
    for path in (f"/v1/registrations/{mine}/retry", "/v1/businesses/acme/register-shards"):
        r = requests.post(c.url + path, headers=acme, timeout=10)
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", r.text


def test_the_worker_runs_on_its_topic_and_group(make_citrus):
    c = make_citrus(extra=["--bus-topic-registrations", "q.regs",
                           "--bus-group-registration", "g-regs"])
    started = [line["fields"] for line in c.log_lines()
               if line.get("component") == "worker" and line.get("msg") == "started"
               and line["fields"]["worker"] == "registration"]
    assert [(f["topic"], f["group"]) for f in started] == [("q.regs", "g-regs")]
    r = register(c.url, "t", "l", headers=ASYNC)
    # no shard yet: queued all the same, retried until one is active
    assert r.status_code == 202, r.text
    rid = r.json()["registrationId"]
    got = wait_state(c.url, rid, {"retrying"})
    assert got["last_error"].startswith("unavailable: "), got
    db = sqlite3.connect(os.path.join(c.data_dir, "bus.db"))
    try:
        assert db.execute("SELECT count(*) FROM bus_messages WHERE topic = 'q.regs'"
                          ).fetchone()[0] == 1
    finally:
        db.close()
