"""`citrus events publish|tail|lag` and `citrus dlq ls|replay` (issue 15,
item 6) against citrus dev with API keys: answers, exit codes, usage
errors. Dead letters and group positions are seeded into bus.db as in
test_events_api (no worker consumes the bus yet)."""
import json
import os
import re
import subprocess
import time

import pytest

from conftest import CITRUS_BIN, run_cli
from test_events_api import CMDS, TOPIC, Node, ev, seed


@pytest.fixture
def node(make_citrus):
    c = make_citrus(extra=["--auth", "api_key", "--bus-partitions", "2"])
    return Node(c)


def cli(node, *args, token="oper", input=None):
    tok = {"oper": node.oper, "reader": node.reader, "admin": node.admin}.get(token, token)
    env = {"CITRUS_ENDPOINT": node.c.url, "CITRUS_TOKEN": tok or ""}
    return run_cli(*args, env=env, input=input)


def test_publish_and_tail(node, tmp_path):
    r = cli(node, "events", "publish", TOPIC, "--type", "citrus.test", "--subject", "shard-7",
            "--data", '{"severity": "high"}')
    assert r.returncode == 0, r.stderr
    eid, _, part, _, off, _, key = r.stdout.split()
    assert key == "shard-7" and off == "0"
    r = cli(node, "events", "publish", TOPIC, "--event-key", "kk", "--data",
            json.dumps(ev("x-1", tenantx="kept")))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("x-1  partition ") and r.stdout.strip().endswith("key kk")
    f = tmp_path / "batch.json"
    f.write_text(json.dumps({"events": [ev(f"b-{i}", subject="same") for i in range(12)]}))
    r = cli(node, "events", "publish", TOPIC, "--file", str(f), "-o", "json")
    assert r.returncode == 0, r.stderr
    batch = json.loads(r.stdout)["events"]
    assert [b["id"] for b in batch] == [f"b-{i}" for i in range(12)]
    pb = batch[0]["partition"]
    # from stdin
    r = cli(node, "events", "publish", CMDS, "--file", "-", input=json.dumps(ev("stdin-1")))
    assert r.returncode == 0 and r.stdout.startswith("stdin-1  partition "), r.stderr
    # the built envelope, as the API shows it
    got = node.read(TOPIC, f"?partition={part}&from_offset=0").json()["events"][0]["event"]
    assert got["id"] == eid and got["type"] == "citrus.test" and got["source"] == "/citrus/cli"
    assert got["data"] == {"severity": "high"} and got["subject"] == "shard-7"
    # tail: the last 10 of each partition by default
    r = cli(node, "events", "tail", TOPIC, "--partition", str(pb), "-o", "json")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(lines) == 10 and lines[-1]["event"]["id"] == "b-11"
    assert all(x["partition"] == pb for x in lines)
    r = cli(node, "events", "tail", TOPIC, "--partition", str(pb), "--last", "2")
    assert [x.split()[0] for x in r.stdout.splitlines()] == [
        f"{pb}/{batch[10]['offset']}", f"{pb}/{batch[11]['offset']}"]
    r = cli(node, "events", "tail", TOPIC, "--partition", str(pb), "--from-offset",
            str(batch[0]["offset"]), "--max", "3", "-o", "json")
    assert [json.loads(x)["event"]["id"] for x in r.stdout.splitlines()] == ["b-0", "b-1", "b-2"]
    r = cli(node, "events", "tail", TOPIC, "--last", "100", "-o", "json")
    assert len(r.stdout.splitlines()) == 14  # every partition
    # errors: unknown topic, partition, offset past the end
    r = cli(node, "events", "tail", "nope")
    assert r.returncode == 1 and "no topic 'nope'" in r.stderr
    r = cli(node, "events", "tail", TOPIC, "--partition", "2")
    assert r.returncode == 1 and "partitions 0..1" in r.stderr
    r = cli(node, "events", "tail", TOPIC, "--partition", "0", "--from-offset", "999")
    assert r.returncode == 1 and "offset_out_of_range" in r.stderr


def test_tail_follow(node):
    env = dict(os.environ, CITRUS_ENDPOINT=node.c.url, CITRUS_TOKEN=node.reader)
    p = subprocess.Popen([CITRUS_BIN, "events", "tail", CMDS, "--follow", "--max", "2",
                          "-o", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=env)
    try:
        time.sleep(0.3)
        assert cli(node, "events", "publish", CMDS, "--data", json.dumps(ev("f-1"))).returncode == 0
        assert cli(node, "events", "publish", CMDS, "--data", json.dumps(ev("f-2"))).returncode == 0
        out, errs = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, errs
    assert sorted(json.loads(x)["event"]["id"] for x in out.splitlines()) == ["f-1", "f-2"]


def test_tail_wait_and_filters(node):
    """--wait bounds a follow: it ends as soon as --max matching events
    came, else at the deadline (exit 1 with --max, 0 without); --id,
    --type and --subject choose what is printed and counted."""
    r = node.publish(CMDS, {"events": [ev("w-0", subject="s1", type="t.a"),
                                       ev("w-1", subject="s2", type="t.a"),
                                       ev("w-2", subject="s1", type="t.b")]})
    assert r.status_code == 200, r.text
    ids = lambda out: [json.loads(x)["event"]["id"] for x in out.splitlines()]  # noqa: E731
    base = ["events", "tail", CMDS, "--from-offset", "0", "-o", "json", "--wait", "10s"]
    r = cli(node, *base, "--type", "t.a", "--max", "2", token="reader")
    assert r.returncode == 0 and sorted(ids(r.stdout)) == ["w-0", "w-1"], r.stderr
    r = cli(node, *base, "--subject", "s1", "--type", "t.b", "--max", "1", token="reader")
    assert r.returncode == 0 and ids(r.stdout) == ["w-2"], r.stderr
    r = cli(node, *base, "--id", "w-1", "--max", "1", token="reader")
    assert r.returncode == 0 and ids(r.stdout) == ["w-1"], r.stderr
    # fewer than --max by the deadline: exit 1, what came printed, on time
    t0 = time.monotonic()
    r = cli(node, "events", "tail", CMDS, "--from-offset", "0", "--subject", "s1", "--max", "3",
            "--wait", "1s", token="reader")
    took = time.monotonic() - t0
    assert r.returncode == 1 and "2 of 3 events within --wait 1s" in r.stderr, r.stderr
    assert len(r.stdout.splitlines()) == 2 and 1.0 <= took < 5, (r.stdout, took)
    # without --max the follow ends at the deadline, exit 0
    t0 = time.monotonic()
    r = cli(node, "events", "tail", CMDS, "--id", "none", "--wait", "700ms", token="reader")
    took = time.monotonic() - t0
    assert r.returncode == 0 and r.stdout == "" and 0.7 <= took < 5, (r.stderr, took)
    # an event published while it waits ends the wait early
    env = dict(os.environ, CITRUS_ENDPOINT=node.c.url, CITRUS_TOKEN=node.reader)
    p = subprocess.Popen([CITRUS_BIN, "events", "tail", CMDS, "--from-offset", "0", "--id",
                          "late", "--max", "1", "--wait", "20s", "-o", "json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        time.sleep(0.3)
        t0 = time.monotonic()
        assert node.publish(CMDS, ev("late")).status_code == 200
        out, errs = p.communicate(timeout=20)
        took = time.monotonic() - t0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0 and ids(out) == ["late"] and took < 5, (errs, took)
    for bad in (["--wait", "10x"], ["--wait", "-1s"], ["--wait", ""], ["--wait", "nan"]):
        r = cli(node, "events", "tail", CMDS, *bad, token="reader")
        assert r.returncode == 2, (bad, r.stderr)
    r = cli(node, "events", "publish", CMDS, "--data", json.dumps(ev("x")), "--wait", "1s")
    assert r.returncode == 2, r.stderr


def test_usage_and_auth_errors(node):
    for args in (["events", "publish", TOPIC],
                 ["events", "publish", TOPIC, "--data", "1", "--file", "x"],
                 ["events", "publish", TOPIC, "--data", "{nope"],
                 ["events", "publish", TOPIC, "--data", "1"],  # plain data needs --type
                 ["events", "publish", TOPIC, "--type", "t", "--data", json.dumps(ev("e"))],
                 ["events", "publish", TOPIC, "--type", "bad type", "--data", "1"],
                 ["events", "tail", TOPIC, "--partition", "-1"],
                 ["events", "tail", TOPIC, "--max", "0"],
                 ["events", "lag", "extra"],
                 ["dlq", "replay", TOPIC],
                 ["dlq", "ls", TOPIC, "--limit", "x"]):
        r = cli(node, *args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
    r = cli(node, "events", "publish", TOPIC, "--type", "t", "--data", "1", token="reader")
    assert r.returncode == 5 and "forbidden" in r.stderr
    r = cli(node, "dlq", "replay", TOPIC, "0-0", token="reader")
    assert r.returncode == 5
    r = cli(node, "events", "lag", token=None)
    assert r.returncode == 4
    r = cli(node, "events", "publish", "nope", "--type", "t", "--data", "1")
    assert r.returncode == 1 and "not_found" in r.stderr
    r = cli(node, "events", "publish", TOPIC, "--data", json.dumps(ev("x", specversion="2")))
    assert r.returncode == 1 and "specversion" in r.stderr
    assert all(h == 0 for _, h in node.offsets()[TOPIC])


def test_lag_and_dead_letters(node):
    r = node.publish(CMDS, {"events": [ev("c-1", subject="k"), ev("c-2", subject="k")]})
    pc = r.json()["events"][0]["partition"]
    dead = ev("dead-1", subject="shard-9", data={"op": "drain"})
    node.c.stop()
    seed(os.path.join(node.c.data_dir, "bus.db"),
         dead_letters=[(CMDS + ".dlq", 0, "a", json.dumps(ev("dead-0")), "first", 2, 0, 1),
                       (CMDS + ".dlq", 1, "shard-9", json.dumps(dead), "boom", 5, 1, 7)],
         groups=[("shard-ingest", CMDS, pc, 1)],
         leases=[("shard-ingest", CMDS, pc, 1)])
    node.c.start()
    r = cli(node, "events", "lag", token="reader")
    assert r.returncode == 0, r.stderr
    rows = [x.split() for x in r.stdout.splitlines()]
    assert rows[0] == ["GROUP", "TOPIC", "PARTITION", "COMMITTED", "END", "LAG", "IN_FLIGHT"]
    assert ["shard-ingest", CMDS, str(pc), "1", "2", "1", "1"] in rows
    r = cli(node, "events", "lag", "--group", "nobody", "-o", "json", token="reader")
    assert json.loads(r.stdout)["consumers"] == []
    r = cli(node, "dlq", "ls", CMDS, token="reader")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["ID", "ATTEMPTS", "SOURCE", "TIME", "REPLAYED", "ERROR"]
    assert lines[1].split()[:3] == ["0-0", "2", "0/1"] and lines[1].split()[4:] == ["-", "first"]
    assert lines[2].split()[:3] == ["1-0", "5", "1/7"] and lines[2].split()[4:] == ["-", "boom"]
    r = cli(node, "dlq", "ls", CMDS, "--limit", "1", token="reader")
    assert len(r.stdout.splitlines()) == 3 and "(more" in r.stdout
    r = cli(node, "dlq", "ls", CMDS, "-o", "json", token="reader")
    got = json.loads(r.stdout)
    assert [d["id"] for d in got["dead_letters"]] == ["0-0", "1-0"] and got["more"] is False
    r = cli(node, "dlq", "replay", CMDS, "1-0")
    assert r.returncode == 0, r.stderr
    words = r.stdout.split()
    assert words[:4] == ["replayed", "1-0", "to", CMDS + ":"]
    part, off = words[5], words[7]
    back = node.read(CMDS, f"?partition={part}&from_offset={off}").json()["events"][0]
    assert back["event"] == dead
    # ls shows where it went; a second replay is refused with that place
    r = cli(node, "dlq", "ls", CMDS, token="reader")
    assert r.stdout.splitlines()[2].split()[4] == f"{part}/{off}"
    before = node.offsets()
    r = cli(node, "dlq", "replay", CMDS, "1-0")
    assert r.returncode == 1 and "already_exists" in r.stderr, r.stderr
    assert f"partition {part} offset {off}" in r.stderr and "force" in r.stderr
    assert node.offsets() == before
    r = cli(node, "dlq", "replay", CMDS, "1-0", "--force")
    assert r.returncode == 0, r.stderr
    words = r.stdout.split()
    assert words[5] == part and int(words[7]) > int(off)
    r = cli(node, "dlq", "ls", CMDS, "--force", token="reader")
    assert r.returncode == 2  # --force is replay's
    r = cli(node, "dlq", "replay", CMDS, "9-9")
    assert r.returncode == 1 and "not_found" in r.stderr
    r = cli(node, "dlq", "ls", "nope", token="reader")
    assert r.returncode == 1


def test_readme_events_section_runs_verbatim(make_citrus):
    """The README's "Events on the bus" commands, verbatim (the address
    swapped for the test's), against citrus dev."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    text = open(os.path.join(root, "README.md")).read()
    start = text.index("## Events on the bus\n")
    body = text[start:text.index("\n## ", start + 1)]
    body = body.split("\n### ")[0]  # its subsections have tests of their own
    curl_block, cli_block = re.findall(r"```sh\n(.*?)```", body, re.S)
    c = make_citrus()
    script = ("curl() { command curl \"$@\"; echo; }\n" + curl_block).replace(
        "http://127.0.0.1:8081", c.url)
    out = subprocess.run(["bash", "-e", "-c", script], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    answers = [json.loads(x) for x in out.stdout.splitlines() if x.strip()]
    assert not [a for a in answers if "error" in a], answers
    topics, published, read, consumers, dlq = answers
    assert any(t["name"] == "citrus.platform.events.dlq" for t in topics["topics"])
    assert published["events"] == [{"id": "evt-1", "key": "acme:s1", "partition": 2,
                                    "offset": 0}]
    assert [e["event"]["id"] for e in read["events"]] == ["evt-1"]
    # the only consumer groups are citrus dev's own workers
    assert consumers["more"] is False
    assert {r["group"] for r in consumers["consumers"]} <= {
        "citrus-enrollment-ingest", "citrus-event-notification", "citrus-shard-management",
        "citrus-registration"}
    assert dlq["dead_letters"] == []
    env = dict(os.environ, CITRUS_ENDPOINT=c.url)
    script = f'citrus() {{ "{CITRUS_BIN}" "$@"; }}\n' + cli_block
    out = subprocess.run(["bash", "-e", "-c", script], capture_output=True, text=True,
                         timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[1:] == ["partition", "2", "offset", "1", "key", "acme:s1"]
    tail = [x for x in lines if x.startswith("2/")]
    assert [x.split()[0] for x in tail] == ["2/0", "2/1"]
    assert "billing.invoice.paid" in tail[1]
    assert any(x.startswith("GROUP") for x in lines) and any(x.startswith("ID") for x in lines)
