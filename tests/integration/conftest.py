"""Shared fixtures: real `citrus` processes on loopback with ephemeral ports.

Each server runs in its own temp data dir, logs to files there, and is
stopped by PID. After each test the logs are scanned for sanitizer reports
and crashes, so an ASan build fails the test that triggered the report.
"""
import json
import os
import signal
import subprocess
import time

import pytest
import requests

CITRUS_BIN = os.environ.get(
    "CITRUS_BIN",
    os.path.join(os.path.dirname(__file__), "..", "..", "build", "citrus"))

SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "ThreadSanitizer", "runtime error:",
                     "UndefinedBehaviorSanitizer", "Segmentation fault")

# Liveness deadlines an issue names (writes resume within 3 s of an etcd
# leader kill, ...) are asserted as stated in `make test`. Sanitizer builds
# run every instruction several times slower on a shared 2-core machine, so
# `make asan` and `make tsan` stretch those deadlines by this factor; the
# behaviour is still checked, and checked at its real bound in `make test`.
LIVENESS_SCALE = float(os.environ.get("CITRUS_LIVENESS_SCALE", "1"))


def liveness(seconds):
    """A named liveness deadline, stretched under sanitizers (LIVENESS_SCALE)."""
    return seconds * LIVENESS_SCALE


def wait_until(pred, timeout=10.0, interval=0.02, what="condition"):
    """Polls pred() until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = pred()
            if last:
                return last
        except (requests.ConnectionError, OSError, ValueError):
            pass
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def shard_settled(url, sid, timeout=20):
    """The shard sid (GET /v1/shards/<sid>) once it is active or failed."""
    def settled():
        j = requests.get(f"{url}/v1/shards/{sid}", timeout=5).json()
        return j if j.get("state") in ("active", "failed") else None
    return wait_until(settled, timeout, what=f"shard {sid} settled")


def dump_stacks(pid, path):
    """Writes every thread's stack of a hung process to path (when gdb is
    installed); returns path or a note."""
    import shutil
    if not shutil.which("gdb"):
        return "(gdb not installed)"
    with open(path, "w") as f:
        subprocess.run(["gdb", "-p", str(pid), "-batch", "-ex", "thread apply all bt"],
                       stdout=f, stderr=subprocess.STDOUT, timeout=60)
    return path


def no_auth_args(mode, extra):
    """A server that tests something else than auth runs with auth none,
    which citrus server refuses unless told so explicitly; a test that
    passes --auth (or sets auth in a config file) decides for itself."""
    if mode == "dev" or any(a == "--auth" or a.startswith("--auth=") or a == "--config"
                            for a in extra):
        return []
    return ["--auth", "none", "--auth-allow-none", "true"]


class Citrus:
    """One `citrus dev` (or `server`) process."""

    def __init__(self, data_dir, log_dir, mode="dev", extra=(), env=None):
        self.data_dir = str(data_dir)
        self.log_dir = str(log_dir)
        self.mode = mode
        self.extra = list(extra)
        self.env = env
        self.proc = None
        self.port = None
        self.starts = 0
        # HTTPS (server.tls): scheme "https", verify the CA file, cert a
        # client (cert, key) when the server requires one.
        self.scheme = "http"
        self.verify = True
        self.cert = None

    @property
    def url(self):
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self, port=0, timeout=10.0):
        self.starts += 1
        self.stdout_path = os.path.join(self.log_dir, f"citrus-{self.starts}.out")
        self.stderr_path = os.path.join(self.log_dir, f"citrus-{self.starts}.err")
        env = dict(os.environ)
        env.update(self.env or {})
        args = [CITRUS_BIN, self.mode, "--data-dir", self.data_dir,
                "--listen", f"127.0.0.1:{port}", "--log-level", "debug"]
        if self.mode == "dev":  # never the default 8080: tests run side by side
            args += ["--router-listen", "127.0.0.1:0"]
        args += self.extra + no_auth_args(self.mode, self.extra)
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(args, stdout=out, stderr=err, env=env)
        self.port = wait_until(self._listening_port, timeout, what="citrus to listen")
        wait_until(lambda: requests.get(self.url + "/health/ready", timeout=1, verify=self.verify,
                                        cert=self.cert).status_code == 200,
                   timeout, what="citrus to be ready")
        return self

    @property
    def router_url(self):
        """The router's URL (citrus dev, or a server given --router-listen),
        read from the log once per start."""
        cached = getattr(self, "_router_url", None)
        if cached and cached[0] == self.starts:
            return cached[1]
        for line in self.log_lines():
            if line.get("msg") == "router listening":
                scheme = line["fields"].get("scheme", "http")
                url = f"{scheme}://127.0.0.1:{line['fields']['port']}"
                self._router_url = (self.starts, url)
                return url
        raise AssertionError("the router is not listening")

    def _listening_port(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"citrus exited with {self.proc.returncode}: {self.stderr()}")
        for line in self.log_lines():
            if line.get("msg") == "listening":
                return line["fields"]["port"]
        return None

    def log_lines(self):
        lines = []
        with open(self.stdout_path, "r", errors="replace") as f:
            for raw in f:
                raw = raw.strip()
                if raw.startswith("{"):
                    try:
                        lines.append(json.loads(raw))
                    except ValueError:
                        pass
        return lines

    def stderr(self):
        with open(self.stderr_path, "r", errors="replace") as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                stacks = dump_stacks(self.proc.pid, os.path.join(self.log_dir, "hung-stacks.txt"))
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"citrus did not stop on SIGTERM; thread stacks: {stacks}")
        return self.proc.returncode if self.proc else None

    def kill9(self):
        self.proc.kill()
        self.proc.wait()

    def sanitizer_reports(self):
        found = []
        for i in range(1, self.starts + 1):
            for name in (f"citrus-{i}.err", f"citrus-{i}.out"):
                path = os.path.join(self.log_dir, name)
                if os.path.exists(path):
                    text = open(path, errors="replace").read()
                    found += [m for m in SANITIZER_MARKERS if m in text]
        return found


@pytest.fixture
def make_citrus(tmp_path):
    started = []

    def make(mode="dev", extra=(), env=None, data_dir=None, start=True, shards=False):
        """shards=False: `citrus dev` without its four SQLite shards, so the
        catalog holds only what the test writes (and the node's session)."""
        n = len(started) + 1
        d = data_dir or tmp_path / f"data{n}"
        logs = tmp_path / f"logs{n}"
        logs.mkdir()
        if mode == "dev" and not shards:
            extra = ["--dev-shards", "0"] + list(extra)
        c = Citrus(d, logs, mode, extra, env)
        started.append(c)
        if start:
            c.start()
        return c

    yield make
    problems = []
    for c in started:
        if c.proc and c.proc.poll() is None:
            c.stop()
        reports = c.sanitizer_reports()
        if reports:
            problems.append(f"{c.log_dir}: {reports}")
    assert not problems, f"sanitizer reports: {problems}"


@pytest.fixture
def citrus(make_citrus):
    return make_citrus()


@pytest.fixture
def citrus_shards(make_citrus):
    """`citrus dev` as `make dev` runs it: four SQLite shards, the example template."""
    return make_citrus(shards=True)


def run_cli(*args, input=None, env=None, timeout=30):
    """Runs the citrus CLI; returns CompletedProcess with text output."""
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([CITRUS_BIN] + list(args), input=input, capture_output=True,
                          text=True, timeout=timeout, env=e)
