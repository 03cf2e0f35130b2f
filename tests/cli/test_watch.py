"""`watch` and `status`: snapshot diffs -> events, the rendered dashboard, and the poll loop
against real HTTP servers on 127.0.0.1 (the replica's own /status server, port 0)."""

from __future__ import annotations

import io
import json

import trio
from rich.console import Console
from rich.live import Live

from node.cli.cluster.fetch import Endpoint, FetchError, fetch_json
from node.cli.cluster.status import collect, status_table
from node.cli.cluster.watch import (
    Event,
    Watcher,
    circuit_cell,
    render,
    run_watch,
)
from node.observability.http import serve_http
from tests.cli.watch_helpers import down, entry, healthy_cluster, kinds, peer, rendered

# ------------------------------------------------------------ rendering


def test_render_shows_replicas_grid_and_newest_event_first():
    snap = healthy_cluster()
    snap[0]["peers"]["3"] = peer("open", timeout_ms=250.0, queued=17, trips=2)
    snap[1]["peers"]["3"] = peer("half_open", timeout_ms=3.25, queued=4, trips=1)
    snap[3]["fault"] = "delay:200"
    snap[2] = down(2)
    events = [Event(1.0, "circuit_open", "older event"), Event(2.5, "unreachable", "newer event")]
    text = rendered(render(snap, events, now=3.0))
    assert "reachable 3/4" in text and "view 0 primary 0" in text
    assert "primary" in text and "backup of 0" in text
    assert "DOWN" in text and "connection refused" in text
    assert "delay:200" in text
    assert "open" in text and "250ms q17 t2" in text
    assert "half-open" in text and "3.2ms q4 t1" in text
    assert "12ms q0 t0" in text  # closed peers still show timeout, queue, trips
    assert text.index("newer event") < text.index("older event")
    assert "+2.5s" in text


def test_circuit_cells_are_coloured_by_state():
    assert circuit_cell(peer("closed")).style == "green"
    assert circuit_cell(peer("half_open")).style == "yellow"
    assert circuit_cell(peer("open")).style == "bold red"
    console = Console(
        record=True,
        width=40,
        force_terminal=True,
        color_system="standard",
        file=io.StringIO(),
    )
    console.print(circuit_cell(peer("open")))
    assert "\x1b[1;31mopen" in console.export_text(styles=True)


def test_event_list_is_bounded_on_screen():
    events = [Event(float(i), "circuit_open", f"event number {i}") for i in range(40)]
    text = rendered(render(healthy_cluster(), events, now=50.0, shown_events=5))
    assert "event number 39" in text and "event number 35" in text
    assert "event number 34" not in text


def test_status_table_lists_every_replica():
    snap = healthy_cluster()
    snap[1] = down(1)
    snap[2]["peers"]["3"] = peer("open")
    text = rendered(status_table(snap))
    for rid in range(4):
        assert f"│ {rid} │" in text or f"┃ {rid} ┃" in text or f" {rid} " in text
    assert "0 (me)" in text and "DOWN" in text and "open: 3" in text and "2 closed" in text


# ------------------------------------------------------------ the loop, over real HTTP


async def _serve(nursery, docs: dict[int, object]) -> list[Endpoint]:
    """One real replica HTTP server (node.observability.http) per id, serving docs[id]."""
    eps = []
    for rid in sorted(docs):

        def handler(rid=rid):
            doc = docs[rid]
            if isinstance(doc, bytes):
                return 200, "application/json", doc
            return 200, "application/json", json.dumps(doc).encode()

        port = await nursery.start(
            serve_http,
            "127.0.0.1",
            0,
            {"/status": handler, "/healthz": lambda: (200, "text/plain", b"ok")},
        )
        eps.append(Endpoint(rid, "127.0.0.1", port))
    return eps


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_collect_marks_unreachable_and_bad_replicas():
    docs = {i: {k: v for k, v in entry(i).items() if k != "reachable"} for i in range(3)}
    docs[2] = b"{not json"
    async with trio.open_nursery() as nursery:
        eps = await _serve(nursery, docs)
        eps.append(Endpoint(3, "127.0.0.1", _closed_port()))
        entries = await collect(eps, timeout=1.0)
        nursery.cancel_scope.cancel()
    assert [e["reachable"] for e in entries] == [True, True, False, False]
    assert entries[0]["peers"]["1"]["circuit"] == "closed"
    assert entries[2]["error"].startswith("not JSON")
    assert entries[3]["error"] == "connection refused"
    assert entries[3]["url"].endswith("/status")


async def test_fetch_json_reports_http_errors():
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_http, "127.0.0.1", 0, {})
        try:
            await fetch_json(f"http://127.0.0.1:{port}/status", timeout=1.0)
        except FetchError as exc:
            assert str(exc) == "HTTP 404"
        else:
            raise AssertionError("404 not reported")
        nursery.cancel_scope.cancel()


async def test_watcher_turns_real_status_changes_into_events_and_a_live_view():
    docs = {i: {k: v for k, v in entry(i).items() if k != "reachable"} for i in range(4)}
    async with trio.open_nursery() as nursery:
        eps = await _serve(nursery, docs)
        watcher = Watcher(eps, fetch_timeout=1.0, max_events=3)
        assert await watcher.poll() == []
        docs[1]["peers"]["3"] = peer("open", trips=1)
        new = await watcher.poll()
        assert [(e.kind, e.replica, e.peer) for e in new] == [("circuit_open", 1, "3")]
        for i in range(4):
            docs[i]["view"], docs[i]["primary"] = 1, 1
        assert kinds(await watcher.poll()) == ["view_change"]
        text = rendered(watcher.renderable())
        assert "view 1 primary 1" in text and "circuit opened" in text

        # the loop: bounded by duration, draws into a Live, keeps at most max_events
        console = Console(record=True, width=160, color_system=None, file=io.StringIO())
        with Live(console=console, auto_refresh=False) as live:

            async def flap():
                for k in range(6):
                    docs[2]["peers"]["0"] = peer("open" if k % 2 == 0 else "closed")
                    await trio.sleep(0.12)

            nursery.start_soon(flap)
            start = trio.current_time()
            await run_watch(watcher, live, interval=0.05, duration=1.0)
            assert 0.9 < trio.current_time() - start < 2.0
        assert len(watcher.events) == 3  # bounded
        assert "replica 2 → peer 0" in console.export_text()
        nursery.cancel_scope.cancel()


# ------------------------------------------------------------ the commands, as processes


def _config_for(tmp_path, eps: list[Endpoint]) -> str:
    """A real cluster.toml whose replicas' HTTP ports are the given servers'."""
    import tomllib

    import tomli_w

    from node.config import init_cluster, load_config

    path = init_cluster(tmp_path / "c", len(eps))
    doc = tomllib.loads(path.read_text())
    for rep, ep in zip(doc["replicas"], eps, strict=True):
        rep["http_port"] = ep.http_port
    path.write_text(tomli_w.dumps(doc))
    load_config(path)
    return str(path)


async def _bft_node(*args: str, timeout: float = 30.0):
    import subprocess
    import sys

    with trio.fail_after(timeout):
        return await trio.run_process(
            [sys.executable, "-m", "node", *args],
            check=False,
            capture_stdout=True,
            capture_stderr=True,
            stdin=subprocess.DEVNULL,
        )


async def test_status_command_prints_one_json_list_and_exit_codes(tmp_path):
    docs = {i: {k: v for k, v in entry(i).items() if k != "reachable"} for i in range(3)}
    async with trio.open_nursery() as nursery:
        eps = await _serve(nursery, docs)
        eps.append(Endpoint(3, "127.0.0.1", _closed_port()))
        cfg = _config_for(tmp_path, eps)
        res = await _bft_node("status", "--config", cfg, "--json")
        assert res.returncode == 0, res.stderr
        out = json.loads(res.stdout)
        assert [(e["id"], e["reachable"]) for e in out] == [
            (0, True),
            (1, True),
            (2, True),
            (3, False),
        ]
        assert out[0]["peers"]["1"]["timeout_ms"] == 12.5
        res = await _bft_node("status", "--config", cfg)
        assert res.returncode == 0
        assert "DOWN" in res.stdout.decode() and "connection refused" in res.stdout.decode()
        nursery.cancel_scope.cancel()
    # nobody answers: exit 1, still one entry per replica
    res = await _bft_node("status", "--config", cfg, "--json")
    assert res.returncode == 1
    assert [e["reachable"] for e in json.loads(res.stdout)] == [False] * 4


async def test_watch_command_runs_until_ctrl_c_and_exits_cleanly(tmp_path):
    import signal
    import subprocess
    import sys

    docs = {i: {k: v for k, v in entry(i).items() if k != "reachable"} for i in range(4)}
    async with trio.open_nursery() as nursery:
        eps = await _serve(nursery, docs)
        cfg = _config_for(tmp_path, eps)
        out = tmp_path / "watch.out"
        with out.open("wb") as fh:
            proc = await trio.lowlevel.open_process(
                [sys.executable, "-m", "node", "watch", "--config", cfg],
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        await trio.sleep(1.5)
        docs[0]["peers"]["2"] = peer("open", trips=1)
        await trio.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        with trio.fail_after(10):
            await proc.wait()
        nursery.cancel_scope.cancel()
    text = out.read_text()
    assert proc.returncode == 0, text
    assert "Traceback" not in text
    assert "reachable 4/4" in text and "replica 0 → peer 2: circuit opened" in text
