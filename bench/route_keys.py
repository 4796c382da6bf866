"""bench/route_keys.py API N OUT: asks a Citrus API where the keys tenant-0..tenant-(N-1)
go (POST /v1/route, 1000 at a time) and writes OUT with one line per key:
key<TAB>shard_id<TAB>value-of-key (the keys file sqlbench reads)."""
import json
import sys
import urllib.request

api, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
keys = [f"tenant-{i}" for i in range(n)]
rows = []
for at in range(0, n, 1000):
    part = keys[at:at + 1000]
    req = urllib.request.Request(api + "/v1/route", method="POST",
                                 data=json.dumps({"keys": part}).encode(),
                                 headers={"Content-Type": "application/json"})
    routes = json.loads(urllib.request.urlopen(req).read())["routes"]
    assert len(routes) == len(part)
    for k, r in zip(part, routes):
        assert r["key"] == k, r
        rows.append((k, r["shard_id"], f"value-of-{k}"))
with open(out, "w") as f:
    for r in rows:
        f.write("\t".join(r) + "\n")
