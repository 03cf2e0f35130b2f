"""The compose `init` service: write the cluster config and keys once, into a volume.

If $CLUSTER_DIR/cluster.toml exists it is kept (a restart never rotates keys). Otherwise
this writes a fresh cluster with `node.config.init_cluster`, then gives each replica its
own host ($REPLICA_HOST, a pattern where {i} is the replica id: `replica{i}` on the
compose network, `127.0.0.1` under host networking) and, unless DEMO_TIMEOUTS=0, the
shortened timeouts of a demo so breakers visibly open and close within a minute.

Every run (re)writes $CLUSTER_DIR/host.toml: the same cluster as seen from the Docker
host, every replica on 127.0.0.1 at its published HTTP port, for
`bft-node status/watch --config host.toml` outside the containers.

Environment: CLUSTER_DIR (/cluster), NODES (4), REPLICA_HOST (replica{i}),
BASE_PORT (7000), HTTP_BASE_PORT (9100), DEMO_TIMEOUTS (1).
"""

import os
import sys
import tomllib
from pathlib import Path

import tomli_w

from node.config import ConfigError, init_cluster, load_config

# Shortened timeouts for a demo cluster (the contract's defaults suit production).
DEMO_OVERRIDES = {
    "cluster": {"request_timeout_s": 2.0},
    "breaker": {"open_timeout_s": 5.0, "max_open_timeout_s": 30.0, "request_timeout_s": 2.0},
    "timeout": {"min_s": 0.05, "max_s": 2.0},
    "consensus": {"view_change_timeout_s": 2.0},
}


HEADER = (
    "# bft-node cluster config, written by the compose `init` service (deploy/docker/).\n"
    "# Public: private keys live in keys/ (mode 0600).\n"
)


def _write(path: Path, doc: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(HEADER + tomli_w.dumps(doc), encoding="utf-8")
    os.replace(tmp, path)
    load_config(path)  # never leave a config the replicas would refuse


def main() -> int:
    d = Path(os.environ.get("CLUSTER_DIR", "/cluster"))
    cfg_path = d / "cluster.toml"
    if cfg_path.exists():
        print(f"init: keeping existing {cfg_path}")
    else:
        nodes = int(os.environ.get("NODES", "4"))
        demo = os.environ.get("DEMO_TIMEOUTS", "1") not in ("0", "", "false", "no")
        init_cluster(
            d,
            nodes=nodes,
            base_port=int(os.environ.get("BASE_PORT", "7000")),
            http_base_port=int(os.environ.get("HTTP_BASE_PORT", "9100")),
            overrides=DEMO_OVERRIDES if demo else None,
        )
        pattern = os.environ.get("REPLICA_HOST", "replica{i}")
        doc = tomllib.loads(cfg_path.read_text(encoding="utf-8"))
        for rep in doc["replicas"]:
            rep["host"] = pattern.format(i=rep["id"])
        _write(cfg_path, doc)
        print(f"init: wrote {cfg_path} ({nodes} replicas, demo timeouts {'on' if demo else 'off'})")
    doc = tomllib.loads(cfg_path.read_text(encoding="utf-8"))
    for rep in doc["replicas"]:
        rep["host"] = "127.0.0.1"
    _write(d / "host.toml", doc)
    print(f"init: wrote {d / 'host.toml'} (replicas on 127.0.0.1, for use from the host)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ConfigError, OSError, ValueError, KeyError) as exc:
        print(f"init: error: {exc}", file=sys.stderr)
        sys.exit(1)
