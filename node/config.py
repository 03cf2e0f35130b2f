"""The cluster configuration: `cluster.toml` and the key files beside it.

`init_cluster` writes a new cluster directory (public config plus private keys, mode 0600);
`load_config` reads and validates one. Every user mistake raises `ConfigError` with one
line that says what is wrong and where; the CLI prints it and exits non-zero.

Layout of a cluster directory::

    DIR/cluster.toml            public: replicas, addresses, public keys, settings
    DIR/keys/replica-I.key      private Ed25519 seed of replica I (64 hex chars)
    DIR/keys/client.key         private Ed25519 seed of the default client principal
    DIR/data/replica-I/         default data dir of replica I
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import tomli_w
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from node.config_schema import SCHEMA


class ConfigError(Exception):
    """A user mistake in the config, the keys or the data dir: one clear line."""


@attrs.frozen
class ReplicaInfo:
    id: int
    host: str
    port: int
    http_port: int
    public_key: bytes


@attrs.frozen
class ClientInfo:
    name: str
    public_key: bytes


@attrs.frozen
class ClusterConfig:
    path: Path
    replicas: tuple[ReplicaInfo, ...]
    clients: tuple[ClientInfo, ...]
    sections: Mapping[str, Mapping[str, Any]]

    @property
    def directory(self) -> Path:
        return self.path.parent

    @property
    def n(self) -> int:
        return len(self.replicas)

    @property
    def f(self) -> int:
        return int(self.sections["cluster"]["f"])

    def section(self, name: str) -> dict[str, Any]:
        return dict(self.sections[name])

    def replica(self, replica_id: int) -> ReplicaInfo:
        for r in self.replicas:
            if r.id == replica_id:
                return r
        ids = ", ".join(str(r.id) for r in self.replicas)
        raise ConfigError(f"unknown replica id {replica_id}: {self.path} has ids {ids}")

    def replica_key_path(self, replica_id: int) -> Path:
        return self.directory / "keys" / f"replica-{replica_id}.key"

    def client_key_path(self, name: str = "client") -> Path:
        return self.directory / "keys" / f"{name}.key"

    @property
    def tls(self) -> bool:
        return bool(self.sections["transport"]["tls"])

    def tls_files(self, member: str) -> tuple[Path, Path, Path]:
        """(CA certificate, certificate, private key) of member ``replica-I`` or
        ``client-NAME``, from ``[transport] ca_file`` and ``cert_dir`` (relative paths
        are relative to this file's directory)."""
        t = self.sections["transport"]
        certs = self.directory / t["cert_dir"]
        return self.directory / t["ca_file"], certs / f"{member}.crt", certs / f"{member}.tls.key"

    def default_data_dir(self, replica_id: int) -> Path:
        return self.directory / "data" / f"replica-{replica_id}"


def _hex_key(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: public_key must be a hex string")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise ConfigError(f"{where}: public_key is not valid hex") from None
    if len(raw) != 32:
        raise ConfigError(f"{where}: public_key must be 32 bytes (64 hex chars), got {len(raw)}")
    return raw


def _typed(value: Any, typ: type, where: str) -> Any:
    if typ is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, typ) or isinstance(value, bool):
        raise ConfigError(f"{where} must be {typ.__name__}, got {value!r}")
    return value


def _sections(doc: Mapping[str, Any], path: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, keys in SCHEMA.items():
        given = doc.get(name, {})
        if not isinstance(given, dict):
            raise ConfigError(f"{path}: [{name}] must be a table")
        unknown = sorted(set(given) - set(keys))
        if unknown:
            raise ConfigError(f"{path}: unknown key(s) in [{name}]: {', '.join(unknown)}")
        sec = {}
        for key, (typ, default) in keys.items():
            sec[key] = _typed(given.get(key, default), typ, f"{path}: [{name}] {key}")
        out[name] = sec
    _check_ranges(out, path)
    return out


def _check_ranges(s: dict[str, dict[str, Any]], path: Path) -> None:
    def need(cond: bool, msg: str) -> None:
        if not cond:
            raise ConfigError(f"{path}: {msg}")

    need(s["cluster"]["f"] >= 0, "[cluster] f must be >= 0")
    need(s["cluster"]["request_timeout_s"] > 0, "[cluster] request_timeout_s must be > 0")
    need(s["client"]["call_timeout_s"] > 0, "[client] call_timeout_s must be > 0")
    b = s["breaker"]
    need(b["failure_threshold"] >= 1, "[breaker] failure_threshold must be >= 1")
    need(b["half_open_max_calls"] >= 1, "[breaker] half_open_max_calls must be >= 1")
    need(b["success_threshold"] >= 1, "[breaker] success_threshold must be >= 1")
    need(b["open_timeout_s"] > 0, "[breaker] open_timeout_s must be > 0")
    need(
        b["max_open_timeout_s"] >= b["open_timeout_s"],
        "[breaker] max_open_timeout_s must be >= open_timeout_s",
    )
    need(b["request_timeout_s"] > 0, "[breaker] request_timeout_s must be > 0")
    t = s["timeout"]
    need(0 < t["min_s"] <= t["max_s"], "[timeout] needs 0 < min_s <= max_s")
    need(0 < t["percentile"] <= 1, "[timeout] percentile must be in (0, 1]")
    need(t["window"] >= 1, "[timeout] window must be >= 1")
    need(s["fallback"]["max_queue"] >= 1, "[fallback] max_queue must be >= 1")
    need(s["fallback"]["max_retries"] >= 1, "[fallback] max_retries must be >= 1")
    c = s["consensus"]
    need(c["batch_max"] >= 1, "[consensus] batch_max must be >= 1")
    need(c["checkpoint_interval"] >= 1, "[consensus] checkpoint_interval must be >= 1")
    need(
        c["watermark_window"] >= 2 * c["checkpoint_interval"]
        and c["watermark_window"] % c["checkpoint_interval"] == 0,
        "[consensus] watermark_window must be a multiple of checkpoint_interval, at least 2x",
    )
    need(c["view_change_timeout_s"] > 0, "[consensus] view_change_timeout_s must be > 0")
    need(c["batch_timeout_s"] >= 0, "[consensus] batch_timeout_s must be >= 0")
    need(c["status_interval_s"] >= 0, "[consensus] status_interval_s must be >= 0 (0 = off)")
    tr = s["transport"]
    need(tr["max_peer_frame"] >= 1024, "[transport] max_peer_frame must be >= 1024")
    need(
        tr["max_peer_message"] >= tr["max_peer_frame"],
        "[transport] max_peer_message must be >= max_peer_frame",
    )


def parse_config(doc: Mapping[str, Any], path: Path) -> ClusterConfig:
    """Validate a parsed TOML document."""
    sections = _sections(doc, path)
    raw_replicas = doc.get("replicas")
    if not isinstance(raw_replicas, list) or not raw_replicas:
        raise ConfigError(f"{path}: needs at least one [[replicas]] entry")
    replicas = []
    for i, r in enumerate(raw_replicas):
        where = f"{path}: [[replicas]] #{i + 1}"
        if not isinstance(r, dict):
            raise ConfigError(f"{where} must be a table")
        missing = [k for k in ("id", "host", "port", "http_port", "public_key") if k not in r]
        if missing:
            raise ConfigError(f"{where} is missing {', '.join(missing)}")
        rid = _typed(r["id"], int, f"{where} id")
        host = _typed(r["host"], str, f"{where} host")
        port = _typed(r["port"], int, f"{where} port")
        http_port = _typed(r["http_port"], int, f"{where} http_port")
        for name, p in (("port", port), ("http_port", http_port)):
            if not 0 < p < 65536:
                raise ConfigError(f"{where} {name} {p} is not a TCP port")
        replicas.append(ReplicaInfo(rid, host, port, http_port, _hex_key(r["public_key"], where)))
    ids = sorted(r.id for r in replicas)
    if ids != list(range(len(replicas))):
        raise ConfigError(f"{path}: replica ids must be 0..{len(replicas) - 1}, got {ids}")
    replicas.sort(key=lambda r: r.id)
    f = sections["cluster"]["f"]
    if len(replicas) < 3 * f + 1:
        raise ConfigError(
            f"{path}: {len(replicas)} replicas cannot tolerate f={f}; need n >= 3f+1 = {3 * f + 1}"
        )
    clients = []
    for i, c in enumerate(doc.get("clients", [])):
        where = f"{path}: [[clients]] #{i + 1}"
        if not isinstance(c, dict) or "name" not in c or "public_key" not in c:
            raise ConfigError(f"{where} needs name and public_key")
        name = _typed(c["name"], str, f"{where} name")
        if not name or "/" in name:
            raise ConfigError(f"{where} name must be non-empty and contain no '/'")
        clients.append(ClientInfo(name, _hex_key(c["public_key"], where)))
    return ClusterConfig(path, tuple(replicas), tuple(clients), sections)


def load_config(path: str | os.PathLike[str]) -> ClusterConfig:
    """Read and validate `cluster.toml`; a directory means `DIR/cluster.toml`."""
    p = Path(path)
    if p.is_dir():
        p = p / "cluster.toml"
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {p}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config {p}: {exc.strerror}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    return parse_config(doc, p.resolve())


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Read a private key file (64 hex chars of raw Ed25519 seed)."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise ConfigError(f"key file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read key file {path}: {exc}") from None
    try:
        seed = bytes.fromhex(text)
    except ValueError:
        raise ConfigError(f"key file {path} is not hex") from None
    if len(seed) != 32:
        raise ConfigError(f"key file {path} must hold 32 bytes (64 hex chars)")
    return Ed25519PrivateKey.from_private_bytes(seed)


def public_bytes(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        encoding=serialization.Encoding.Raw, format=serialization.PublicFormat.Raw
    )


def private_seed(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        encoding=serialization.Encoding.Raw,
        format=serialization.PrivateFormat.Raw,
        encryption_algorithm=serialization.NoEncryption(),
    )


def _write_private(path: Path, key: Ed25519PrivateKey) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(private_seed(key).hex() + "\n")


def _write_keys(d: Path, nodes: int) -> tuple[list[Ed25519PrivateKey], Ed25519PrivateKey]:
    """Fresh replica keys and the client key in `d/keys` (0700; each key 0600)."""
    keys = d / "keys"
    try:
        keys.mkdir(parents=True, exist_ok=True)
        os.chmod(keys, 0o700)
        replica_keys = [Ed25519PrivateKey.generate() for _ in range(nodes)]
        client_key = Ed25519PrivateKey.generate()
        for i, k in enumerate(replica_keys):
            _write_private(keys / f"replica-{i}.key", k)
        _write_private(keys / "client.key", client_key)
    except FileExistsError as exc:
        raise ConfigError(
            f"key file {exc.filename} already exists; refusing to overwrite"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot write cluster dir {d}: {exc.strerror}") from None
    return replica_keys, client_key


def init_cluster(
    directory: str | os.PathLike[str],
    nodes: int = 4,
    host: str = "127.0.0.1",
    base_port: int = 7000,
    http_base_port: int = 9100,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    hosts: Sequence[str] | None = None,
    tls: bool = False,
) -> Path:
    """Write `DIR/cluster.toml` and fresh keys; refuse to overwrite an existing cluster.
    Every replica listens on `host`, or replica I on `hosts[I]` (one host per replica).
    With `tls`, also a cluster CA and a certificate per member (``node.certs``), and
    ``[transport] tls = true``."""
    d = Path(directory)
    if nodes < 1:
        raise ConfigError(f"--nodes must be >= 1, got {nodes}")
    if hosts is not None:
        hosts = [h.strip() for h in hosts]
        if len(hosts) != nodes or not all(hosts):
            raise ConfigError(f"--hosts needs {nodes} non-empty hosts, one per replica")
    replica_hosts = list(hosts) if hosts is not None else [host] * nodes
    f = (nodes - 1) // 3
    for base, name in ((base_port, "--base-port"), (http_base_port, "--http-base-port")):
        if not 0 < base or base + nodes - 1 >= 65536:
            raise ConfigError(f"{name} {base} leaves no room for {nodes} ports")
    cfg_path = d / "cluster.toml"
    if cfg_path.exists():
        raise ConfigError(f"{cfg_path} already exists; refusing to overwrite a cluster")
    replica_keys, client_key = _write_keys(d, nodes)
    doc: dict[str, Any] = {}
    for name, keys_schema in SCHEMA.items():
        doc[name] = {k: default for k, (_t, default) in keys_schema.items()}
    doc["cluster"]["f"] = f
    if tls:
        from node.certs import write_cluster_certs

        write_cluster_certs(d / "keys", replica_hosts, ["client"])
        doc["transport"]["tls"] = True
    for name, values in (overrides or {}).items():
        doc[name].update(values)
    doc["replicas"] = [
        {
            "id": i,
            "host": replica_hosts[i],
            "port": base_port + i,
            "http_port": http_base_port + i,
            "public_key": public_bytes(k).hex(),
        }
        for i, k in enumerate(replica_keys)
    ]
    doc["clients"] = [{"name": "client", "public_key": public_bytes(client_key).hex()}]
    parse_config(doc, cfg_path)  # never write a config we would refuse to read
    header = (
        "# bft-node cluster config: public. Private keys live in keys/ (mode 0600).\n"
        "# Every key may be edited before the replicas start.\n"
    )
    cfg_path.write_text(header + tomli_w.dumps(doc), encoding="utf-8")
    return cfg_path
