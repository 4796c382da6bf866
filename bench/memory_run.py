#!/usr/bin/python3
"""The memory run of issue 13 ("bounded answers"): peak RSS of a citrus dev
node under hostile reads of big values.

  1. put N values of 1 MiB under bench/mem/
  2. at once: 3 prefix listings (each follows its pages to the end), 1
     snapshot, 1 txn of 128 prefix gets (a ~4 KB request)
  3. delete them all, then replay a watch from revision 1 (following its
     pages until it has caught up)

and reports VmHWM (peak resident set) of the server from /proc/<pid>/status,
with what each request answered. Usage:

  bench/memory_run.py [--bin build/citrus] [--values 100] [--extra '--max-response-bytes 67108864']

Results and the machine go to docs/BENCHMARKS.md. Needs only the standard
library (urllib), so any python3 runs it."""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request


def req(method, url, body=None, ctype=None, timeout=300):
    r = urllib.request.Request(url, data=body, method=method)
    if ctype:
        r.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(r, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError as e:  # a timeout: reported, the run goes on
        return 0, str(e).encode()


def rss_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def start(binary, data, extra):
    log = open(os.path.join(data, "citrus.out"), "wb")
    p = subprocess.Popen([binary, "dev", "--data-dir", os.path.join(data, "d"), "--listen",
                          "127.0.0.1:0", "--router-listen", "127.0.0.1:0", "--dev-shards", "0",
                          "--log-level", "warn"] + extra, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 20
    port = None
    while time.time() < deadline and port is None:
        time.sleep(0.1)
        text = open(os.path.join(data, "citrus.out"), errors="replace").read()
        m = re.search(r'"api":"http://127\.0\.0\.1:(\d+)"', text) or \
            re.search(r"API\s+http://127\.0\.0\.1:(\d+)", text)
        if m:
            port = int(m.group(1))
    if port is None:
        p.kill()
        sys.exit("citrus did not start: " + open(os.path.join(data, "citrus.out")).read())
    url = f"http://127.0.0.1:{port}"
    while time.time() < deadline:
        try:
            if req("GET", url + "/health/ready", timeout=2)[0] == 200:
                return p, url
        except OSError:
            pass
        time.sleep(0.1)
    p.kill()
    sys.exit("citrus not ready")


def listing(url, out, i):
    after, pages, items, total = None, 0, 0, 0
    while True:
        q = url + "/v1/kv/bench/mem/?prefix=true"
        if after:
            q += "&after=" + urllib.request.quote(after)
        st, body = req("GET", q)
        total += len(body)
        if st != 200:
            out[f"listing{i}"] = f"{st} after {pages} pages"
            return
        j = json.loads(body)
        pages += 1
        items += len(j["items"])
        if not j["more"] or not j["items"]:
            break
        after = j["items"][-1]["key"]
    out[f"listing{i}"] = f"200, {items} items in {pages} pages, {total >> 20} MiB"


def snapshot(url, out):
    st, body = req("GET", url + "/v1/snapshot")
    out["snapshot"] = f"{st}, {len(body) >> 10} KiB"


def txn(url, out):
    body = json.dumps({"success": [{"op": "get", "key": "bench/mem/", "prefix": True}] * 128},
                      separators=(",", ":"))
    st, ans = req("POST", url + "/v1/txn", body.encode(), "application/json")
    out["txn"] = f"{st} ({len(body)} B request), {len(ans) >> 10} KiB answer"


def watch(url, out):
    frm, polls, events, total = 1, 0, 0, 0
    while True:
        st, body = req("GET", f"{url}/v1/watch/bench/mem/?from_revision={frm}&timeout=1s")
        total += len(body)
        if st != 200:
            out["watch"] = f"{st} after {polls} polls"
            return
        j = json.loads(body)
        polls += 1
        events += len(j["events"])
        if not j["events"]:
            break
        frm = j["revision"] + 1
    out["watch"] = f"200, {events} events in {polls} polls, {total >> 20} MiB"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "..", "build",
                                                   "citrus"))
    ap.add_argument("--values", type=int, default=100)
    ap.add_argument("--extra", default="")
    a = ap.parse_args()
    data = tempfile.mkdtemp(prefix="citrus-memrun-")
    p, url = start(a.bin, data, a.extra.split())
    try:
        base = rss_kb(p.pid, "VmRSS")
        value = os.urandom(1 << 20)
        for i in range(a.values):
            st, body = req("PUT", f"{url}/v1/kv/bench/mem/v{i:04d}", value,
                           "application/octet-stream")
            if st != 200:
                sys.exit(f"put {i}: {st} {body[:200]}")
        after_puts = rss_kb(p.pid, "VmHWM")
        out = {}
        ts = [threading.Thread(target=listing, args=(url, out, i)) for i in range(3)]
        ts += [threading.Thread(target=snapshot, args=(url, out)),
               threading.Thread(target=txn, args=(url, out))]
        t0 = time.time()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        reads_s = time.time() - t0
        after_reads = rss_kb(p.pid, "VmHWM")
        st, _ = req("DELETE", url + "/v1/kv/bench/mem/?prefix=true")
        if st == 200:
            watch(url, out)
        else:
            out["watch"] = f"not run: the delete answered {st}"
        peak = rss_kb(p.pid, "VmHWM")
        print(json.dumps({
            "binary": os.path.abspath(a.bin), "values": a.values, "extra": a.extra,
            "rss_at_start_mb": round(base / 1024, 1),
            "peak_after_puts_mb": round(after_puts / 1024, 1),
            "peak_after_listings_snapshot_txn_mb": round(after_reads / 1024, 1),
            "peak_after_watch_replay_mb": round(peak / 1024, 1),
            "concurrent_reads_s": round(reads_s, 2),
            "answers": out}, indent=2))
    finally:
        p.terminate()
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:  # an old build still busy with the txn
            p.kill()
            p.wait()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
