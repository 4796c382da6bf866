"""The README's "Seed 000's three flows" run verbatim against `citrus dev`
(issue 15's "done when"): `citrus dev` is started as the README's start
line says (its variables, then `make dev`: the build is there, so the
fixture runs the binary `make dev` runs, with its four shards), then the
commands block runs as written, only the API address and `./build/citrus`
swapped for the test's. Each flow's output is checked: the ingest command
names the shard the route gave, the drain's outcome and its transition
are on citrus.sm.events, the notification filter stored one of the two
platform events."""
import json
import os
import re
import shlex
import subprocess

import requests

from conftest import CITRUS_BIN

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TITLE = "### Seed 000's three flows\n"


def readme_flows():
    """(the start line's variables, the commands block) of the README's
    subsection, which must be: one block starting `make dev`, one of
    commands."""
    text = open(os.path.join(ROOT, "README.md")).read()
    start = text.index(TITLE)
    ends = [i for i in (text.find("\n## ", start), text.find("\n### ", start + 1)) if i >= 0]
    body = text[start:min(ends) if ends else None]
    blocks = re.findall(r"```sh\n(.*?)```", body, re.S)
    assert len(blocks) == 2, blocks
    words = shlex.split(blocks[0])
    env = {}
    while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    assert words == ["make", "dev"], words
    return env, blocks[1]


def tail_lines(lines):
    """The `citrus events tail` lines (`P/O  time  key  event`) as
    (partition, offset, key, event)."""
    out = []
    for line in lines:
        m = re.match(r"^(\d+)/(\d+)  \S+  (\S+)  (\{.*\})$", line)
        if m:
            out.append((int(m[1]), int(m[2]), m[3], json.loads(m[4])))
    return out


def test_seed000_flows_run_verbatim(make_citrus):
    env, block = readme_flows()
    assert env == {"CITRUS_WORKERS_NOTIFICATION_FILTER_SEVERITIES": "warning,error,critical"}
    c = make_citrus(env=env, shards=True)
    script = ("curl() { command curl \"$@\"; echo; }\n" + block).replace(
        "http://127.0.0.1:8081", c.url).replace("./build/citrus", CITRUS_BIN)
    run_env = dict(os.environ, CITRUS_ENDPOINT=c.url)
    for name in ("CITRUS_TOKEN", "CITRUS_TOKEN_FILE"):
        run_env.pop(name, None)
    out = subprocess.run(["bash", "-e", "-c", script], capture_output=True, text=True,
                         timeout=120, env=run_env)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = [x for x in out.stdout.splitlines() if x.strip()]
    answers = [json.loads(x) for x in lines if x.startswith("{")]
    manifest, route, notifications = answers
    tails = tail_lines(lines)
    assert len(tails) == 5, lines  # 1 ingest command, 1 outcome, 3 transitions

    # 1. enrollment event in, shard ingest command out, for the route's shard
    assert manifest["id"] == "enr-west" and manifest["manifest"]["tenant_key"] == "acme:west"
    shard = route["shard_id"]
    assert shard.startswith("shard-"), route
    _, _, key, cmd = tails[0]
    assert cmd["id"] == "enr-1" and cmd["type"] == "citrus.shard.ingest", cmd
    assert key == "acme:west" and cmd["subject"] == shard
    assert cmd["data"]["shard_id"] == shard and cmd["data"]["tenant_key"] == "acme:west"
    assert cmd["data"]["manifest_id"] == "enr-west"
    assert cmd["data"]["connection_ref"] == f"/v1/shards/{shard}"

    # 2. command in, its outcome and the lifecycle event out
    _, _, key, outcome = tails[1]
    assert outcome["type"] == "citrus.sm.command.completed" and key == "shard/shard-1", outcome
    assert outcome["data"] == {"commandId": "cmd-1", "command": "citrus.sm.drain",
                               "shardId": "shard-1", "state": "draining", "changed": True}
    transitions = [t[3] for t in tails[2:]]
    assert all(t["type"] == "citrus.shard.state_changed" and t["subject"] == "shard-1"
               for t in transitions), transitions
    assert [(t["data"]["from"], t["data"]["to"]) for t in transitions] == [
        ("pending", "initializing"), ("initializing", "active"), ("active", "draining")]
    assert transitions[-1]["data"]["actor"] == "sm-worker"
    assert requests.get(f"{c.url}/v1/shards/shard-1", timeout=5).json()["state"] == "draining"

    # 3. platform events in, only the one that passes the filter stored
    got = notifications["notifications"]
    assert [n["event_id"] for n in got] == ["disk-2"], got
    assert got[0]["severity"] == "error" and got[0]["type"] == "disk.full"
    assert got[0]["source"] == "/platform/disk" and got[0]["data"]["pct"] == 97
    # disk-1 is absent because the filter left it out, not because it is
    # still waiting: the group has committed past it
    part = [e for e in lines if e.startswith("disk-1  partition ")][0].split()[2]
    rows = requests.get(f"{c.url}/v1/consumers?group=citrus-event-notification",
                        timeout=5).json()["consumers"]
    row = [r for r in rows if r["topic"] == "citrus.platform.events"
           and r["partition"] == int(part)]
    assert row and row[0]["committed"] == row[0]["end"] == 2, rows
    every = requests.get(f"{c.url}/v1/notifications", timeout=5).json()["notifications"]
    assert "disk-1" not in [n["event_id"] for n in every]
