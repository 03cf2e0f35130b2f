#!/bin/sh
# Entrypoint of a compose replica service: runs replica $REPLICA_ID of the shared cluster.
#   BFT_CONFIG      cluster config (default /cluster/cluster.toml)
#   BFT_DATA        this replica's data dir (default /data, a volume of its own)
#   BFT_LISTEN      address to bind (default: the replica's host in the config)
#   FAULTY_REPLICA  id of the one replica started with a fault (empty: none)
#   FAULT_MODE      its --fault mode, e.g. delay:200, drop:0.3, silent (empty: none)
set -eu
: "${REPLICA_ID:?REPLICA_ID must be set}"
set -- run --config "${BFT_CONFIG:-/cluster/cluster.toml}" --id "$REPLICA_ID" \
    --data "${BFT_DATA:-/data}"
if [ -n "${BFT_LISTEN:-}" ]; then
    set -- "$@" --listen "$BFT_LISTEN"
fi
if [ -n "${FAULT_MODE:-}" ] && [ "${FAULTY_REPLICA:-}" = "$REPLICA_ID" ]; then
    set -- "$@" --fault "$FAULT_MODE"
fi
exec bft-node "$@"
