"""Transport benchmark: PeerLink + Listener against raw trio-websocket, two processes.

Measures, over 127.0.0.1 between this process and a child Python process (the receiver):

- one-way throughput: N pipelined 200-byte messages, timed until the receiver reports
  that the last one arrived (messages/s);
- round trips: a 200-byte message sent and echoed back, one at a time (round trips/s and
  RTT percentiles). Through the transport the echo returns on the child's own PeerLink to
  our listener (the path a replica's reply takes); through raw trio-websocket it returns on
  the same connection;
- WebSocket ping RTT through ``PeerLink.ping``.

"raw" is trio-websocket with its defaults; "raw-tuned" uses the same receive buffer and
message queue as the transport's listener, to show what the transport itself costs.
Bounded: fixed counts, best of ``--rounds``, and a hard time limit.

    python benches/transport.py [--messages 50000] [--round-trips 2000] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import trio
import trio_websocket

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from transport import Identity, LinkConfig, Listener, ListenerConfig, PeerLink  # noqa: E402

SIZE = 200
DATA, LAST, ECHO, DONE = b"d", b"f", b"e", b"D"
TIME_LIMIT_S = 120.0
RESULTS = Path(__file__).resolve().parent / "results" / "transport.json"
TUNED = ListenerConfig()


def frame(kind: bytes) -> bytes:
    return kind + b"x" * (SIZE - 1)


def done_report(count: int, cpu_began: float) -> bytes:
    """The receiver's answer to the last message: how many arrived, CPU seconds spent."""
    return DONE + f"{count} {time.process_time() - cpu_began:.6f}".encode()


def check_done(reply: bytes, n: int) -> float:
    count, cpu = reply[1:].decode().split()
    assert int(count) == n, reply
    return float(cpu) / n


# ---------------------------------------------------------------- child (receiver)


async def raw_handler(request: trio_websocket.WebSocketRequest) -> None:
    """Serve one raw trio-websocket connection: echo, count, and report on the last message."""
    ws = await request.accept()
    n, began = 0, 0.0
    try:
        while True:
            data = await ws.get_message()
            kind = data[:1]
            if kind == ECHO:
                await ws.send_message(data)
            elif kind == LAST:
                await ws.send_message(done_report(n + 1, began))
                n = 0
            else:
                if n == 0:
                    began = time.process_time()
                n += 1
    except trio_websocket.ConnectionClosed:
        pass


async def child_main(parent_port: int, seed_a: bytes, seed_b: bytes) -> None:
    me, parent = Identity("B", seed_b), Identity("A", seed_a)
    back = PeerLink(me, "A", parent.public_key, "127.0.0.1", parent_port)
    count, cpu_began = 0, 0.0

    async def on_peer(_name: str, data: bytes) -> None:
        nonlocal count, cpu_began
        kind = data[:1]
        if kind == ECHO:
            await back.send(data)
        elif kind == LAST:
            await back.send(done_report(count + 1, cpu_began))
            count = 0
        else:
            if count == 0:
                cpu_began = time.process_time()
            count += 1

    listener = Listener(me, peer_keys={"A": parent.public_key}, on_peer_frame=on_peer)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(listener.serve)
        raw = await nursery.start(
            lambda task_status: trio_websocket.serve_websocket(
                raw_handler, "127.0.0.1", 0, None, task_status=task_status
            )
        )
        tuned = await nursery.start(
            lambda task_status: trio_websocket.serve_websocket(
                raw_handler,
                "127.0.0.1",
                0,
                None,
                message_queue_size=TUNED.message_queue_size,
                receive_buffer_size=TUNED.receive_buffer_size,
                task_status=task_status,
            )
        )
        await nursery.start(back.run)
        print(f"READY {port} {raw.port} {tuned.port}", flush=True)
        # Run until the parent closes our stdin.
        stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
        while await stdin.receive_some(1024):
            pass
        nursery.cancel_scope.cancel()


# ---------------------------------------------------------------- parent (sender)


async def read_line(stream: trio.abc.ReceiveStream) -> str:
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = await stream.receive_some(1)
        if not chunk:
            raise RuntimeError("child exited before it was ready")
        buf += chunk
    return buf.decode().strip()


async def bench_transport(link: PeerLink, inbox: trio.MemoryReceiveChannel, n: int, m: int):
    data, last, echo = frame(DATA), frame(LAST), frame(ECHO)
    began, cpu = trio.current_time(), time.process_time()
    for _ in range(n - 1):
        await link.send(data)
    await link.send(last)
    reply = await inbox.receive()
    one_way = n / (trio.current_time() - began)
    cpus = ((time.process_time() - cpu) / n, check_done(reply, n))
    rtts = []
    for _ in range(m):
        t = trio.current_time()
        await link.send(echo)
        await inbox.receive()
        rtts.append(trio.current_time() - t)
    pings = [await link.ping() for _ in range(m // 4)]
    return one_way, rtts, pings, cpus


async def bench_raw(port: int, n: int, m: int):
    data, last, echo = frame(DATA), frame(LAST), frame(ECHO)
    async with trio_websocket.open_websocket("127.0.0.1", port, "/raw", use_ssl=False) as ws:
        began, cpu = trio.current_time(), time.process_time()
        for _ in range(n - 1):
            await ws.send_message(data)
        await ws.send_message(last)
        reply = await ws.get_message()
        one_way = n / (trio.current_time() - began)
        cpus = ((time.process_time() - cpu) / n, check_done(reply, n))
        rtts = []
        for _ in range(m):
            t = trio.current_time()
            await ws.send_message(echo)
            await ws.get_message()
            rtts.append(trio.current_time() - t)
    return one_way, rtts, [], cpus


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def parent_main(args: argparse.Namespace) -> dict:
    seed_a, seed_b = os.urandom(32), os.urandom(32)
    me, child = Identity("A", seed_a), Identity("B", seed_b)
    inbox_send, inbox = trio.open_memory_channel[bytes](10_000)

    async def on_peer(_name: str, data: bytes) -> None:
        inbox_send.send_nowait(data)

    listener = Listener(me, peer_keys={"B": child.public_key}, on_peer_frame=on_peer)
    results: dict = {}
    with trio.fail_after(TIME_LIMIT_S):
        async with trio.open_nursery() as nursery:
            my_port = await nursery.start(listener.serve)
            cmd = [sys.executable, __file__, "--child", str(my_port), seed_a.hex(), seed_b.hex()]
            proc = await trio.lowlevel.open_process(cmd, stdin=-1, stdout=-1)
            try:
                _, port, raw_port, tuned_port = (await read_line(proc.stdout)).split()
                link = PeerLink(
                    me, "B", child.public_key, "127.0.0.1", int(port), config=LinkConfig()
                )
                await nursery.start(link.run)
                with trio.fail_after(10):
                    await link.wait_connected()
                    while "B" not in listener.peers:
                        await trio.sleep(0.01)
                ours, raw, tuned = [], [], []
                for _ in range(args.rounds):
                    ours.append(await bench_transport(link, inbox, args.messages, args.round_trips))
                    raw.append(await bench_raw(int(raw_port), args.messages, args.round_trips))
                    tuned.append(await bench_raw(int(tuned_port), args.messages, args.round_trips))
                results = summarize(args, ours, raw, tuned)
            finally:
                await proc.stdin.aclose()
                with trio.move_on_after(10):
                    await proc.wait()
                proc.kill()
                await proc.wait()
                nursery.cancel_scope.cancel()
    return results


def summarize(args: argparse.Namespace, ours: list, raw: list, tuned: list) -> dict:
    """Best of the rounds for rates and CPU cost (least disturbed by other load)."""

    def rate(runs: list) -> float:
        return max(r[0] for r in runs)

    def trips(runs: list) -> float:
        return max(len(r[1]) / sum(r[1]) for r in runs)

    def rtt(runs: list, q: float) -> float:
        return round(pct([x for r in runs for x in r[1]], q), 3)

    def cpu_us(runs: list, side: int) -> float:
        return round(min(r[3][side] for r in runs) * 1e6, 2)

    out: dict = {
        "message_bytes": SIZE,
        "messages": args.messages,
        "round_trips": args.round_trips,
        "rounds": args.rounds,
    }
    for name, runs in (("transport", ours), ("raw", raw), ("raw_tuned", tuned)):
        out[f"{name}_msgs_per_s"] = round(rate(runs))
        out[f"{name}_round_trips_per_s"] = round(trips(runs))
        out[f"{name}_rtt_p50_ms"] = rtt(runs, 0.5)
        out[f"{name}_rtt_p99_ms"] = rtt(runs, 0.99)
        out[f"{name}_sender_cpu_us_per_msg"] = cpu_us(runs, 0)
        out[f"{name}_receiver_cpu_us_per_msg"] = cpu_us(runs, 1)
    out["one_way_ratio"] = round(rate(ours) / rate(raw), 3)
    out["one_way_ratio_vs_tuned"] = round(rate(ours) / rate(tuned), 3)
    out["round_trip_ratio"] = round(trips(ours) / trips(raw), 3)
    out["ws_ping_rtt_p50_ms"] = round(pct([x for r in ours for x in r[2]], 0.5), 3)
    return out


def print_table(r: dict) -> None:
    head = (
        "path",
        "one-way msg/s",
        "round trips/s",
        "rtt p50 ms",
        "rtt p99 ms",
        "send cpu us",
        "recv cpu us",
    )
    print(f"{head[0]:30}" + "".join(f"{h:>15}" for h in head[1:]))
    for name, label in (
        ("transport", "transport (PeerLink+Listener)"),
        ("raw", "raw trio-websocket"),
        ("raw_tuned", "raw, same buffers"),
    ):
        cells = (
            f"{r[name + '_msgs_per_s']:,}",
            f"{r[name + '_round_trips_per_s']:,}",
            f"{r[name + '_rtt_p50_ms']:.3f}",
            f"{r[name + '_rtt_p99_ms']:.3f}",
            f"{r[name + '_sender_cpu_us_per_msg']:.1f}",
            f"{r[name + '_receiver_cpu_us_per_msg']:.1f}",
        )
        print(f"{label:30}" + "".join(f"{c:>15}" for c in cells))
    print(
        f"one-way throughput transport/raw: {r['one_way_ratio']:.0%} "
        f"(vs raw with the same buffers: {r['one_way_ratio_vs_tuned']:.0%}); "
        f"round trips transport/raw: {r['round_trip_ratio']:.0%}; "
        f"WebSocket ping RTT p50 {r['ws_ping_rtt_p50_ms']:.3f} ms"
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        port, seed_a, seed_b = (
            int(sys.argv[2]),
            bytes.fromhex(sys.argv[3]),
            bytes.fromhex(sys.argv[4]),
        )
        profile = os.environ.get("BENCH_CHILD_PROFILE")
        if profile:  # for looking into the receiver's costs
            import cProfile

            cProfile.runctx(
                "trio.run(child_main, port, seed_a, seed_b)", globals(), locals(), profile
            )
        else:
            trio.run(child_main, port, seed_a, seed_b)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=30_000)
    parser.add_argument("--round-trips", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args()
    results = trio.run(parent_main, args)
    print_table(results)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
