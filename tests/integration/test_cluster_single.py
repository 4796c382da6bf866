"""Node registration, controller election and /v1/cluster on one embedded node."""
import json

import requests

from conftest import run_cli, wait_until


def test_cluster_view_single_node(make_citrus):
    c = make_citrus(extra=["--node-id", "alpha"])
    j = requests.get(c.url + "/v1/cluster").json()
    assert j["node_id"] == "alpha"
    assert [n["id"] for n in j["nodes"]] == ["alpha"]
    assert j["nodes"][0]["api"] == c.url and j["nodes"][0]["lease"] > 0
    assert j["controller"]["leader"] == "alpha" and j["controller"]["token"] > 0
    assert j["catalog"]["backend"] == "embedded" and j["catalog"]["writable"] is True
    assert j["catalog"]["member_list"] == [
        {"name": "embedded", "url": None, "healthy": True, "leader": True}]
    ready = requests.get(c.url + "/health/ready").json()
    assert ready["registered"] is True
    # the registration and the leader key are catalog keys under their lease
    leader = requests.get(c.url + "/v1/kv/citrus/controller/leader?format=json").json()
    assert leader["lease"] == j["nodes"][0]["lease"]
    assert leader["create_revision"] == j["controller"]["token"]
    text = run_cli("cluster", "status", "--endpoint", c.url)
    assert text.returncode == 0
    assert "controller  alpha" in text.stdout and "alpha" in text.stdout
    assert "embedded" in text.stdout and "1/1 members healthy" in text.stdout
    js = run_cli("cluster", "status", "--endpoint", c.url, "-o", "json")
    assert json.loads(js.stdout)["controller"]["leader"] == "alpha"
    assert run_cli("cluster", "frob").returncode == 2
    assert run_cli("cluster", "status", "--endpoint", "http://127.0.0.1:1").returncode == 1


def test_graceful_stop_releases_and_restart_retakes(make_citrus):
    c = make_citrus(extra=["--node-id", "beta"])
    token1 = requests.get(c.url + "/v1/cluster").json()["controller"]["token"]
    c.stop()
    c.start()
    j = wait_until(lambda: (lambda v: v if v["controller"]["leader"] == "beta" else None)(
        requests.get(c.url + "/v1/cluster").json()), 3, what="leadership after restart")
    # a new term: the fencing token moved on, and there is one registration
    assert j["controller"]["token"] > token1
    assert [n["id"] for n in j["nodes"]] == ["beta"]


def test_restart_after_kill9_retakes_leadership_at_once(make_citrus):
    """A killed node's leases come back with the store; the node recognises its
    own previous leader key and takes it over without waiting for the TTL."""
    c = make_citrus(extra=["--node-id", "gamma", "--session-ttl", "30"])
    token1 = requests.get(c.url + "/v1/cluster").json()["controller"]["token"]
    c.kill9()
    c.start()
    j = requests.get(c.url + "/v1/cluster").json()
    assert j["controller"]["leader"] == "gamma" and j["controller"]["token"] > token1
    assert [n["id"] for n in j["nodes"]] == ["gamma"]
