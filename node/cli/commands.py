"""The `init` and `run` commands: argument handling around the layers.

Each `cmd_*` takes the parsed argparse namespace and returns an exit code; user mistakes
raise `UserError`/`ConfigError` and become one line on stderr (see `node.cli.main`).
"""

from __future__ import annotations

import argparse
import errno
import os
import socket
from pathlib import Path

import trio

from node.config import init_cluster, load_config, load_private_key
from node.errors import UserError, leaves
from node.shell.fault_modes import parse_fault


def cmd_init(args: argparse.Namespace) -> int:
    if args.k8s:
        from node.cli.k8s import init_kubernetes

        if args.hosts or args.host != "127.0.0.1":
            raise UserError("--k8s names the hosts itself (the pods' DNS names): drop --host(s)")
        out = init_kubernetes(
            args.dir, args.nodes, args.k8s, args.tls, args.base_port, args.http_base_port
        )
        print(f"wrote {Path(args.dir) / 'cluster.toml'}, keys and {out}/ ({args.nodes} replicas)")
        print(f"next: build the image (docs/ops.md), then kubectl apply -k {out}")
        return 0
    path = init_cluster(
        args.dir,
        nodes=args.nodes,
        host=args.host,
        base_port=args.base_port,
        http_base_port=args.http_base_port,
        hosts=args.hosts.split(",") if args.hosts else None,
        tls=args.tls,
    )
    what = "keys, a CA and TLS certificates" if args.tls else "keys"
    print(f"wrote {path} and {what} in {path.parent / 'keys'} ({args.nodes} replicas)")
    return 0


def replica_of_pod(cfg) -> int:
    """The id of the replica whose host's first DNS label is this pod's name
    ($POD_NAME, else the host name): how a Kubernetes pod finds its id."""
    name = os.environ.get("POD_NAME") or socket.gethostname()
    for r in cfg.replicas:
        if r.host.split(".")[0] == name:
            return r.id
    hosts = ", ".join(r.host for r in cfg.replicas)
    raise UserError(f"--id auto: no replica of {cfg.path} has a host named {name!r} ({hosts})")


def cmd_run(args: argparse.Namespace) -> int:
    from node.shell.lifetime import run_until_signal
    from node.shell.replica import Replica
    from node.storage import StorageError

    cfg = load_config(args.config)
    if args.id == "auto":
        args.id = replica_of_pod(cfg)
    info = cfg.replica(args.id)
    key = load_private_key(cfg.replica_key_path(args.id))
    fault = parse_fault(args.fault)
    data_dir = Path(args.data) if args.data else cfg.default_data_dir(args.id)
    try:
        replica = Replica(cfg, args.id, key, data_dir, fault, listen_host=args.listen)
    except StorageError as exc:
        raise UserError(str(exc)) from None
    try:
        trio.run(run_until_signal, replica)
    except* OSError as group:
        exc = next(leaves(group))
        if getattr(exc, "errno", None) == errno.EADDRINUSE:
            raise UserError(
                f"port in use: replica {args.id} cannot listen on {info.host}:{info.port} "
                f"or HTTP {info.http_port} (another replica running?)"
            ) from None
        raise UserError(f"replica {args.id} failed to start: {exc}") from None
    return 0
