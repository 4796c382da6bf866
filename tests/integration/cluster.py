"""A real local cluster for integration tests: 3 etcd members and 3 `citrus
server` nodes on loopback, ephemeral ports, temp dirs, every process stopped
by its PID.

Used by test_cluster.py through the `make_cluster` fixture (defined there):

    cl = make_cluster(citrus_extra=["--max-staleness", "2000"])
    cl.nodes[0].url, cl.etcd_leader(), cl.etcd[1].kill9(), cl.etcd[1].start()
"""
import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time

import pytest
import requests

from conftest import CITRUS_BIN, Citrus, no_auth_args, wait_until

ETCD_BIN = os.environ.get("ETCD_BIN", "/usr/bin/etcd")


def free_ports(n):
    """n distinct free loopback ports: all bound at once (port 0), then released."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class EtcdMember:
    """One etcd member process; restartable with the same data dir and flags."""

    def __init__(self, name, client_port, peer_port, data_dir, log_dir, initial_cluster, token,
                 tls=None):
        """tls: None (plain http), or {ca, cert, key, client_cert, client_key}:
        https client URLs with client certificate auth (--client-cert-auth),
        the server certificate for 127.0.0.1 (cert, key), the CA clients'
        certificates must chain to (ca), and one such client certificate
        that status() uses. Peers stay on plain http (one member, loopback)."""
        self.tls = tls
        self.name = name
        self.client_port = client_port
        self.peer_port = peer_port
        self.data_dir = str(data_dir)
        self.log_dir = str(log_dir)
        self.initial_cluster = initial_cluster
        self.token = token
        self.proc = None
        self.starts = 0
        self.member_id = None  # decimal string, as the JSON gateway prints uint64s

    @property
    def url(self):
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.client_port}"

    def args(self):
        tls = [] if not self.tls else [
            "--cert-file", self.tls["cert"], "--key-file", self.tls["key"],
            "--trusted-ca-file", self.tls["ca"], "--client-cert-auth"]
        return [ETCD_BIN, "--name", self.name, "--data-dir", self.data_dir,
                "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
                "--listen-peer-urls", f"http://127.0.0.1:{self.peer_port}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peer_port}",
                "--initial-cluster", self.initial_cluster, "--initial-cluster-state", "new",
                "--initial-cluster-token", self.token,
                # loopback: short heartbeats so a lost leader is noticed
                # quickly. The election timeout bounds how long the fault tests
                # wait for a new leader: a follower's first campaign comes
                # after one to two timeouts, and it can be refused (the other
                # follower heard the dead leader less than a timeout ago: raft's
                # check-quorum lease) and come again one to two timeouts later.
                # With etcd's default of 1000 ms that tail reached 3.06 s in 1
                # of 12 leader kills here, past the 3 s the tests allow Citrus;
                # at 500 ms it stays under 2 s.
                "--heartbeat-interval", "50", "--election-timeout", "500",
                "--logger", "zap", "--log-level", "warn"] + tls

    def start(self):
        self.starts += 1
        self.log_path = os.path.join(self.log_dir, f"{self.name}-{self.starts}.log")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.args(), stdout=log, stderr=subprocess.STDOUT)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def status(self, timeout=0.5):
        """/v3/maintenance/status: {'member_id', 'leader', 'raft_term', ...} (strings)."""
        tls = {} if not self.tls else {
            "verify": self.tls["ca"], "cert": (self.tls["client_cert"], self.tls["client_key"])}
        r = requests.post(self.url + "/v3/maintenance/status", data="{}", timeout=timeout, **tls)
        r.raise_for_status()
        j = r.json()
        self.member_id = j["header"]["member_id"]
        return {"member_id": j["header"]["member_id"], "leader": j.get("leader", "0"),
                "raft_term": int(j.get("raftTerm", j.get("raft_term", 0)) or 0)}

    def signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait()

    def stop(self, timeout=10.0):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGCONT)  # a stopped process cannot act on SIGTERM
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@contextlib.contextmanager
def dev_on_store(store, make_citrus, tmp_path, extra=()):
    """`citrus dev` with its four shards on the catalog store `store`:
    "embedded", or "etcd" (a one-member etcd of its own, stopped after the
    node). For fixtures parametrized over both stores."""
    if store == "embedded":
        yield make_citrus(shards=True, extra=list(extra))
        return
    assert store == "etcd", store
    cport, pport = free_ports(2)
    logs = tmp_path / "etcd-logs"
    logs.mkdir()
    member = EtcdMember("e1", cport, pport, tmp_path / "etcd", logs,
                        f"e1=http://127.0.0.1:{pport}", f"dev-{cport}").start()
    try:
        wait_until(lambda: member.status() is not None, 15, what="etcd up")
        c = make_citrus(shards=True, extra=list(extra) + ["--catalog-backend", "etcd",
                                                          "--etcd-endpoints", member.url])
        try:
            yield c
        finally:
            c.stop()
    finally:
        member.stop()


class Node(Citrus):
    """A `citrus server` node. spawn() starts the process without waiting, so
    three nodes can start together; wait_listening()/wait_ready() poll."""

    def spawn(self):
        self.starts += 1
        self.stdout_path = os.path.join(self.log_dir, f"citrus-{self.starts}.out")
        self.stderr_path = os.path.join(self.log_dir, f"citrus-{self.starts}.err")
        args = [CITRUS_BIN, self.mode, "--data-dir", self.data_dir,
                "--listen", "127.0.0.1:0", "--log-level", "debug"] + self.extra
        args += no_auth_args(self.mode, self.extra)
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(args, stdout=out, stderr=err)
        self.port = None
        return self

    def wait_listening(self, timeout=10.0):
        self.port = wait_until(self._listening_port, timeout, interval=0.01,
                               what=f"{self.data_dir} to listen")
        return self.port

    killed = False

    def kill9(self):
        self.killed = True
        super().kill9()

    def ready(self, timeout=1.0):
        return requests.get(self.url + "/health/ready", timeout=timeout)

    def is_ready(self):
        return self.ready().status_code == 200


class Cluster:
    def __init__(self, tmp_path, citrus_extra=(), n_etcd=3, n_nodes=3):
        self.tmp = tmp_path
        tmp_path.mkdir(parents=True, exist_ok=True)
        ports = free_ports(2 * n_etcd)
        names = [f"e{i + 1}" for i in range(n_etcd)]
        initial = ",".join(f"{names[i]}=http://127.0.0.1:{ports[2 * i + 1]}"
                           for i in range(n_etcd))
        token = f"citrus-test-{os.getpid()}-{ports[0]}"
        self.etcd = []
        for i, name in enumerate(names):
            d = tmp_path / f"etcd-{name}"
            logs = tmp_path / f"etcd-{name}-logs"
            logs.mkdir()
            self.etcd.append(EtcdMember(name, ports[2 * i], ports[2 * i + 1], d, logs,
                                        initial, token))
        self.endpoints = ",".join(m.url for m in self.etcd)
        self.nodes = []
        for i in range(n_nodes):
            logs = tmp_path / f"node{i + 1}-logs"
            logs.mkdir()
            extra = ["--catalog-backend", "etcd", "--etcd-endpoints", self.endpoints,
                     "--node-id", f"node{i + 1}"] + list(citrus_extra)
            self.nodes.append(Node(tmp_path / f"node{i + 1}-data", logs, "server", extra))

    # -- lifecycle ---------------------------------------------------------
    def start(self, ready_timeout=10.0):
        """Starts everything at once; returns seconds from the first process
        start until every node's /health/ready answered 200."""
        t0 = time.monotonic()
        for m in self.etcd:
            m.start()
        for n in self.nodes:
            n.spawn()
        for n in self.nodes:
            n.wait_listening(max(0.1, ready_timeout - (time.monotonic() - t0)))
        self.wait_ready(max(0.1, ready_timeout - (time.monotonic() - t0)))
        return time.monotonic() - t0

    def wait_ready(self, timeout, nodes=None):
        nodes = nodes or self.nodes
        pending = list(nodes)

        def all_ready():
            for n in list(pending):
                if n.is_ready():
                    pending.remove(n)
            return not pending

        try:
            wait_until(all_ready, timeout, interval=0.02, what="every node ready")
        except AssertionError as e:
            detail = []
            for n in pending:
                try:
                    r = n.ready()
                    detail.append(f"{n.url}: {r.status_code} {r.text}")
                except requests.RequestException as ex:
                    detail.append(f"{n.url}: {ex}")
            raise AssertionError(f"{e}; not ready: {detail}") from None

    def stop(self):
        """Stops every process by PID (citrus first, then etcd); returns problems."""
        problems = []
        for n in self.nodes:
            if n.proc and n.proc.poll() is not None and not n.killed:
                problems.append(f"{n.log_dir}: citrus exited by itself with "
                                f"{n.proc.returncode}: {n.stderr()[-2000:]}")
            if n.proc and n.proc.poll() is None:
                try:
                    n.stop()
                except AssertionError as e:
                    problems.append(f"{n.log_dir}: {e}")
        for m in self.etcd:
            m.stop()
        for n in self.nodes:
            reports = n.sanitizer_reports()
            if reports:
                problems.append(f"{n.log_dir}: sanitizer reports {reports}")
        return problems

    def log_tail(self, lines=15):
        """The last lines of every log, for failure messages."""
        out = []
        for m in self.etcd:
            for i in range(1, m.starts + 1):
                out.append(_tail(os.path.join(m.log_dir, f"{m.name}-{i}.log"), lines))
        for n in self.nodes:
            for i in range(1, n.starts + 1):
                for name in (f"citrus-{i}.out", f"citrus-{i}.err"):
                    out.append(_tail(os.path.join(n.log_dir, name), lines))
        return "\n".join(out)

    # -- etcd views --------------------------------------------------------
    def etcd_leader(self, timeout=5.0):
        """The member every live member agrees is leader (by member id)."""

        def agreed():
            ids, leaders = {}, set()
            for m in self.etcd:
                if not m.alive():
                    continue
                s = m.status()
                ids[s["member_id"]] = m
                leaders.add(s["leader"])
            if len(leaders) == 1:
                lid = leaders.pop()
                return ids.get(lid)
            return None

        return wait_until(agreed, timeout, interval=0.02, what="an agreed etcd leader")

    def strong_get(self, node, key, timeout=3.0):
        return requests.get(f"{node.url}/v1/kv/{key}", params={"consistency": "strong"},
                            timeout=timeout)


def _tail(path, lines):
    if not os.path.exists(path):
        return f"== {path}: missing"
    with open(path, errors="replace") as f:
        text = f.read().splitlines()[-lines:]
    return f"== {path}\n" + "\n".join(text)


def error_code(resp):
    try:
        return resp.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None


class History:
    """Every client write with its outcome. Keys and values are unique per op."""

    def __init__(self, prefix):
        self.prefix = prefix
        self.ops = []  # dicts: key, value, node, t0, t1, status, code
        self.lock = threading.Lock()
        self.seq = 0

    def next_key(self, tag):
        with self.lock:
            self.seq += 1
            return f"{self.prefix}/{tag}/{self.seq:07d}", f"v-{tag}-{self.seq}-{time.monotonic_ns()}"

    def put(self, node, tag, timeout):
        key, value = self.next_key(tag)
        op = {"key": key, "value": value, "node": node.url, "t0": time.monotonic()}
        try:
            r = requests.put(f"{node.url}/v1/kv/{key}", data=value.encode(), timeout=timeout)
            op["status"] = r.status_code
            op["code"] = error_code(r) if r.status_code != 200 else None
            if r.status_code == 200:
                op["revision"] = r.json().get("revision")
        except requests.Timeout:
            op["status"], op["code"] = "timeout", None
        except requests.ConnectionError as e:
            # refused before anything was sent counts as not sent; anything else unknown
            op["status"] = "refused" if "refused" in str(e).lower() else "conn_error"
            op["code"] = None
        op["t1"] = time.monotonic()
        with self.lock:
            self.ops.append(op)
        return op

    def check(self, node, timeout=5.0):
        """Reads every key with consistency=strong through node. Returns a dict
        of violations: acknowledged writes missing or changed, definitely
        failed writes present. Indeterminate ones (504, client timeouts) may be
        either way."""
        lost, phantom, wrong, unreadable = [], [], [], []
        present_unknown = 0
        with self.lock:
            ops = list(self.ops)
        s = requests.Session()
        for op in ops:
            r = s.get(f"{node.url}/v1/kv/{op['key']}", params={"consistency": "strong"},
                      timeout=timeout)
            if r.status_code == 200:
                got = r.content.decode(errors="replace")
                found = True
            elif r.status_code == 404:
                found, got = False, None
            else:
                unreadable.append((op, r.status_code, r.text))
                continue
            if op["status"] == 200:
                if not found:
                    lost.append(op)
                elif got != op["value"]:
                    wrong.append((op, got))
            elif definite_failure(op):
                if found:
                    phantom.append(op)
            elif found:
                present_unknown += 1
                if got != op["value"]:
                    wrong.append((op, got))
        return {"lost": lost, "phantom": phantom, "wrong": wrong, "unreadable": unreadable,
                "present_unknown": present_unknown}

    def summary(self):
        counts = {}
        for op in self.ops:
            k = f"{op['status']}" + (f"/{op['code']}" if op.get("code") else "")
            counts[k] = counts.get(k, 0) + 1
        return counts


DEFINITE_503_CODES = ("unavailable", "no_quorum")


def definite_failure(op):
    """The write was certainly not applied: a 4xx, a 503 unavailable/no_quorum
    (no leader, no quorum, unreachable: the server says nothing was sent), or a
    refused connection. 504 outcome_unknown, other 5xx and client timeouts may
    or may not have been applied."""
    st = op["status"]
    if st == "refused":
        return True
    if isinstance(st, int) and 400 <= st < 500:
        return True
    return st == 503 and op.get("code") in DEFINITE_503_CODES


class Load:
    """Steady writes through each node from per_node threads per node."""

    def __init__(self, cluster, history, tag="load", timeout=2.0, pause=0.01, per_node=1):
        self.per_node = per_node
        self.cluster = cluster
        self.history = history
        self.tag = tag
        self.timeout = timeout
        self.pause = pause
        self.stop_ev = threading.Event()
        self.threads = []

    def start(self):
        for i, n in enumerate(self.cluster.nodes):
            for j in range(self.per_node):
                t = threading.Thread(target=self._run, args=(n, f"{self.tag}{i + 1}.{j}"),
                                     daemon=True)
                t.start()
                self.threads.append(t)
        return self

    def _run(self, node, tag):
        while not self.stop_ev.is_set():
            if node.proc.poll() is not None:
                return
            self.history.put(node, tag, self.timeout)
            self.stop_ev.wait(self.pause)

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(self.timeout + 5)


@pytest.fixture
def make_cluster(tmp_path):
    """make_cluster(citrus_extra=(...), ready_timeout=10, n_etcd=3, n_nodes=3) -> a started Cluster
    and the seconds it took from the first process start until every node was
    ready. Every process is stopped by PID at teardown, and the citrus logs are
    scanned for sanitizer reports and unexpected exits."""
    made = []

    def make(citrus_extra=(), ready_timeout=10.0, n_etcd=3, n_nodes=3):
        cl = Cluster(tmp_path / f"cluster{len(made) + 1}", citrus_extra, n_etcd, n_nodes)
        made.append(cl)
        took = cl.start(ready_timeout)
        return cl, took

    yield make
    problems = []
    for cl in made:
        problems += cl.stop()
    assert not problems, f"cluster teardown problems: {problems}"


class Prober:
    """Fresh writes to every node every `interval` seconds, each in its own
    thread, so a write hanging on a lost etcd member does not hold back the
    next one: the first success after an event is measured, not a timeout."""

    def __init__(self, cluster, history, tag="probe", interval=0.1, timeout=6.0, limit=200):
        self.cluster = cluster
        self.history = history
        self.tag = tag
        self.interval = interval
        self.timeout = timeout
        self.limit = limit
        self.stop_ev = threading.Event()
        self.workers = []
        self.thread = None

    def start(self):
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self):
        while not self.stop_ev.is_set() and len(self.workers) < self.limit:
            for i, n in enumerate(self.cluster.nodes):
                if n.proc.poll() is None:
                    t = threading.Thread(target=self.history.put,
                                         args=(n, f"{self.tag}{i + 1}", self.timeout),
                                         daemon=True)
                    t.start()
                    self.workers.append(t)
            self.stop_ev.wait(self.interval)

    def stop(self):
        self.stop_ev.set()
        self.thread.join()
        for t in self.workers:
            t.join(self.timeout + 5)


class ReadyPoller:
    """GET /health/ready on every node, one request in flight per node (as a
    prober would), a new one `interval` s after the last answer; records
    (node url, t0, t1, status or exception name)."""

    def __init__(self, nodes, interval=0.1, timeout=8.0):
        self.nodes = nodes
        self.interval = interval
        self.timeout = timeout
        self.results = []
        self.lock = threading.Lock()
        self.stop_ev = threading.Event()
        self.threads = []

    def _run(self, node):
        while not self.stop_ev.is_set():
            t0 = time.monotonic()
            try:
                st = requests.get(node.url + "/health/ready", timeout=self.timeout).status_code
            except requests.RequestException as e:
                st = type(e).__name__
            with self.lock:
                self.results.append((node.url, t0, time.monotonic(), st))
            self.stop_ev.wait(self.interval)

    def start(self):
        for n in self.nodes:
            t = threading.Thread(target=self._run, args=(n,), daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(self.timeout + 5)
        return self.results
