"""The Kubernetes deployment `bft-node init --k8s` writes, checked offline: every object
validates against the Kubernetes API schemas (kubernetes-validate, Kubernetes 1.34,
strict: no unknown fields), the kustomization renders (with kubectl's kustomize when the
machine has kubectl), and the objects have what a BFT cluster needs: a stable identity
and its own volume per replica, each pod mounting only its own key, a
PodDisruptionBudget of f, probes on /healthz, requests and limits, a non-root read-only
root, and Prometheus scrape annotations."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from node.cli.k8s import init_kubernetes
from node.config import load_config

K8S_VERSION = "1.34"
NS = "bft-test"


def _objects(out: Path) -> list[dict]:
    kustomization = yaml.safe_load((out / "kustomization.yaml").read_text())
    return [yaml.safe_load((out / name).read_text()) for name in kustomization["resources"]]


@pytest.fixture(scope="module", params=[(4, False), (7, True)], ids=["n4-plain", "n7-tls"])
def rendered(request, tmp_path_factory):
    nodes, tls = request.param
    directory = tmp_path_factory.mktemp("k8s") / "cluster"
    out = init_kubernetes(directory, nodes, NS, tls)
    return load_config(directory / "cluster.toml"), out, _objects(out)


def _kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


def test_every_object_validates_against_the_api_schemas(rendered) -> None:
    _, out, objects = rendered
    for obj in objects:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    monitor = yaml.safe_load((out / "servicemonitor.yaml").read_text())
    assert monitor["kind"] == "ServiceMonitor" and monitor["spec"]["endpoints"][0]["port"] == "http"


def test_the_validator_does_catch_a_wrong_field() -> None:
    bad = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"portz": []}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)


def test_the_kustomization_renders_with_kubectl(rendered) -> None:
    _, out, objects = rendered
    if shutil.which("kubectl") is None:
        pytest.skip("no kubectl here: the files were validated one by one instead")
    text = subprocess.run(
        ["kubectl", "kustomize", str(out)], capture_output=True, text=True, check=True
    ).stdout
    assert _by_name(yaml.safe_load_all(text)) == _by_name(objects)


def _by_name(objects) -> dict[tuple[str, str], dict]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


def test_a_pdb_of_f_and_a_stable_identity_and_volume_per_replica(rendered) -> None:
    cfg, _, objects = rendered
    (pdb,) = _kind(objects, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == cfg.f
    sets = _kind(objects, "StatefulSet")
    assert len(sets) == cfg.n
    (service,) = _kind(objects, "Service")
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["publishNotReadyAddresses"]
    for r, sts in zip(cfg.replicas, sorted(sets, key=lambda s: s["metadata"]["name"]), strict=True):
        spec = sts["spec"]
        assert spec["replicas"] == 1 and spec["serviceName"] == service["metadata"]["name"]
        assert spec["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
        pod = f"{sts['metadata']['name']}-0"
        assert r.host == f"{pod}.{service['metadata']['name']}.{NS}.svc.cluster.local"
        labels = spec["template"]["metadata"]["labels"]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_each_pod_mounts_only_its_own_key(rendered) -> None:
    cfg, _, objects = rendered
    secrets = {s["metadata"]["name"]: s for s in _kind(objects, "Secret")}
    for sts in _kind(objects, "StatefulSet"):
        rid = int(sts["spec"]["template"]["metadata"]["labels"]["bft-node/replica"])
        volumes = sts["spec"]["template"]["spec"]["volumes"]
        names = [v["secret"]["secretName"] for v in volumes if "secret" in v]
        assert names == [f"bft-replica-{rid}"]
        files = secrets[names[0]]["data"]
        keys = [f for f in files if f.endswith(".key")]
        assert keys == [f"replica-{rid}.key"] + ([f"replica-{rid}.tls.key"] if cfg.tls else [])
        raw = base64.b64decode(files[f"replica-{rid}.key"])
        assert raw == cfg.replica_key_path(rid).read_bytes()
        assert "ca.key" not in files and "client.key" not in files


def test_the_client_key_is_a_secret_of_its_own_outside_the_kustomization(rendered) -> None:
    cfg, out, objects = rendered
    assert "bft-client" not in {o["metadata"]["name"] for o in objects}
    client = yaml.safe_load((out / "secret-client.yaml").read_text())
    kubernetes_validate.validate(client, K8S_VERSION, strict=True)
    assert [f for f in client["data"] if f.endswith(".key")] == ["client.key"] + (
        ["client-client.tls.key"] if cfg.tls else []
    )
    assert (out / "secret-client.yaml").stat().st_mode & 0o077 == 0


def test_probes_resources_security_and_scraping(rendered) -> None:
    cfg, _, objects = rendered
    for sts in _kind(objects, "StatefulSet"):
        template = sts["spec"]["template"]
        (c,) = template["spec"]["containers"]
        assert c["readinessProbe"]["httpGet"]["path"] == "/healthz"
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert {"cpu", "memory"} <= c["resources"]["requests"].keys() & c["resources"][
            "limits"
        ].keys()
        sc = c["securityContext"]
        assert sc["runAsNonRoot"] and sc["readOnlyRootFilesystem"]
        assert not sc["allowPrivilegeEscalation"] and sc["capabilities"]["drop"] == ["ALL"]
        notes = template["metadata"]["annotations"]
        rid = int(template["metadata"]["labels"]["bft-node/replica"])
        assert notes["prometheus.io/scrape"] == "true"
        assert notes["prometheus.io/port"] == str(cfg.replica(rid).http_port)
        assert "--id" in c["args"] and c["args"][c["args"].index("--id") + 1] == "auto"
