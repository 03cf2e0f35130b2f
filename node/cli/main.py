"""The `bft-node` command line: parses arguments and calls the layers below.

Every user mistake (bad config, unknown id, port in use, missing key, unreadable data
dir) ends as one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
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


def _replica_id_arg(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--id wants a replica id or auto, got {text!r}") from None


def _indexed_fault(text: str) -> tuple[int, str]:
    idx, sep, mode = text.partition(":")
    if not sep or not idx.isdigit():
        raise argparse.ArgumentTypeError(f"--fault wants I:MODE (e.g. 2:silent), got {text!r}")
    return int(idx), _fault_arg(mode)


class HELP(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's default shown in --help, unless it has none (its help says)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or isinstance(action.default, bool) or action.dest == "config":
            return action.help
        return super()._get_help_string(action)


CONFIG_ENV = "BFT_CONFIG"


def _version() -> str:
    try:
        return metadata.version("bft-node")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _add_config(s: argparse.ArgumentParser) -> None:
    """--config, defaulting to $BFT_CONFIG; required when that is not set."""
    env = os.environ.get(CONFIG_ENV)
    s.add_argument(
        "--config",
        required=not env,
        default=env,
        metavar="PATH",
        help=f"the cluster's cluster.toml (default: ${CONFIG_ENV}"
        + (f", now {env})" if env else ", unset now)"),
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bft-node",
        description="A PBFT replicated key-value store with per-peer circuit breakers.",
        epilog=f"--config defaults to ${CONFIG_ENV} in every command. "
        "See README.md and docs/ for more.",
    )
    p.add_argument("--version", action="version", version=f"bft-node {_version()}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_init, _add_run, _add_cluster, _add_client, _add_observers, _add_demo):
        add(sub)
    return p


Subparsers = Any  # argparse's _SubParsersAction


def _add_init(sub: Subparsers) -> None:
    s = sub.add_parser("init", help="write DIR/cluster.toml and keys", formatter_class=HELP)
    s.add_argument("dir", help="the cluster directory to create")
    s.add_argument("--nodes", type=int, default=4, help="replicas (n = 3f + 1)")
    hosts = s.add_mutually_exclusive_group()
    hosts.add_argument("--host", default="127.0.0.1", help="every replica's host")
    hosts.add_argument("--hosts", default=None, help="one host per replica: H0,H1,...")
    s.add_argument("--base-port", type=int, default=7000, help="replica I's peer port is P+I")
    s.add_argument("--http-base-port", type=int, default=9100, help="replica I's HTTP port is Q+I")
    s.add_argument(
        "--tls",
        action="store_true",
        help="also write a cluster CA and a certificate per replica and client, and set "
        "[transport] tls = true (use it across hosts)",
    )
    s.add_argument(
        "--k8s",
        metavar="NAMESPACE",
        default=None,
        help="for Kubernetes: replicas at their in-cluster DNS names in NAMESPACE, and "
        "DIR/kubernetes/ to `kubectl apply -k` (see docs/ops.md)",
    )


def _fault_help() -> str:
    from node.shell.fault_modes import DESCRIPTIONS

    lines = [f"  {mode:<20} {text}" for mode, text in DESCRIPTIONS.items()]
    return "fault modes (--fault MODE):\n" + "\n".join(lines)


class _RunHelp(argparse.RawDescriptionHelpFormatter, HELP):
    """Defaults shown, and the fault-mode table kept as written."""


def _add_run(sub: Subparsers) -> None:
    s = sub.add_parser(
        "run",
        help="run one replica in the foreground",
        description="Run replica --id until SIGINT/SIGTERM; a restart on the same data dir "
        "recovers its state.",
        epilog=_fault_help(),
        formatter_class=_RunHelp,
    )
    _add_config(s)
    s.add_argument(
        "--id",
        type=_replica_id_arg,
        required=True,
        help="which replica of the config, or `auto`: the replica whose host's first DNS "
        "label is $POD_NAME (else this host's name), as in a Kubernetes pod",
    )
    s.add_argument(
        "--data", default=None, help="data dir (default: DIR/data/replica-I beside the config)"
    )
    s.add_argument(
        "--fault", type=_fault_arg, default=None, metavar="MODE", help="misbehave (see below)"
    )
    s.add_argument("--listen", default=None, help="address to bind (default: the replica's host)")


def _add_cluster(sub: Subparsers) -> None:
    s = sub.add_parser("cluster", help="run a local cluster of child processes")
    csub = s.add_subparsers(dest="cluster_command", required=True, metavar="ACTION")
    c = csub.add_parser(
        "up", help="init if needed, run every replica, stop all on Ctrl-C", formatter_class=HELP
    )
    c.add_argument("dir", help="the cluster directory (made if it has no cluster.toml)")
    c.add_argument("--nodes", type=int, default=4, help="replicas, when DIR is new")
    c.add_argument(
        "--fault",
        type=_indexed_fault,
        action="append",
        default=[],
        metavar="I:MODE",
        help="run replica I with fault MODE (see `bft-node run --help`); repeatable",
    )
    for name, text in (("kill", "SIGKILL replica I"), ("revive", "start replica I again")):
        c = csub.add_parser(name, help=text)
        c.add_argument("dir", help="the directory of a running `cluster up`")
        c.add_argument("id", type=int, help="the replica id")


def _add_client(sub: Subparsers) -> None:
    from node.cli.client_command import add_parser

    add_parser(sub, _add_config, HELP)


def _add_observers(sub: Subparsers) -> None:
    s = sub.add_parser(
        "load",
        help="closed-loop (or --rate: open-loop) load; prints ops/s, latency and CPU/op",
        formatter_class=HELP,
    )
    _add_config(s)
    s.add_argument("--clients", type=int, default=8, help="client sessions")
    s.add_argument("--duration", type=float, default=10.0, help="seconds")
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
        help="share of the operations that are gets, 0 to 1 (0: all puts)",
    )
    s.add_argument("--json", action="store_true", help="print one JSON object last")

    s = sub.add_parser("status", help="every replica's /status as one table", formatter_class=HELP)
    _add_config(s)
    s.add_argument("--json", action="store_true", help="one JSON list instead of a table")

    s = sub.add_parser("watch", help="live terminal dashboard", formatter_class=HELP)
    _add_config(s)


def _add_demo(sub: Subparsers) -> None:
    s = sub.add_parser(
        "demo", help="cluster + load + chaos + dashboard, then a summary", formatter_class=HELP
    )
    s.add_argument("--nodes", type=int, default=4, help="replicas")
    s.add_argument("--duration", type=float, default=60.0, help="seconds of load and chaos")
    s.add_argument("--dir", default=None, help="cluster dir (default: a fresh temp dir)")
    s.add_argument("--no-watch", action="store_true", help="print progress lines instead")
    s.add_argument("--base-port", type=int, default=7000, help="replica I's peer port is P+I")
    s.add_argument("--http-base-port", type=int, default=9100, help="replica I's HTTP port is Q+I")
    s.add_argument("--json", action="store_true", help="print the summary as a JSON line too")


# command -> "module:function"; each function takes the parsed namespace and returns an
# exit code. Imported lazily so `bft-node --help` stays fast.
COMMANDS: dict[str, str] = {
    "init": "node.cli.commands:cmd_init",
    "run": "node.cli.commands:cmd_run",
    "cluster up": "node.cli.cluster.up:cmd_up",
    "cluster kill": "node.cli.cluster.up:cmd_kill",
    "cluster revive": "node.cli.cluster.up:cmd_revive",
    "client": "node.cli.client_command:cmd_client",
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
