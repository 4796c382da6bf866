"""The README's curl walk-throughs run verbatim against `citrus dev` (only
the two loopback addresses are swapped for the test's ports): the
quickstart, the Citrus API section and the router section, in order, every
answer JSON (but the raw value a KV GET returns), no error but the one the
text announces, and the router section's reads and scatter query give what the
text says they give."""
import json
import os
import re
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SECTIONS = ["## Quickstart", "## Shards and the Citrus API", "## Run SQL through the router"]


def curl_blocks():
    text = open(os.path.join(ROOT, "README.md")).read()
    blocks = []
    for title in SECTIONS:
        start = text.index(title + "\n")
        end = text.find("\n## ", start + 1)
        body = text[start:end if end >= 0 else None]
        for block in re.findall(r"```sh\n(.*?)```", body, re.S):
            if "curl " in block:
                blocks.append(block)
    assert len(blocks) == 3, blocks
    return blocks


def test_readme_walkthroughs_run_verbatim(citrus_shards):
    c = citrus_shards
    script = "curl() { command curl \"$@\"; echo; }\n" + "\n".join(curl_blocks())
    script = script.replace("http://127.0.0.1:8081", c.url).replace(
        "http://127.0.0.1:8080", c.router_url)
    out = subprocess.run(["bash", "-e", "-c", script], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    assert lines[1] == "postgres://db1/app", lines  # GET /v1/kv/{key}: the value's bytes
    answers = [json.loads(line) for line in lines[:1] + lines[2:]]
    routed = [a for a in answers if isinstance(a, dict) and "rows" in a]
    rows = [a["rows"] for a in routed]
    assert [["o-1", 1250]] in rows and [["o-2", 990]] in rows, rows
    assert [[2, 2240]] in rows, rows  # the scatter: both locations' orders
    tx = answers[-1]
    assert tx["results"][1]["rows"] == [["paid"]], tx
    assert not [a for a in answers if isinstance(a, dict) and "error" in a
                and a["error"].get("code") != "compare_failed"], answers  # the ?cas=0 example
