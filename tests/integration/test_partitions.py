"""Network partitions between real replicas, in a network namespace the test creates
(`unshare --net`; see `netns_partition.py` for how links are cut). A backup cut off for
longer than several checkpoint intervals is back at the head within seconds of the heal,
and a primary cut off alone is replaced while writes go on. Needs root."""

from __future__ import annotations

import json
import os
import sys

import pytest
import trio

from node.cli.cluster.demo import DEMO_OVERRIDES
from tests.integration.infra import ROOT, ensure_packages, loud_skip

pytestmark = pytest.mark.slow

CUT_S = 8.0
HEAD_WITHIN_S = 5.0
VIEW_CHANGE_S = DEMO_OVERRIDES["consensus"]["view_change_timeout_s"]


async def test_partitions_heal_and_a_cut_off_primary_is_replaced() -> None:
    if os.geteuid() != 0:
        loud_skip("network namespaces and iptables need root")
    ensure_packages({"iptables": "iptables", "unshare": "util-linux", "setpriv": "util-linux"})
    cmd = ["unshare", "--net", "--", sys.executable, "-m", "tests.integration.netns_partition"]
    cmd += ["--cut-s", str(CUT_S), "--primary-cut-s", "5"]
    with trio.fail_after(240):
        proc = await trio.run_process(
            cmd, cwd=ROOT, capture_stdout=True, capture_stderr=True, check=False
        )
    if (
        proc.returncode != 0
        and b"unshare" in proc.stderr
        and b"Operation not permitted" in proc.stderr
    ):
        loud_skip("unshare --net is not permitted here")
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    result = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    # the cuts were real: the rules dropped traffic in both directions
    assert result["backup_cut_dropped_packets"] > 0 and result["primary_cut_dropped_packets"] > 0
    b = result["backup_to_head_s"]
    assert b is not None and b <= HEAD_WITHIN_S, result
    assert result["new_view_s"] is not None, result
    resumed = result["commits_resumed_s"]
    assert resumed is not None and resumed <= VIEW_CHANGE_S + 2.0, result
    assert result["primary_to_head_s"] is not None and result["primary_to_head_s"] <= HEAD_WITHIN_S
    assert result["converged"], result
    assert result["primary_degraded_events"] == 1 == result["primary_recovered_events"], result
    assert result["acked"] > 100 and result["lost"] == [], result
