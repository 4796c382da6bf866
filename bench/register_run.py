#!/usr/bin/python3
"""Registration latency on a SQLite shard and a PostgreSQL shard in the same
run (issue 14, item 7: registration on PostgreSQL within 2x of SQLite's p50).

Starts a private PostgreSQL (tests/integration/pg.py) and `citrus dev
--dev-shards 0` with a one-file schema template "retail", registers a
SQLite shard and a PostgreSQL shard (?allow_superuser=true: the fixture's
DSN is the superuser's), finds location ids the ring gives to each
(GET /v1/route, not timed), then times POST /api/register of N new
locations per shard, alternating between the two so both see the same
machine load, over one kept-alive HTTP connection. Prints p50/p90/p99/max
per shard as JSON. Usage:

  /usr/bin/python3 bench/register_run.py [--bin build/citrus] [-n 300] [--warmup 5]

Results and the machine go to docs/BENCHMARKS.md. Needs pytest importable
(pg.py is the test fixture's module) and PostgreSQL's binaries, as the
integration tests do."""
import argparse
import http.client
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from pg import Postgres  # noqa: E402

TEMPLATE = "CREATE TABLE orders (id INTEGER PRIMARY KEY, location_id TEXT NOT NULL);\n"


class Api:
    def __init__(self, port):
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        hdr = {"Content-Type": "application/json"} if data else {}
        self.c.request(method, path, body=data, headers=hdr)
        r = self.c.getresponse()
        return r.status, r.read()


def start(binary, data, templates):
    log = open(os.path.join(data, "citrus.out"), "wb")
    p = subprocess.Popen([binary, "dev", "--data-dir", os.path.join(data, "d"), "--listen",
                          "127.0.0.1:0", "--router-listen", "off", "--dev-shards", "0",
                          "--templates-dir", templates, "--log-level", "warn"],
                         stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 30
    while time.time() < deadline:
        time.sleep(0.1)
        text = open(os.path.join(data, "citrus.out"), errors="replace").read()
        m = re.search(r'"api":"http://127\.0\.0\.1:(\d+)"', text) or \
            re.search(r"API\s+http://127\.0\.0\.1:(\d+)", text)
        if m:
            return p, int(m.group(1))
    p.kill()
    sys.exit("citrus did not start: " + open(os.path.join(data, "citrus.out")).read())


def psql(dsn, sql):
    subprocess.run(["/usr/bin/psql", dsn, "-qtAc", sql], check=True, capture_output=True)


def locations(api, shard, n, taken):
    out, i = [], 0
    while len(out) < n:
        i += 1
        loc = f"loc-{i}"
        if loc in taken:
            continue
        st, body = api.call("GET", f"/v1/route/bench:{loc}")
        if st != 200:
            sys.exit(f"route: {st} {body[:200]}")
        if json.loads(body)["shard_id"] == shard:
            out.append(loc)
            taken.add(loc)
    return out


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(HERE, "..", "build", "citrus"))
    ap.add_argument("-n", type=int, default=300, help="registrations per shard")
    ap.add_argument("--warmup", type=int, default=5, help="untimed registrations per shard")
    a = ap.parse_args()
    data = tempfile.mkdtemp(prefix="citrus-regrun-")
    tdir = os.path.join(data, "templates", "retail")
    os.makedirs(tdir)
    with open(os.path.join(tdir, "001_orders.sql"), "w") as f:
        f.write(TEMPLATE)
    pg = Postgres().start()
    p = None
    try:
        psql(pg.admin_dsn, "CREATE DATABASE bench")
        lite = os.path.join(data, "lite.db")
        sqlite3.connect(lite).close()
        p, port = start(a.bin, data, os.path.join(data, "templates"))
        api = Api(port)
        for sid, dsn, q in (("lite", "sqlite://" + lite, ""),
                            ("pg", pg.dsn("bench"), "?allow_superuser=true")):
            st, body = api.call("POST", "/v1/shards" + q, {"id": sid, "dsn": dsn})
            if st != 201:
                sys.exit(f"register shard {sid}: {st} {body[:300]}")
        taken = set()
        locs = {s: locations(api, s, a.n + a.warmup, taken) for s in ("lite", "pg")}
        times = {"lite": [], "pg": []}
        for i in range(a.n + a.warmup):
            for s in ("lite", "pg"):
                t0 = time.perf_counter()
                st, body = api.call("POST", "/api/register", {
                    "businessId": "bench", "locationId": locs[s][i], "businessType": "retail"})
                ms = (time.perf_counter() - t0) * 1000
                if st != 201:
                    sys.exit(f"register on {s}: {st} {body[:300]}")
                if i >= a.warmup:
                    times[s].append(ms)
        res = {s: {"n": len(v), "p50_ms": round(pct(v, 50), 2), "p90_ms": round(pct(v, 90), 2),
                   "p99_ms": round(pct(v, 99), 2), "max_ms": round(max(v), 2)}
               for s, v in times.items()}
        res["pg_p50_over_sqlite_p50"] = round(res["pg"]["p50_ms"] / res["lite"]["p50_ms"], 2)
        res["binary"] = os.path.abspath(a.bin)
        print(json.dumps(res, indent=2))
    finally:
        if p:
            p.terminate()
            p.wait(20)
        pg.stop()


if __name__ == "__main__":
    main()
