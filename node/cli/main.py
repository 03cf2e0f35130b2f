"""The `bft-node` command line: parses arguments and calls the layers below.

Every user mistake (bad config, unknown id, port in use, missing key, unreadable data
dir) ends as one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from node.config import ConfigError
from node.errors import UserError, only_of

__all__ = ["UserError", "main"]


def _fault_arg(text: str) -> str:
    from node.shell.fault_modes import parse_fault

    try:
        parse_fault(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _indexed_fault(text: str) -> tuple[int, str]:
    idx, sep, mode = text.partition(":")
    if not sep or not idx.isdigit():
        raise argparse.ArgumentTypeError(f"--fault wants I:MODE (e.g. 2:silent), got {text!r}")
    return int(idx), _fault_arg(mode)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bft-node",
        description="A PBFT replicated key-value store with per-peer circuit breakers.",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_init, _add_run, _add_cluster, _add_client, _add_observers, _add_demo):
        add(sub)
    return p


Subparsers = Any  # argparse's _SubParsersAction


def _add_init(sub: Subparsers) -> None:
    s = sub.add_parser("init", help="write DIR/cluster.toml and keys")
    s.add_argument("dir")
    s.add_argument("--nodes", type=int, default=4)
    hosts = s.add_mutually_exclusive_group()
    hosts.add_argument("--host", default="127.0.0.1", help="every replica's host")
    hosts.add_argument("--hosts", default=None, help="one host per replica: H0,H1,...")
    s.add_argument("--base-port", type=int, default=7000)
    s.add_argument("--http-base-port", type=int, default=9100)


def _add_run(sub: Subparsers) -> None:
    s = sub.add_parser("run", help="run one replica in the foreground")
    s.add_argument("--config", required=True)
    s.add_argument("--id", type=int, required=True)
    s.add_argument("--data", default=None)
    s.add_argument("--fault", type=_fault_arg, default=None)
    s.add_argument("--listen", default=None, help="address to bind (default: the replica's host)")


def _add_cluster(sub: Subparsers) -> None:
    s = sub.add_parser("cluster", help="run a local cluster of child processes")
    csub = s.add_subparsers(dest="cluster_command", required=True, metavar="ACTION")
    c = csub.add_parser("up", help="init if needed, run every replica, stop all on Ctrl-C")
    c.add_argument("dir")
    c.add_argument("--nodes", type=int, default=4)
    c.add_argument("--fault", type=_indexed_fault, action="append", default=[])
    for name, text in (("kill", "SIGKILL replica I"), ("revive", "start replica I again")):
        c = csub.add_parser(name, help=text)
        c.add_argument("dir")
        c.add_argument("id", type=int)


def _add_client(sub: Subparsers) -> None:
    s = sub.add_parser("client", help="one put or get through consensus")
    s.add_argument("--config", required=True)
    s.add_argument("--timeout", type=float, default=30.0, help="give up after S seconds")
    csub = s.add_subparsers(dest="op", required=True, metavar="OP")
    c = csub.add_parser("put")
    c.add_argument("key")
    c.add_argument("value")
    c = csub.add_parser("get")
    c.add_argument("key")


def _add_observers(sub: Subparsers) -> None:
    s = sub.add_parser(
        "load",
        help="closed-loop (or --rate: open-loop) load; prints ops/s, latency and CPU/op",
    )
    s.add_argument("--config", required=True)
    s.add_argument("--clients", type=int, default=8, help="client sessions (default: 8)")
    s.add_argument("--duration", type=float, default=10.0, help="seconds (default: 10)")
    s.add_argument(
        "--rate",
        type=float,
        default=None,
        metavar="R",
        help="open loop: R requests/s on a fixed schedule, latency from each scheduled "
        "moment (default: closed loop)",
    )
    s.add_argument(
        "--read-ratio",
        type=float,
        default=0.0,
        metavar="P",
        help="share of the operations that are gets, 0 to 1 (default: 0, all puts)",
    )
    s.add_argument("--json", action="store_true", help="print one JSON object last")

    s = sub.add_parser("status", help="every replica's /status as one table")
    s.add_argument("--config", required=True)
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("watch", help="live terminal dashboard")
    s.add_argument("--config", required=True)


def _add_demo(sub: Subparsers) -> None:
    s = sub.add_parser("demo", help="cluster + load + chaos + dashboard, then a summary")
    s.add_argument("--nodes", type=int, default=4)
    s.add_argument("--duration", type=float, default=60.0)
    s.add_argument("--dir", default=None, help="cluster dir (default: a fresh temp dir)")
    s.add_argument("--no-watch", action="store_true", help="print progress lines instead")
    s.add_argument("--base-port", type=int, default=7000)
    s.add_argument("--http-base-port", type=int, default=9100)
    s.add_argument("--json", action="store_true", help="print the summary as a JSON line too")


# command -> "module:function"; each function takes the parsed namespace and returns an
# exit code. Imported lazily so `bft-node --help` stays fast.
COMMANDS: dict[str, str] = {
    "init": "node.cli.commands:cmd_init",
    "run": "node.cli.commands:cmd_run",
    "cluster up": "node.cli.cluster.up:cmd_up",
    "cluster kill": "node.cli.cluster.up:cmd_kill",
    "cluster revive": "node.cli.cluster.up:cmd_revive",
    "client": "node.cli.commands:cmd_client",
    "load": "node.cli.load_command:cmd_load",
    "status": "node.cli.cluster.status:cmd_status",
    "watch": "node.cli.cluster.watch:cmd_watch",
    "demo": "node.cli.cluster.demo:cmd_demo",
}


def _resolve(args: argparse.Namespace) -> Callable[[argparse.Namespace], int]:
    key = args.command
    if key == "cluster":
        key = f"cluster {args.cluster_command}"
    module, _, func = COMMANDS[key].partition(":")
    return getattr(importlib.import_module(module), func)


def main(argv: Sequence[str] | None = None) -> Any:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    try:
        return _resolve(args)(args) or 0
    except (ConfigError, UserError) as exc:
        print(f"bft-node: error: {exc}", file=sys.stderr)
        return 2
    except BaseExceptionGroup as group:
        # A user mistake raised inside a nursery arrives wrapped; show it as one line.
        mistake = only_of(group, (ConfigError, UserError))
        if mistake is not None:
            print(f"bft-node: error: {mistake}", file=sys.stderr)
            return 2
        if only_of(group, KeyboardInterrupt) is not None:
            return 130
        raise
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
