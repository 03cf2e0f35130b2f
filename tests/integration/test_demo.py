"""`bft-node demo` end to end with a short duration: it must recover and say so."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.integration.harness import free_base_ports, no_traceback, parse_json_line

pytestmark = pytest.mark.slow


def test_demo_recovers_and_exits_zero(tmp_path):
    base, http_base = free_base_ports(4)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "node",
            "demo",
            "--duration",
            "20",
            "--dir",
            str(tmp_path / "d"),
            "--base-port",
            str(base),
            "--http-base-port",
            str(http_base),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert no_traceback(proc.stderr), proc.stderr[-3000:]
    assert proc.returncode == 0, proc.stdout[-3000:]
    result = parse_json_line(proc.stdout)
    assert result["recovered"] and result["digests_agree"]
    kinds = [s["step"].split(" (")[0] for s in result["steps"]]
    assert kinds == ["kill backup", "revive backup", "kill primary", "revive primary"]
    kill_backup, revive_backup, kill_primary, revive_primary = result["steps"]
    assert kill_backup["circuit_open_s"] is not None
    assert revive_backup["circuit_closed_s"] is not None
    assert kill_primary["new_view_commit_s"] is not None
    assert revive_primary["circuit_closed_s"] is not None
    assert result["load"]["ops"] > 0
    assert "recovered from every step" in proc.stdout
