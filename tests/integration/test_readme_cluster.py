"""The README's cluster walk-through ("Run a cluster") runs verbatim, with
auth on: scripts/cluster-up.sh (3 etcd members, 3 citrus nodes with API
keys, on the fixed loopback ports the README names), `citrus auth
bootstrap`, the CLI and curl with the key, then scripts/cluster-down.sh.
Only `make` is left out (the build is there) and the state dir is the
test's. Whatever happens, the processes the script started are stopped by
their PID files."""
import os
import re
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def walkthrough():
    text = open(os.path.join(ROOT, "README.md")).read()
    start = text.index("## Run a cluster\n")
    block = re.search(r"```sh\n(.*?)```", text[start:], re.S).group(1)
    return [line for line in block.splitlines() if line.strip() and line.strip() != "make"]


def test_cluster_walkthrough_verbatim(tmp_path):
    lines = walkthrough()
    assert any("auth bootstrap" in l for l in lines), lines
    state = str(tmp_path / "cluster")
    script = "\n".join(l.replace("/tmp/citrus-cluster", state) for l in lines[:-1])
    env = dict(os.environ)
    env.pop("CITRUS_TOKEN", None)
    env["CITRUS_BIN"] = os.environ.get("CITRUS_BIN", os.path.join(ROOT, "build", "citrus"))
    script = script.replace("./build/citrus", env["CITRUS_BIN"])
    try:
        out = subprocess.run(["bash", "-e", "-c", "cd " + ROOT + "\n" + script],
                             capture_output=True, text=True, timeout=180, env=env)
        assert out.returncode == 0, out.stdout + out.stderr
        lines_out = out.stdout.splitlines()
        assert "ready" in out.stdout, out.stdout
        assert any('"revision"' in l for l in lines_out), out.stdout  # the PUT
        # the strong GET, from another node: the raw value, right after the PUT's answer
        assert any(l.startswith("v1") for l in lines_out), out.stdout
        assert '"status":"ready"' in out.stdout and '"auth":"api_key"' in out.stdout
        # without the key the same PUT is refused
        r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT",
                            "--data-binary", "x", "http://127.0.0.1:8081/v1/kv/app/flag"],
                           capture_output=True, text=True, timeout=10)
        assert r.stdout == "401", r.stdout
    finally:
        down = lines[-1].replace("/tmp/citrus-cluster", state)
        subprocess.run(["bash", "-c", "cd " + ROOT + "\n" + down], timeout=60)
