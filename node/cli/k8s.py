"""`bft-node init DIR --k8s NAMESPACE`: a cluster directory for Kubernetes.

Writes ``DIR/cluster.toml`` whose replicas are the pods ``bft-I-0`` of one StatefulSet
``bft-I`` each, behind the headless Service ``bft`` (in-cluster DNS names
``bft-I-0.bft.NAMESPACE.svc.cluster.local``, replica I on ports 7000+I and 9100+I), and
``DIR/kubernetes/``, a kustomization (``kubectl apply -k DIR/kubernetes``): the namespace,
the Service, a PodDisruptionBudget allowing at most f replicas unavailable, one
StatefulSet per replica (its own PersistentVolumeClaim, and a Secret holding only that
replica's key, and its TLS certificate with ``--tls``), the public ``cluster.toml`` as a
ConfigMap, and, applied separately, a ServiceMonitor for the Prometheus Operator
(``servicemonitor.yaml``: its kind exists only where the Operator is installed) and the
client principal's key as a Secret for client pods (``secret-client.yaml``).

Why one StatefulSet per replica: every pod of a StatefulSet shares one pod template, so
it could only mount every replica's key; one per replica lets each pod mount only its
own Secret. A pod learns its id from its name (``bft-node run --id auto``, ``POD_NAME``
from the downward API). Why kustomize: ``kubectl`` carries it, and the output is plain
YAML a user can read and patch with overlays; there is nothing to template.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import yaml

from node.config import ClusterConfig, ReplicaInfo, init_cluster, load_config

__all__ = ["IMAGE", "init_kubernetes", "manifests"]

IMAGE = "bft-node:local"
PEER_PORT = 7000
HTTP_PORT = 9100
SERVICE = "bft"
APP = {"app.kubernetes.io/name": "bft-node", "app.kubernetes.io/instance": SERVICE}
CONFIG_DIR = "/etc/bft"


def pod_name(replica_id: int) -> str:
    return f"{SERVICE}-{replica_id}-0"


def dns_name(replica_id: int, namespace: str) -> str:
    return f"{pod_name(replica_id)}.{SERVICE}.{namespace}.svc.cluster.local"


def _secret(name: str, namespace: str, files: dict[str, Path]) -> dict[str, Any]:
    data = {key: base64.b64encode(path.read_bytes()).decode() for key, path in files.items()}
    meta = {"name": name, "namespace": namespace, "labels": dict(APP)}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque", "data": data}


def _replica_files(cfg: ClusterConfig, replica_id: int) -> dict[str, Path]:
    files = {f"replica-{replica_id}.key": cfg.replica_key_path(replica_id)}
    if cfg.tls:
        ca, cert, key = cfg.tls_files(f"replica-{replica_id}")
        files.update({"ca.crt": ca, cert.name: cert, key.name: key})
    return files


def _probe(path: str, period: int, failures: int) -> dict[str, Any]:
    get = {"path": path, "port": "http"}
    return {"httpGet": get, "periodSeconds": period, "failureThreshold": failures}


def _container(info: ReplicaInfo) -> dict[str, Any]:
    env = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
    ]
    args = ["run", "--config", f"{CONFIG_DIR}/cluster.toml", "--id", "auto"]
    args += ["--data", "/data/replica", "--listen", "$(POD_IP)"]
    return {
        "name": "replica",
        "image": IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "command": ["bft-node"],
        "args": args,
        "env": env,
        "ports": [
            {"name": "peer", "containerPort": info.port},
            {"name": "http", "containerPort": info.http_port},
        ],
        "readinessProbe": _probe("/healthz", 5, 3),
        "livenessProbe": {**_probe("/healthz", 10, 6), "initialDelaySeconds": 10},
        "resources": {
            "requests": {"cpu": "250m", "memory": "256Mi"},
            "limits": {"cpu": "1", "memory": "1Gi"},
        },
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {
                "name": "config",
                "mountPath": f"{CONFIG_DIR}/cluster.toml",
                "subPath": "cluster.toml",
            },
            {"name": "keys", "mountPath": f"{CONFIG_DIR}/keys", "readOnly": True},
            {"name": "data", "mountPath": "/data"},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }


def _statefulset(info: ReplicaInfo, namespace: str) -> dict[str, Any]:
    replica_id = info.id
    labels = {**APP, "bft-node/replica": str(replica_id)}
    spread = {
        "weight": 100,
        "podAffinityTerm": {
            "labelSelector": {"matchLabels": dict(APP)},
            "topologyKey": "kubernetes.io/hostname",
        },
    }
    pod = {
        "metadata": {
            "labels": labels,
            "annotations": {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": str(info.http_port),
                "prometheus.io/path": "/metrics",
            },
        },
        "spec": {
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 10001,
                "fsGroup": 10001,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "terminationGracePeriodSeconds": 15,
            "affinity": {
                "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [spread]}
            },
            "containers": [_container(info)],
            "volumes": [
                {"name": "config", "configMap": {"name": "bft-cluster"}},
                {
                    "name": "keys",
                    "secret": {"secretName": f"bft-replica-{replica_id}", "defaultMode": 0o400},
                },
                {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
            ],
        },
    }
    claim = {
        "metadata": {"name": "data", "labels": dict(APP)},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": f"{SERVICE}-{replica_id}", "namespace": namespace, "labels": labels},
        "spec": {
            "serviceName": SERVICE,
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "podManagementPolicy": "Parallel",
            "template": pod,
            "volumeClaimTemplates": [claim],
        },
    }


def _shared(cfg: ClusterConfig, namespace: str) -> dict[str, dict[str, Any]]:
    meta = {"namespace": namespace, "labels": dict(APP)}
    ports = [
        # named target ports: each pod's own (replica I listens on 7000+I and 9100+I)
        {"name": "peer", "port": PEER_PORT, "targetPort": "peer"},
        {"name": "http", "port": HTTP_PORT, "targetPort": "http"},
    ]
    return {
        "namespace.yaml": {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": namespace},
        },
        "service.yaml": {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": SERVICE, **meta},
            "spec": {
                "clusterIP": "None",
                "publishNotReadyAddresses": True,  # peers must find each other to get ready
                "selector": dict(APP),
                "ports": ports,
            },
        },
        "pdb.yaml": {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": SERVICE, **meta},
            "spec": {"maxUnavailable": cfg.f, "selector": {"matchLabels": dict(APP)}},
        },
        "configmap.yaml": {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "bft-cluster", **meta},
            "data": {"cluster.toml": cfg.path.read_text()},
        },
    }


def manifests(cfg: ClusterConfig, namespace: str) -> dict[str, dict[str, Any]]:
    """file name -> the object it holds (the kustomization's resources)."""
    out = _shared(cfg, namespace)
    for r in cfg.replicas:
        out[f"replica-{r.id}.yaml"] = _statefulset(r, namespace)
        files = _replica_files(cfg, r.id)
        out[f"secret-replica-{r.id}.yaml"] = _secret(f"bft-replica-{r.id}", namespace, files)
    return out


def _service_monitor(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": SERVICE, "namespace": namespace, "labels": dict(APP)},
        "spec": {
            "selector": {"matchLabels": dict(APP)},
            "endpoints": [{"port": "http", "path": "/metrics", "interval": "15s"}],
        },
    }


def init_kubernetes(
    directory: str | Path,
    nodes: int,
    namespace: str,
    tls: bool,
    base_port: int = PEER_PORT,
    http_base_port: int = HTTP_PORT,
) -> Path:
    """Write the cluster directory and its `kubernetes/` kustomization; the latter's path."""
    hosts = [dns_name(i, namespace) for i in range(nodes)]
    path = init_cluster(
        directory,
        nodes=nodes,
        hosts=hosts,
        base_port=base_port,
        http_base_port=http_base_port,
        tls=tls,
    )
    cfg = load_config(path)
    out = Path(directory) / "kubernetes"
    out.mkdir()
    objects = manifests(cfg, namespace)
    for name, obj in objects.items():
        _write(out / name, obj, secret=obj["kind"] == "Secret")
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": sorted(objects, key=_order),
    }
    _write(out / "kustomization.yaml", kustomization)
    _write(out / "servicemonitor.yaml", _service_monitor(namespace))
    client = _secret("bft-client", namespace, _client_files(cfg))
    _write(out / "secret-client.yaml", client, secret=True)
    return out


def _client_files(cfg: ClusterConfig) -> dict[str, Path]:
    """The client principal's key (and TLS files): for client pods, never for replicas."""
    files = {"client.key": cfg.client_key_path()}
    if cfg.tls:
        ca, cert, key = cfg.tls_files("client-client")
        files.update({"ca.crt": ca, cert.name: cert, key.name: key})
    return files


def _order(name: str) -> tuple[int, str]:
    first = ("namespace.yaml", "configmap.yaml", "service.yaml", "pdb.yaml")
    return (first.index(name) if name in first else len(first), name)


def _write(path: Path, obj: dict[str, Any], secret: bool = False) -> None:
    text = yaml.safe_dump(obj, sort_keys=False, default_flow_style=False)
    if secret:
        path.touch(mode=0o600)
    path.write_text(text)
