"""What `benches/recovery.py` reports: its targets (met or not, with the measured figure),
the table of steps, the markdown page and the throughput-over-time plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from common import RESULTS, markdown_table, pyplot

from node.cli.cluster.demo import DEMO_OVERRIDES

WS_PING_RTT_S = 0.001  # loopback WebSocket ping, well above the ~0.2 ms measured


def targets(out: dict[str, Any]) -> list[dict[str, Any]]:
    b = DEMO_OVERRIDES["breaker"]
    vc = DEMO_OVERRIDES["consensus"]["view_change_timeout_s"]
    steps = out["steps"]
    result = []

    def first(label: str, key: str) -> float | None:
        for s in steps:
            if s["step"].startswith(label) and s[key] is not None:
                return s[key]
        return None

    opened = first("kill backup", "circuit_open_s")
    result.append(
        {
            "target": "circuits open within 2 s of a backup's death",
            "measured": f"{opened} s" if opened is not None else "never",
            "met": opened is not None and opened <= 2.0,
        }
    )
    bound = b["open_timeout_s"] + 2 * WS_PING_RTT_S
    for label in ("revive backup", "revive primary"):
        closed = first(label, "circuit_closed_s")
        result.append(
            {
                "target": f"circuits closed within open timeout + 2 RTT ({bound:.3f} s) "
                f"of the return ({label})",
                "measured": (
                    f"{closed} s (open timeout backs off {b['open_timeout_s']:g} s -> "
                    f"{b['max_open_timeout_s']:g} s while the peer stays down)"
                    if closed is not None
                    else "never"
                ),
                "met": closed is not None and closed <= bound,
            }
        )
    commit = first("kill primary", "new_view_commit_s")
    result.append(
        {
            "target": f"first commit in a new view within {vc:g} + 0.5 s of the primary's death",
            "measured": f"{commit} s" if commit is not None else "never",
            "met": commit is not None and commit <= vc + 0.5,
        }
    )
    return result


HEADERS = ("step", "at s", "circuits open s", "circuits closed s", "new-view commit s")
HEADERS += ("ops/s 3 s before", "ops/s 3 s after")


def rows(out: dict[str, Any]) -> list[list[Any]]:
    return [
        [
            s["step"],
            s["at_s"],
            s["circuit_open_s"],
            s["circuit_closed_s"],
            s["new_view_commit_s"],
            s["ops_per_s_3s_before"],
            s["ops_per_s_3s_after"],
        ]
        for s in out["steps"]
    ]


def markdown(out: dict[str, Any]) -> str:
    c = out["catch_up"]
    load = out["load"]
    return "\n".join(
        [
            "# Recovery",
            "",
            f"4 replicas with the demo's settings, {out['clients']} closed-loop clients "
            f"throughout ({load['ops']:,} requests, {load['ops_per_s']:,.1f} ops/s on "
            f"average, p50 {load['p50_ms']:.1f} ms, p99 {load['p99_ms']:.1f} ms).",
            "",
            markdown_table(HEADERS, rows(out)),
            "",
            f"Catch-up: replica {c['replica']} was down {c['down_for_s']} s while the others "
            f"executed {c['missed_requests']:,} requests (up to seq {c['target_seq']:,}); "
            f"after its revival it reached the stable checkpoint {c['stable_at_revive']:,} "
            f"(state transfer) in {c['state_transfer_s']} s and seq {c['target_seq']:,} in "
            f"{c['caught_up_s']} s: **{c['catch_up_requests_per_s'] or 0:,} requests/s** "
            "caught up.",
            "",
            markdown_table(
                ("target", "measured", "met"),
                [
                    [t["target"], t["measured"], "yes" if t["met"] else "**no**"]
                    for t in out["targets"]
                ],
            ),
        ]
    )


def plot(out: dict[str, Any]) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 4.5))
    xs = [p[0] for p in out["throughput"]]
    ys = [p[1] for p in out["throughput"]]
    ax.plot(xs, ys, color="tab:blue", linewidth=1.2, label="committed ops/s (0.5 s buckets)")
    top = max(ys, default=1.0) or 1.0
    for e in out["events"]:
        color = "tab:red" if e["event"].startswith("kill") else "tab:green"
        ax.axvline(e["at_s"], color=color, linestyle="--", linewidth=1)
        ax.text(
            e["at_s"], top * 1.02, e["event"], rotation=90, fontsize=7, va="bottom", color=color
        )
    ax.set_ylim(0, top * 1.35)
    ax.set_xlabel("seconds")
    ax.set_ylabel("committed ops/s")
    ax.set_title("Throughput around kills (red) and revivals (green)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    path = RESULTS / "recovery_timeline.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
