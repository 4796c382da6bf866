"""`citrus shard`, `citrus route` and `citrus tenant` end to end against a
real `citrus dev` (4 active SQLite shards shard-0..shard-3, schema template
"retail"). Expected values are cross-checked over HTTP where it matters.
"""
import json
import re
import sqlite3

import requests

from conftest import run_cli, wait_until

UNREACHABLE = "http://127.0.0.1:1"  # nothing listens on port 1


# ---- helpers ----------------------------------------------------------------

def cli(c, *args):
    """Runs `citrus CMD --endpoint URL ARGS...` against server c (c None: an
    endpoint nobody answers). The endpoint goes first so a -- in args does
    not turn it into a positional argument."""
    cmd, *rest = [str(a) for a in args]
    return run_cli(cmd, "--endpoint", c.url if c else UNREACHABLE, *rest)


def ok(p):
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    assert p.stderr == "", p.stderr
    return p.stdout


def fails(p, rc=1):
    assert p.returncode == rc, (p.returncode, p.stdout, p.stderr)
    return p.stderr


def as_json(p):
    return json.loads(ok(p))


def sqlite_db(path):
    """A real SQLite database file, made with the Python sqlite3 module."""
    db = sqlite3.connect(str(path))
    db.execute("CREATE TABLE IF NOT EXISTS hello (x INTEGER)")
    db.commit()
    db.close()
    return f"sqlite://{path}"


def table(out):
    """A text table as a list of dicts keyed by the header's columns."""
    lines = out.splitlines()
    head = lines[0].split()
    return [dict(zip(head, line.split())) for line in lines[1:]]


def shard_http(c, sid):
    return requests.get(f"{c.url}/v1/shards/{sid}", timeout=5).json()


# ---- help and usage ---------------------------------------------------------

def test_help_lists_the_commands():
    out = ok(run_cli("--help"))
    for cmd in ("shard", "route", "tenant"):
        assert re.search(rf"^  {cmd} +\S", out, re.M), out
    for cmd in ("shard", "route", "tenant"):
        assert ok(run_cli(cmd, "--help")).startswith(f"usage: citrus {cmd}")
        assert ok(run_cli("help", cmd)).startswith(f"usage: citrus {cmd}")
    # --help works after a verb too
    assert "usage: citrus shard" in ok(run_cli("shard", "add", "--help"))


def test_bad_usage_exits_2_without_asking_the_server():
    cases = [
        ("shard",),
        ("shard", "bogus"),
        ("shard", "show"),
        ("shard", "show", "a", "b"),
        ("shard", "drain"),
        ("shard", "ls", "--force"),
        ("shard", "ls", "-o", "yaml"),
        ("shard", "add"),
        ("shard", "add", "--dsn", "sqlite:///tmp/x.db", "--provision"),
        ("shard", "add", "--provision", "--replica", "sqlite:///tmp/r.db"),
        ("shard", "add", "--dsn", "sqlite:///tmp/x.db", "--param", "a=b"),
        ("shard", "add", "--dsn", "sqlite:///tmp/x.db", "--tag", "novalue"),
        ("shard", "add", "--dsn", "sqlite:///tmp/x.db", "--tag", "a=1", "--tag", "a=2"),
        ("shard", "add", "--dsn"),
        ("shard", "set", "shard-0"),
        ("shard", "set", "shard-0", "--weight", "abc"),
        ("shard", "set", "shard-0", "--weight", "0"),
        ("shard", "rm", "shard-0", "--dry-run"),
        ("shard", "show", "shard-0", "--no-such-option"),
        ("route",),
        ("route", ""),
        ("route", "k", "-o", "xml"),
        ("tenant",),
        ("tenant", "register", "b1", "l1"),
        ("tenant", "register", "b1", "--type", "retail"),
        ("tenant", "ls", "--limit", "0"),
        ("tenant", "pin", "b1:l1"),
        ("tenant", "unpin", "b1:l1", "--force"),
        ("tenant", "show", "k", "--type", "retail"),
    ]
    for args in cases:
        p = cli(None, *args)
        assert p.returncode == 2, (args, p.returncode, p.stdout, p.stderr)
        assert p.stderr, args
        # nothing was asked of the (absent) server
        assert "Couldn't connect" not in p.stderr and "error:" not in p.stderr, (args, p.stderr)
    p = run_cli("shard", "ls", "--endpoint", "ftp://example.com")
    assert p.returncode == 2 and "--endpoint" in p.stderr


def test_unreachable_server_is_a_runtime_error():
    for args in (("shard", "ls"), ("route", "k"), ("tenant", "ls")):
        err = fails(cli(None, *args))
        assert err.startswith("error: "), err


def test_endpoint_from_environment(citrus_shards):
    p = run_cli("shard", "ls", env={"CITRUS_ENDPOINT": citrus_shards.url})
    assert len(table(ok(p))) == 4


# ---- shard ------------------------------------------------------------------

def test_shard_ls(citrus_shards):
    out = ok(cli(citrus_shards, "shard", "ls"))
    assert out.splitlines()[0].split() == ["ID", "STATE", "WEIGHT", "TOKENS", "TENANTS", "ZONE",
                                           "DSN"]
    rows = table(out)
    assert [r["ID"] for r in rows] == ["shard-0", "shard-1", "shard-2", "shard-3"]
    for r in rows:
        assert r["STATE"] == "active" and r["WEIGHT"] == "1" and r["TENANTS"] == "0"
        assert int(r["TOKENS"]) > 0 and r["ZONE"] == "-"
        assert r["DSN"].startswith("sqlite://")
    j = as_json(cli(citrus_shards, "shard", "ls", "-o", "json"))
    assert j["count"] == 4 and len(j["shards"]) == 4
    assert sum(s["tokens"] for s in j["shards"]) == sum(int(r["TOKENS"]) for r in rows)
    assert len(table(ok(cli(citrus_shards, "shard", "ls", "--state", "active")))) == 4
    assert table(ok(cli(citrus_shards, "shard", "ls", "--state", "draining"))) == []
    # the action's spelling of the state is accepted too
    assert table(ok(cli(citrus_shards, "shard", "ls", "--state", "read-only"))) == []
    err = fails(cli(citrus_shards, "shard", "ls", "--state", "bogus"))
    assert "state must be one of" in err


def test_shard_lifecycle(citrus_shards, tmp_path):
    dsn = sqlite_db(tmp_path / "s5.db")
    replica = sqlite_db(tmp_path / "s5-replica.db")

    out = ok(cli(citrus_shards, "shard", "add", "--dsn", dsn, "--id", "s5", "--zone", "eu-1",
                 "--tag", "team=core", "--tag", "tier=gold", "--replica", replica))
    lines = out.splitlines()
    assert lines[0] == "shard s5 added: active"
    m = re.match(r"ring version (\d+): tokens 0 -> (\d+), (\d+) ranges moved, 0 tenants affected$",
                 lines[1])
    assert m, out
    tokens = int(m.group(2))
    assert tokens > 0 and int(m.group(3)) > 0
    # the moves, grouped by pair of shards, add up to the ranges listed
    moved = [re.match(r"  (shard-\d) -> s5: (\d+) ranges$", line) for line in lines[2:]]
    assert all(moved) and sum(int(x.group(2)) for x in moved) == int(m.group(3)), out

    rows = {r["ID"]: r for r in table(ok(cli(citrus_shards, "shard", "ls")))}
    assert len(rows) == 5 and rows["s5"]["ZONE"] == "eu-1"
    assert int(rows["s5"]["TOKENS"]) == tokens

    show = ok(cli(citrus_shards, "shard", "show", "s5"))
    fields = dict(re.findall(r"^(\w+): +(.*)$", show, re.M))
    assert fields["id"] == "s5" and fields["state"] == "active"
    assert fields["dsn"] == dsn and fields["replicas"] == replica
    assert fields["zone"] == "eu-1" and fields["weight"] == "1"
    assert fields["tags"] == "team=core, tier=gold"
    assert fields["tokens"] == str(tokens) and fields["tenants"] == "0"
    assert "history:" in show
    assert re.search(r"^  \S+  pending -> initializing  .+ \(api\)$", show, re.M), show
    assert re.search(r"^  \S+  initializing -> active  .+ \(api\)$", show, re.M), show

    # weight 2 doubles its tokens
    out = ok(cli(citrus_shards, "shard", "set", "s5", "--weight", "2"))
    assert out.startswith("shard s5: active, weight 2, zone eu-1, tags team=core, tier=gold\n")
    assert re.search(rf"^ring version \d+: tokens {tokens} -> {2 * tokens}, \d+ ranges moved",
                     out, re.M), out
    j = as_json(cli(citrus_shards, "shard", "show", "s5", "-o", "json"))
    assert j["weight"] == 2 and j["tokens"] == 2 * tokens

    # zone and tags
    ok(cli(citrus_shards, "shard", "set", "s5", "--zone", "eu-2", "--tag", "team=infra"))
    j = shard_http(citrus_shards, "s5")
    assert j["zone"] == "eu-2" and j["tags"] == {"team": "infra"}

    # a dry run changes nothing
    out = ok(cli(citrus_shards, "shard", "drain", "s5", "--dry-run"))
    assert out.startswith("dry run: shard s5 would be draining")
    assert f"tokens {2 * tokens} -> 0" in out
    assert shard_http(citrus_shards, "s5")["state"] == "active"

    out = ok(cli(citrus_shards, "shard", "drain", "s5"))
    assert out.splitlines()[0] == "shard s5: draining"
    assert re.search(rf"^ring version \d+: tokens {2 * tokens} -> 0, \d+ ranges moved", out, re.M)
    assert shard_http(citrus_shards, "s5")["tokens"] == 0

    # not deletable while draining
    err = fails(cli(citrus_shards, "shard", "rm", "s5"))
    assert "only retired or failed shards can be deleted" in err

    out = ok(cli(citrus_shards, "shard", "retire", "s5"))
    assert out.splitlines()[0] == "shard s5: retired"
    assert "drained -> retired" in ok(cli(citrus_shards, "shard", "show", "s5"))

    out = ok(cli(citrus_shards, "shard", "rm", "s5"))
    assert out.splitlines()[0] == "shard s5 deleted"
    err = fails(cli(citrus_shards, "shard", "show", "s5"))
    assert "shard 's5' not found" in err
    assert len(table(ok(cli(citrus_shards, "shard", "ls")))) == 4


def test_shard_read_only_and_activate(citrus_shards):
    out = ok(cli(citrus_shards, "shard", "read-only", "shard-1"))
    assert out.splitlines()[0] == "shard shard-1: read_only"
    assert "ring version" in out
    rows = table(ok(cli(citrus_shards, "shard", "ls", "--state", "read_only")))
    assert [r["ID"] for r in rows] == ["shard-1"]
    out = ok(cli(citrus_shards, "shard", "activate", "shard-1"))
    assert out.splitlines()[0] == "shard shard-1: active"


def test_shard_add_unreachable_and_no_verify(citrus_shards, tmp_path):
    dsn = f"sqlite://{tmp_path}/no/such/dir/x.db"
    err = fails(cli(citrus_shards, "shard", "add", "--dsn", dsn, "--id", "gone"))
    assert err.startswith("error: unreachable:"), err
    out = ok(cli(citrus_shards, "shard", "add", "--dsn", dsn, "--id", "gone", "--no-verify",
                 "--weight", "0.5"))
    assert out.startswith("shard gone added: active")
    j = shard_http(citrus_shards, "gone")
    assert j["weight"] == 0.5 and j["tokens"] > 0


def test_shard_add_provision(citrus_shards):
    out = ok(cli(citrus_shards, "shard", "add", "--provision", "--id", "p1", "--template", "retail",
                 "--param", "note=cli"))
    assert out.startswith("shard p1: provisioning (template retail)\n"), out
    wait_until(lambda: shard_http(citrus_shards, "p1")["state"] == "active", what="p1 to be active")
    j = as_json(cli(citrus_shards, "shard", "show", "p1", "-o", "json"))
    assert j["state"] == "active" and j["template"] == "retail" and j["tokens"] > 0
    assert [e["to"] for e in j["history"]] == ["provisioning", "initializing", "active"]
    # provisioning the same id again
    err = fails(cli(citrus_shards, "shard", "add", "--provision", "--id", "p1"))
    assert "already exists" in err


def test_shard_errors(citrus_shards):
    err = fails(cli(citrus_shards, "shard", "show", "nope"))
    assert err == "error: not_found: shard 'nope' not found\n"
    for verb in ("drain", "activate", "retire", "read-only", "retry", "rm"):
        err = fails(cli(citrus_shards, "shard", verb, "nope"))
        assert "shard 'nope' not found" in err, (verb, err)
    err = fails(cli(citrus_shards, "shard", "set", "nope", "--weight", "2"))
    assert "shard 'nope' not found" in err
    # a forbidden transition names the allowed states
    err = fails(cli(citrus_shards, "shard", "retire", "shard-0"))
    assert "invalid_transition" in err and "allowed: read_only, draining, failed" in err, err
    err = fails(cli(citrus_shards, "shard", "retry", "shard-0"))
    assert "allowed:" in err
    # the server's checks come through
    err = fails(cli(citrus_shards, "shard", "set", "shard-0", "--weight", "1000"))
    assert "weight: must be a number > 0 and <= 100" in err
    err = fails(cli(citrus_shards, "shard", "rm", "shard-0"))
    assert "only retired or failed shards can be deleted" in err
    err = fails(cli(citrus_shards, "shard", "add", "--dsn", "bogus://x"))
    assert err.startswith("error: ") and "dsn" in err
    assert shard_http(citrus_shards, "shard-0")["state"] == "active"


def test_shard_json_output(citrus_shards, tmp_path):
    dsn = sqlite_db(tmp_path / "j.db")
    j = as_json(cli(citrus_shards, "shard", "add", "--dsn", dsn, "--id", "j1", "-o", "json"))
    assert j["id"] == "j1" and j["state"] == "active" and j["ring"]["changed"] is True
    assert j["ring"]["tokens_before"] == 0 and j["ring"]["tokens_after"] == j["tokens"]
    j = as_json(cli(citrus_shards, "shard", "set", "j1", "--weight", "2", "-o", "json"))
    assert j["weight"] == 2 and j["ring"]["tokens_after"] == 2 * j["ring"]["tokens_before"]
    j = as_json(cli(citrus_shards, "shard", "drain", "j1", "--dry-run", "-o", "json"))
    assert j["dry_run"] is True and j["state"] == "draining"
    j = as_json(cli(citrus_shards, "shard", "drain", "j1", "-o", "json"))
    assert j["state"] == "draining" and j["ring"]["tokens_after"] == 0
    j = as_json(cli(citrus_shards, "shard", "retire", "j1", "-o", "json"))
    assert j["state"] == "retired"
    j = as_json(cli(citrus_shards, "shard", "rm", "j1", "-o", "json"))
    assert j == {"id": "j1", "deleted": True, "ring": j["ring"]}
    j = as_json(cli(citrus_shards, "shard", "show", "shard-2", "-o", "json"))
    assert j["id"] == "shard-2" and isinstance(j["history"], list)


# ---- route ------------------------------------------------------------------

ROUTE_LINE = re.compile(r"^(\S+) -> (\S+) \((ring|directory), token (\d+), state (\w+)\) (\S+)$")


def test_route_one_key(citrus_shards):
    out = ok(cli(citrus_shards, "route", "customer-42"))
    m = ROUTE_LINE.match(out.rstrip("\n"))
    assert m, out
    want = requests.get(f"{citrus_shards.url}/v1/route/customer-42", timeout=5).json()
    assert m.groups() == ("customer-42", want["shard_id"], "ring", want["token"], "active",
                          want["dsn"])
    j = as_json(cli(citrus_shards, "route", "customer-42", "-o", "json"))
    assert j == want


def test_route_several_keys(citrus_shards):
    keys = ["alpha", "beta", "gamma", "a/b", "delta"]
    out = ok(cli(citrus_shards, "route", *keys))
    lines = out.splitlines()
    assert len(lines) == len(keys)
    want = requests.post(f"{citrus_shards.url}/v1/route", json={"keys": keys}, timeout=5).json()
    for key, line, w in zip(keys, lines, want["routes"]):
        m = ROUTE_LINE.match(line)
        assert m and m.group(1) == key and m.group(2) == w["shard_id"], (line, w)
    j = as_json(cli(citrus_shards, "route", "-o", "json", *keys))
    assert j["ring_version"] == want["ring_version"]
    assert [r["key"] for r in j["routes"]] == keys
    # a key a URL path cannot carry still works alone
    j = as_json(cli(citrus_shards, "route", "a/b", "-o", "json"))
    assert j["key"] == "a/b" and j["shard_id"] == want["routes"][3]["shard_id"]
    # -- lets a key start with '-'
    assert ok(cli(citrus_shards, "route", "--", "-dash")).startswith("-dash -> ")


# ---- tenant -----------------------------------------------------------------

def registered(out):
    return dict(re.findall(r"^(\w+): +(.*)$", out, re.M))


def test_tenant_register_show_ls_pin_unpin(citrus_shards):
    c = citrus_shards
    first = registered(ok(cli(c, "tenant", "register", "biz1", "loc1", "--type", "retail")))
    assert first["shardKey"] == "biz1:loc1" and first["new"] == "yes"
    assert re.fullmatch(r"shard-[0-3]", first["shardId"])
    assert first["connectionString"].startswith("sqlite://") and first["status"] == "active"
    again = registered(ok(cli(c, "tenant", "register", "biz1", "loc1", "--type", "retail")))
    assert again["new"] == "no (already registered)"
    assert {k: v for k, v in again.items() if k != "new"} == \
        {k: v for k, v in first.items() if k != "new"}
    home = first["shardId"]
    j = as_json(cli(c, "tenant", "register", "biz1", "loc2", "--type", "retail", "-o", "json"))
    assert j["shardKey"] == "biz1:loc2" and set(j) == {"shardId", "shardKey", "connectionString",
                                                        "connection", "status", "state"}

    show = registered(ok(cli(citrus_shards, "tenant", "show", "biz1:loc1")))
    assert show["key"] == "biz1:loc1" and show["shard_id"] == home
    assert show["business_type"] == "retail" and show["token"].isdigit()
    j = as_json(cli(citrus_shards, "tenant", "show", "biz1:loc1", "-o", "json"))
    assert j["shard_id"] == home

    rows = table(ok(cli(citrus_shards, "tenant", "ls")))
    assert [r["KEY"] for r in rows] == ["biz1:loc1", "biz1:loc2"]
    assert rows[0]["SHARD"] == home and rows[0]["TYPE"] == "retail"
    out = ok(cli(citrus_shards, "tenant", "ls", "--limit", "1"))
    assert [r["KEY"] for r in table(out.split("(more")[0])] == ["biz1:loc1"]
    assert "(more: continue with --after biz1:loc1)" in out
    j = as_json(cli(citrus_shards, "tenant", "ls", "--after", "biz1:loc1", "-o", "json"))
    assert [t["key"] for t in j["tenants"]] == ["biz1:loc2"] and j["more"] is False
    j = as_json(cli(citrus_shards, "tenant", "ls", "--shard", home, "-o", "json"))
    assert "biz1:loc1" in [t["key"] for t in j["tenants"]]
    assert all(t["shard_id"] == home for t in j["tenants"])
    shards = table(ok(cli(citrus_shards, "shard", "ls")))
    assert int({r["ID"]: r for r in shards}[home]["TENANTS"]) >= 1

    # the pin wins over the ring
    m = ROUTE_LINE.match(ok(cli(citrus_shards, "route", "biz1:loc1")).rstrip("\n"))
    assert m.group(2) == home and m.group(3) == "directory"

    # moving a pinned tenant needs --force
    other = next(s for s in ("shard-0", "shard-1", "shard-2", "shard-3") if s != home)
    err = fails(cli(citrus_shards, "tenant", "pin", "biz1:loc1", other))
    assert "force_required" in err and "--force" in err
    assert registered(ok(cli(citrus_shards, "tenant", "show", "biz1:loc1")))["shard_id"] == home
    out = ok(cli(citrus_shards, "tenant", "pin", "biz1:loc1", other, "--force"))
    assert out == f"biz1:loc1 pinned to {other}\n"
    assert registered(ok(cli(citrus_shards, "tenant", "show", "biz1:loc1")))["shard_id"] == other
    m = ROUTE_LINE.match(ok(cli(citrus_shards, "route", "biz1:loc1")).rstrip("\n"))
    assert m.group(2) == other and m.group(3) == "directory"

    # a new pin
    out = ok(cli(citrus_shards, "tenant", "pin", "free-key", "shard-2"))
    assert out == "free-key pinned to shard-2 (new pin)\n"

    out = ok(cli(citrus_shards, "tenant", "unpin", "biz1:loc1"))
    assert out.startswith("biz1:loc1 unpinned")
    err = fails(cli(citrus_shards, "tenant", "show", "biz1:loc1"))
    assert "tenant 'biz1:loc1' is not registered" in err
    m = ROUTE_LINE.match(ok(cli(citrus_shards, "route", "biz1:loc1")).rstrip("\n"))
    assert m.group(3) == "ring"
    j = as_json(cli(citrus_shards, "tenant", "unpin", "free-key", "-o", "json"))
    assert j == {"key": "free-key", "deleted": True}


def test_tenant_errors(citrus_shards):
    err = fails(cli(citrus_shards, "tenant", "show", "nobody:here"))
    assert err == "error: not_found: tenant 'nobody:here' is not registered\n"
    err = fails(cli(citrus_shards, "tenant", "unpin", "nobody:here"))
    assert "is not registered" in err
    err = fails(cli(citrus_shards, "tenant", "pin", "k1", "no-such-shard"))
    assert "shard 'no-such-shard' not found" in err
    err = fails(cli(citrus_shards, "tenant", "register", "bad id!", "loc", "--type", "retail"))
    assert "businessId: must be 1..128 characters" in err
    err = fails(cli(citrus_shards, "tenant", "register", "b", "l", "--type", "no spaces"))
    assert "businessType" in err
    err = fails(cli(citrus_shards, "tenant", "ls", "--shard", "Bad/Shard"))
    assert "not a valid shard id" in err
    assert json.loads(ok(cli(citrus_shards, "tenant", "ls", "-o", "json"))) == {"tenants": [],
                                                                         "more": False}


def test_tenant_ls_pages_through_everything(citrus_shards):
    # 1100 tenants: more than the server's default page of 1000
    for b in range(11):
        r = requests.post(f"{citrus_shards.url}/api/register/batch", timeout=30, json={
            "businessId": f"biz{b:02d}",
            "locations": [{"locationId": f"loc{i:03d}", "businessType": "retail"}
                          for i in range(100)]})
        assert r.status_code == 201, r.text
    want = sorted(f"biz{b:02d}:loc{i:03d}" for b in range(11) for i in range(100))
    assert [r["KEY"] for r in table(ok(cli(citrus_shards, "tenant", "ls")))] == want
    j = as_json(cli(citrus_shards, "tenant", "ls", "-o", "json"))
    assert [t["key"] for t in j["tenants"]] == want and j["more"] is False
    out = ok(cli(citrus_shards, "tenant", "ls", "--limit", "1050"))
    assert [r["KEY"] for r in table(out.split("(more")[0])] == want[:1050]
    assert out.endswith(f"(more: continue with --after {want[1049]})\n")
    j = as_json(cli(citrus_shards, "tenant", "ls", "--after", want[1049], "-o", "json"))
    assert [t["key"] for t in j["tenants"]] == want[1050:]
    per_shard = sum(len(as_json(cli(citrus_shards, "tenant", "ls", "--shard", f"shard-{i}",
                                    "-o", "json"))["tenants"]) for i in range(4))
    assert per_shard == len(want)


def test_without_shards(citrus):
    # `citrus dev --dev-shards 0`: an empty registry
    assert table(ok(cli(citrus, "shard", "ls"))) == []
    assert as_json(cli(citrus, "shard", "ls", "-o", "json")) == {"shards": [], "count": 0}
    err = fails(cli(citrus, "route", "k"))
    assert "no shard owns any token yet" in err
    err = fails(cli(citrus, "route", "k1", "k2"))
    assert "no shard owns any token yet" in err
