"""Container HEALTHCHECK: exit 0 if what this container serves or uses is up.

Stdlib only. The cluster config is $BFT_CONFIG (default /cluster/cluster.toml).

- a replica ($REPLICA_ID set): its GET /healthz answers 200. The host probed is the one
  the replica binds: $BFT_LISTEN if set (0.0.0.0 is probed on 127.0.0.1), else its host
  in the config;
- any other container (the load generator): a quorum (n - f) of the config's replicas
  answer /healthz, i.e. the cluster it works against can make progress;
- $BFT_HEALTH_URL, if set, is probed as is.
"""

import os
import sys
import tomllib
import urllib.request

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _url(host: str, port: int) -> str:
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"http://{host}:{port}/healthz"


def _ok(url: str) -> bool:
    try:
        with _OPENER.open(url, timeout=2) as resp:
            return resp.status == 200
    except Exception as exc:  # any failure is "unhealthy", with one line for `docker inspect`
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return False


def main() -> int:
    if os.environ.get("BFT_HEALTH_URL"):
        return 0 if _ok(os.environ["BFT_HEALTH_URL"]) else 1
    with open(os.environ.get("BFT_CONFIG", "/cluster/cluster.toml"), "rb") as fh:
        replicas = tomllib.load(fh)["replicas"]
    rid = os.environ.get("REPLICA_ID")
    if rid is not None:
        rep = next(r for r in replicas if r["id"] == int(rid))
        host = os.environ.get("BFT_LISTEN") or rep["host"]
        return 0 if _ok(_url(host, rep["http_port"])) else 1
    n = len(replicas)
    need = n - (n - 1) // 3
    up = sum(_ok(_url(r["host"], r["http_port"])) for r in replicas)
    return 0 if up >= need else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as exc:
        print(f"unhealthy: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
