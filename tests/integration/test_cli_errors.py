"""Every user mistake is one clear line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from node.config import init_cluster
from tests.integration.harness import free_base_ports, no_traceback


def bft(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "node", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], needle: str) -> None:
    assert proc.returncode != 0, proc
    assert no_traceback(proc.stderr), proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, proc.stderr
    assert needle in errors[0], errors[0]


@pytest.fixture
def cluster_dir(tmp_path):
    base, http_base = free_base_ports(4)
    init_cluster(tmp_path / "c", base_port=base, http_base_port=http_base)
    return tmp_path / "c"


def test_missing_config(tmp_path):
    assert_one_line_error(
        bft("run", "--config", str(tmp_path / "nope.toml"), "--id", "0"), "config file not found"
    )


def test_bad_toml(cluster_dir):
    (cluster_dir / "cluster.toml").write_text("[cluster\nf = 1\n")
    assert_one_line_error(
        bft("run", "--config", str(cluster_dir / "cluster.toml"), "--id", "0"), "not valid TOML"
    )


def test_unknown_id(cluster_dir):
    assert_one_line_error(
        bft("run", "--config", str(cluster_dir / "cluster.toml"), "--id", "7"),
        "unknown replica id 7",
    )


def test_missing_key(cluster_dir):
    (cluster_dir / "keys" / "replica-1.key").unlink()
    assert_one_line_error(
        bft("run", "--config", str(cluster_dir / "cluster.toml"), "--id", "1"), "key file not found"
    )


def test_wrong_key_for_replica(cluster_dir):
    keys = cluster_dir / "keys"
    os.replace(keys / "replica-2.key", keys / "replica-1.key")
    assert_one_line_error(
        bft("run", "--config", str(cluster_dir / "cluster.toml"), "--id", "1"), "does not match"
    )


def test_unwritable_data_dir(cluster_dir, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = bft(
        "run",
        "--config",
        str(cluster_dir / "cluster.toml"),
        "--id",
        "0",
        "--data",
        str(blocker / "data"),
    )
    assert_one_line_error(proc, "data dir")


def test_port_in_use(cluster_dir):
    from node.config import load_config

    cfg = load_config(cluster_dir / "cluster.toml")
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", cfg.replica(0).port))
        s.listen()
        proc = bft("run", "--config", str(cluster_dir / "cluster.toml"), "--id", "0")
    assert_one_line_error(proc, "port in use")


def test_bad_fault_mode(cluster_dir):
    proc = bft(
        "run", "--config", str(cluster_dir / "cluster.toml"), "--id", "0", "--fault", "explode"
    )
    assert proc.returncode != 0 and no_traceback(proc.stderr)
    assert "unknown fault mode" in proc.stderr


def test_init_refuses_existing(cluster_dir):
    assert_one_line_error(bft("init", str(cluster_dir)), "already exists")


def test_client_without_replicas_times_out_cleanly(cluster_dir):
    proc = bft(
        "client", "--config", str(cluster_dir / "cluster.toml"), "--timeout", "2", "put", "k", "v"
    )
    assert_one_line_error(proc, "no 2 matching replies")
