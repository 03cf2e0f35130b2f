"""The monitoring files, checked by the real tools: promtool (`check config`, `check
rules`, `test rules`) and the dashboard's PromQL against the contract's metric names.

Nothing here needs a running server: test_prometheus_cluster.py runs every panel's query
and the alerts against a real Prometheus scraping a real cluster. A missing promtool is
installed when possible (`.ci/setup-infra.sh`); the tests are skipped, loudly, only if
that fails too.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from node.config import load_config
from tests.integration.infra import ensure_packages

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy" / "prometheus"
GRAFANA = ROOT / "deploy" / "grafana"

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


@pytest.fixture(scope="module")
def promtool() -> str:
    ensure_packages({"promtool": "prometheus"})  # or a loud skip
    path = shutil.which("promtool")
    assert path is not None
    return path


def _run(cmd: list[str | Path], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, timeout=120, cwd=ROOT, **kw
    )


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
