"""The dashboard and the alerts against a real Prometheus scraping a real cluster.

Debian's prometheus (installed by .ci/setup-infra.sh) runs on a free 127.0.0.1 port with
its own TSDB in a temp dir, scraping every second a local 4-replica cluster
(`LocalCluster`, fast timeouts) under load. Replica 3 runs with `--fault bad-signature`,
so the honest replicas reject its messages and the panels that only have data when
something is rejected have data too. Then:

- every Grafana panel's PromQL (deploy/grafana/dashboards/bft.json, dashboard variables
  substituted) returns data through the HTTP API, and a few say the right thing;
- killing replica 3 makes the production `BftReplicaDown` rule fire (/api/v1/alerts),
  loaded from alerts.yml with its expressions unchanged and only `for:` shortened.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import signal
import socket
import subprocess
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio
import yaml

from node.cli.cluster.fetch import fetch_json
from node.cli.cluster.launcher import LocalCluster
from node.client.load import run_load
from node.config import ClusterConfig
from tests.integration.harness import fast_cluster_dir, wait_for
from tests.integration.infra import ROOT, ensure_packages

pytestmark = pytest.mark.slow

DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "bft.json"
PROM = ROOT / "deploy" / "prometheus"
SHORT_FOR = "2s"

# Grafana's built-in variables, as a dashboard would resolve them with 1 s scrapes.
GRAFANA_BUILTINS = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__interval_ms": "15000",
    "__range": "15m",
    "__range_s": "900",
}


# ------------------------------------------------------------ dashboard queries


def substitute(expr: str, dashboard: dict[str, Any]) -> str:
    """A panel's PromQL with its dashboard variables replaced: Grafana's built-ins by
    what it would pick, the dashboard's own variables by their current value (a regex
    matching everything if "All" or unset)."""
    values = dict(GRAFANA_BUILTINS)
    for var in dashboard.get("templating", {}).get("list", []):
        current = (var.get("current") or {}).get("value")
        if isinstance(current, list):
            current = "|".join(current)
        values[var["name"]] = ".*" if current in (None, "", "$__all") else str(current)

    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        if name not in values:
            raise AssertionError(f"unknown dashboard variable ${name} in {expr!r}")
        return values[name]

    out = re.sub(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)", repl, expr)
    assert "$" not in out, out
    return out


def test_substitute_dashboard_variables():
    dash = {
        "templating": {
            "list": [
                {"name": "instance", "current": {"value": "$__all"}},
                {"name": "peer", "current": {"value": ["1", "2"]}},
            ]
        }
    }
    got = substitute(
        'rate(x{instance=~"$instance", peer=~"${peer}"}[$__rate_interval]) [[peer]]', dash
    )
    assert got == 'rate(x{instance=~".*", peer=~"1|2"}[1m]) 1|2'
    with pytest.raises(AssertionError, match="unknown dashboard variable"):
        substitute("rate(x[$nope])", dash)


def panel_queries() -> list[tuple[str, str]]:
    dash = json.loads(DASHBOARD.read_text())
    return [
        (p["title"], substitute(t["expr"], dash))
        for p in dash["panels"]
        for t in p.get("targets", [])
        if t.get("expr") and not t.get("hide")
    ]


# ------------------------------------------------------------ prometheus


@pytest.fixture
def prometheus_binary() -> str:
    ensure_packages({"prometheus": "prometheus"})  # or a loud skip
    path = shutil.which("prometheus")
    assert path is not None
    return path


def write_prometheus_config(directory: Path, cfg: ClusterConfig) -> Path:
    """prometheus-local.yml pointed at the test cluster, scraping and evaluating every
    second, with alerts.yml's rules unchanged except a short `for:`."""
    directory.mkdir(parents=True, exist_ok=True)
    rules = yaml.safe_load((PROM / "alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = SHORT_FOR
    (directory / "alerts-fast.yml").write_text(yaml.safe_dump(rules, sort_keys=False))
    prom = yaml.safe_load((PROM / "prometheus-local.yml").read_text())
    prom["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    prom["rule_files"] = [str(directory / "alerts-fast.yml")]
    [job] = prom["scrape_configs"]
    assert job["job_name"] == "bft"  # the dashboard and the alerts select job="bft"
    job["static_configs"] = [{"targets": [f"127.0.0.1:{r.http_port}" for r in cfg.replicas]}]
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(prom, sort_keys=False))
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _log_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-3000:]
    except OSError:
        return ""


def _open_log(path: Path):
    return open(path, "ab")  # handed to the child, closed by the caller


@contextlib.asynccontextmanager
async def prometheus_server(binary: str, config: Path, workdir: Path) -> AsyncIterator[str]:
    """Prometheus on a free 127.0.0.1 port until the block ends; yields its base URL."""
    log_path = workdir / "prometheus.log"
    for _attempt in range(3):
        port = _free_port()
        with _open_log(log_path) as log:
            proc = await trio.lowlevel.open_process(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={workdir / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--log.level=warn",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            url = f"http://127.0.0.1:{port}"
            with trio.move_on_after(30):
                while proc.returncode is None:
                    with contextlib.suppress(Exception):
                        await fetch_json(url + "/api/v1/status/buildinfo", timeout=1.0)
                        break
                    await trio.sleep(0.2)
            if proc.returncode is None:
                yield url
                return
        finally:
            with trio.CancelScope(shield=True):
                if proc.returncode is None:
                    proc.send_signal(signal.SIGTERM)
                    with trio.move_on_after(15):
                        await proc.wait()
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
    raise AssertionError(f"prometheus did not start:\n{_log_text(log_path)}")


async def query(url: str, expr: str) -> list[dict[str, Any]]:
    doc = await fetch_json(f"{url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}", 3.0)
    assert doc["status"] == "success", doc
    return doc["data"]["result"]


async def alerts(url: str) -> list[dict[str, Any]]:
    doc = await fetch_json(f"{url}/api/v1/alerts", 3.0)
    assert doc["status"] == "success", doc
    return doc["data"]["alerts"]


# ------------------------------------------------------------ the test


async def test_dashboard_queries_and_alerts_on_a_real_cluster(tmp_path, prometheus_binary):
    queries = panel_queries()
    assert len(queries) >= 15
    fast_cluster_dir(tmp_path / "c")
    async with LocalCluster(tmp_path / "c", grace_s=3.0, control=False) as lc:
        cfg = await lc.start(4, faults={3: "bad-signature"})
        await lc.wait_healthy(30)
        config = write_prometheus_config(tmp_path / "prom", cfg)
        with trio.fail_after(120):
            async with (
                prometheus_server(prometheus_binary, config, tmp_path / "prom") as url,
                trio.open_nursery() as nursery,
            ):
                nursery.start_soon(run_load, cfg, 2, 300.0)
                await _check_panels(url, queries, cfg)
                await _check_replica_down_alert(url, lc, cfg)
                nursery.cancel_scope.cancel()


async def _check_panels(url: str, queries: list[tuple[str, str]], cfg: ClusterConfig) -> None:
    async def all_up() -> bool:
        result = await query(url, 'up{job="bft"} == 1')
        return len(result) == cfg.n

    await wait_for(all_up, 20, "Prometheus scraping all four replicas")

    empty: list[str] = []

    async def panels_with_data() -> bool:
        empty[:] = [title for title, expr in queries if not await query(url, expr)]
        return not empty

    try:
        await wait_for(panels_with_data, 30, "every panel's query to return data", 1.0)
    except AssertionError:
        raise AssertionError(f"panels whose query returned no data: {empty}") from None

    by_title = {title: expr for title, expr in queries}
    [up] = await query(url, by_title["Replicas up"])
    assert float(up["value"][1]) == cfg.n

    async def committing() -> bool:
        [ops] = await query(url, by_title["Committed ops/s"])
        return float(ops["value"][1]) > 0

    await wait_for(committing, 15, "a positive committed ops/s")
    reasons = await query(url, by_title["Invalid messages/s by reason"])
    assert any(r["metric"].get("reason") == "bad_signature" for r in reasons), reasons
    info = await query(url, by_title["Replicas and fault modes"])
    faults = {r["metric"]["id"]: r["metric"]["fault"] for r in info}
    assert faults == {"0": "none", "1": "none", "2": "none", "3": "bad-signature"}, faults


async def _check_replica_down_alert(url: str, lc: LocalCluster, cfg: ClusterConfig) -> None:
    target = f"127.0.0.1:{cfg.replica(3).http_port}"

    def down_alerts(found: list[dict[str, Any]], state: str) -> list[dict[str, Any]]:
        return [
            a
            for a in found
            if a["labels"].get("alertname") == "BftReplicaDown"
            and a["labels"].get("instance") == target
            and a["state"] == state
        ]

    assert not down_alerts(await alerts(url), "firing")
    assert not down_alerts(await alerts(url), "pending")
    await lc.kill(3)

    async def firing() -> list[dict[str, Any]]:
        return down_alerts(await alerts(url), "firing")

    [alert] = await wait_for(firing, 20, f"BftReplicaDown firing for {target}", 0.5)
    assert alert["labels"]["severity"] == "critical"
    assert target in alert["annotations"]["summary"]
