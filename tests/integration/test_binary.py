"""The citrus binary: subcommands, --help, exit codes, configuration."""
import json
import os

import requests

from conftest import run_cli


def test_help_and_version():
    r = run_cli("help")
    assert r.returncode == 0
    for cmd in ("dev", "server", "kv", "cluster", "backup", "restore", "auth", "audit",
                "events", "dlq", "version", "help"):
        assert cmd in r.stdout
    assert run_cli("--help").returncode == 0
    v = run_cli("version")
    assert v.returncode == 0 and v.stdout.startswith("citrus ")


def test_every_subcommand_has_help():
    for cmd in ("dev", "server", "kv", "cluster", "backup", "restore", "auth", "audit",
                "events", "dlq", "version"):
        r = run_cli(cmd, "--help")
        assert r.returncode == 0, (cmd, r.stderr)
        assert r.stdout.strip(), cmd
        r2 = run_cli("help", cmd)
        assert r2.returncode == 0, cmd


def test_usage_errors_exit_2():
    assert run_cli().returncode == 2
    assert run_cli("frobnicate").returncode == 2
    r = run_cli("dev", "--no-such-flag", "1")
    assert r.returncode == 2 and "no-such-flag" in r.stderr
    r = run_cli("dev", "--threads")
    assert r.returncode == 2


def test_invalid_config_names_field(tmp_path):
    cfg = tmp_path / "citrus.json"
    cfg.write_text(json.dumps({"server": {"threads": "many"}}))
    r = run_cli("dev", "--config", str(cfg))
    assert r.returncode == 2 and "server.threads" in r.stderr
    cfg.write_text(json.dumps({"catalog": {"data_dirr": "/tmp/x"}}))
    r = run_cli("server", "--config", str(cfg))
    assert r.returncode == 2 and "catalog.data_dirr" in r.stderr
    cfg.write_text("{not json")
    r = run_cli("dev", "--config", str(cfg))
    assert r.returncode == 2 and "citrus.json" in r.stderr
    r = run_cli("dev", env={"CITRUS_SERVER_THREADS": "0"})
    assert r.returncode == 2 and "CITRUS_SERVER_THREADS" in r.stderr
    r = run_cli("dev", "--config", str(tmp_path / "missing.json"))
    assert r.returncode == 2


def test_config_file_env_and_flag_precedence(make_citrus, tmp_path):
    cfg = tmp_path / "citrus.json"
    cfg.write_text(json.dumps({"cluster": {"node_id": "from-file"},
                               "catalog": {"max_value_bytes": 10},
                               "log": {"level": "info"}}))
    c = make_citrus(extra=["--config", str(cfg)],
                    env={"CITRUS_CATALOG_MAX_VALUE_BYTES": "20"})
    assert requests.get(c.url + "/health/live").json()["node_id"] == "from-file"
    assert requests.put(c.url + "/v1/kv/a", data=b"x" * 20).status_code == 200
    assert requests.put(c.url + "/v1/kv/a", data=b"x" * 21).status_code == 400
    c.stop()
    c.extra += ["--max-value-bytes", "30"]
    c.start()
    assert requests.put(c.url + "/v1/kv/a", data=b"x" * 30).status_code == 200


def test_server_subcommand_serves(make_citrus):
    c = make_citrus(mode="server")
    assert requests.put(c.url + "/v1/kv/s", data=b"1").status_code == 200
    assert requests.get(c.url + "/health/ready").status_code == 200


def test_port_in_use_is_runtime_error(citrus, tmp_path):
    r = run_cli("dev", "--data-dir", str(tmp_path / "d"), "--listen", f"127.0.0.1:{citrus.port}",
                timeout=10)
    assert r.returncode == 1 and "cannot listen" in r.stderr


def test_bus_settings_checked_at_start(tmp_path):
    """Issue 15, item 2: a bad topic name or a kafka backend without
    brokers stops the process at start (status 2), naming the setting."""
    cfg = tmp_path / "citrus.json"
    cfg.write_text(json.dumps({"bus": {"topics": {"sm_events": "bad name"}}}))
    r = run_cli("dev", "--config", str(cfg), "--data-dir", str(tmp_path / "d"))
    assert r.returncode == 2 and "bus.topics.sm_events" in r.stderr, r.stderr
    r = run_cli("dev", "--bus-backend", "kafka", "--data-dir", str(tmp_path / "d"))
    assert r.returncode == 2 and "bus.kafka.bootstrap_servers" in r.stderr, r.stderr
    r = run_cli("dev", "--data-dir", str(tmp_path / "d"),
                env={"CITRUS_BUS_TOPIC_PREFIX": "bad/prefix."})
    assert r.returncode == 2 and "bus.topic_prefix" in r.stderr, r.stderr
    r = run_cli("dev", "--help")
    assert "--bus-topic-sm-events" in r.stdout and "CITRUS_BUS_MAX_EVENT_BYTES" in r.stdout


def test_bus_topics_created_at_start(make_citrus, tmp_path):
    """Issue 15: the node opens its event bus in the data dir and creates
    seed 000's topics and the registration queue's (seed 003), each with its
    dead-letter topic, with bus.partitions;
    a restart keeps them (and their partitions) as they were."""
    import sqlite3
    c = make_citrus(extra=["--bus-partitions", "3",
                           "--bus-topic-platform-events", "ops.platform"])
    c.stop()

    def topics():
        db = sqlite3.connect(os.path.join(c.data_dir, "bus.db"))
        try:
            return dict(db.execute("SELECT name, partitions FROM bus_topics"))
        finally:
            db.close()

    want = {n: 3 for n in ("citrus.enrollment.events", "citrus.shard.ingest.commands",
                           "citrus.sm.commands", "citrus.sm.events", "ops.platform",
                           "citrus.registrations")}
    want.update({n + ".dlq": 3 for n in list(want)})
    assert topics() == want
    c.extra = [x for x in c.extra if x not in ("--bus-partitions", "3")]
    c.start()
    c.stop()
    assert topics() == want
    r = run_cli("dev", "--data-dir", str(tmp_path / "d2"), "--bus-backoff-base-ms", "5000",
                "--bus-backoff-cap-ms", "1000")
    assert r.returncode == 2 and "bus.backoff_cap_ms" in r.stderr, r.stderr


def test_kafka_backend_without_a_broker_fails_at_start(tmp_path):
    """bus.backend kafka: the node opens the Kafka backend; with no broker
    at the bootstrap address, creating the topics fails within the request
    timeout and the node exits with a clear message (no hang)."""
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    r = run_cli("dev", "--data-dir", str(tmp_path / "d"), "--bus-backend", "kafka",
                "--kafka-bootstrap-servers", f"127.0.0.1:{port}",
                "--kafka-request-timeout", "1000", timeout=60)
    assert r.returncode == 1, r.stderr
    assert "topic" in r.stderr and "citrus.enrollment.events" in r.stderr, r.stderr
    assert not (tmp_path / "d" / "bus.db").exists()
