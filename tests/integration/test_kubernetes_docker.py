"""The pods of the Kubernetes deployment, run for real on the local Docker engine (no
Kubernetes here): `bft-node init --k8s --tls`, then for each replica the rendered
StatefulSet's container spec as `docker run` (its image, command, args and env; the
ConfigMap and that replica's Secret mounted where the manifest mounts them; its user,
read-only root and dropped capabilities), host networking with the pods' DNS names mapped
to 127.0.0.2x by `--add-host`, `POD_NAME`/`POD_IP` as the downward API would set them.
Each container must find its own id from its pod name, reach its peers, report healthy,
and the cluster must commit a client's writes over TLS. Slow tier; skipped loudly only if
dockerd cannot run here."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import pytest
import trio
import yaml

from node.cli.cluster.fetch import fetch_json
from node.cli.k8s import IMAGE, init_kubernetes
from node.client import connect
from node.config import load_config
from tests.integration.harness import free_base_ports
from tests.integration.infra import (
    BASE_IMAGE,
    Dockerd,
    build_wheels,
    docker_daemon,
    docker_preflight,
    stage_context,
)

pytestmark = pytest.mark.slow

NODES = 4
NS = "bft-docker"
UID = 10001


def ip_of(rid: int) -> str:
    return f"127.0.0.{21 + rid}"


def test_the_rendered_pods_run_and_commit_on_docker(tmp_path: Path) -> None:
    docker_preflight()
    trio.run(_scenario, tmp_path)


def _statefulsets(out: Path) -> dict[int, dict[str, Any]]:
    kustomization = yaml.safe_load((out / "kustomization.yaml").read_text())
    objects = [yaml.safe_load((out / n).read_text()) for n in kustomization["resources"]]
    by_name = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    sets = {
        int(o["spec"]["template"]["metadata"]["labels"]["bft-node/replica"]): o
        for o in objects
        if o["kind"] == "StatefulSet"
    }
    return {rid: {"sts": s, "objects": by_name} for rid, s in sets.items()}


def _materialise(rid: int, spec: dict[str, Any], root: Path) -> list[str]:
    """The pod's volumes as `docker run` arguments: files for its ConfigMap and Secret,
    a directory for its claim, a tmpfs for an emptyDir."""
    objects = spec["objects"]
    pod = spec["sts"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = []
    for m in container["volumeMounts"]:
        source = volumes.get(m["name"])
        host = root / f"replica-{rid}" / m["name"]
        if source is None:  # the volumeClaimTemplate "data"
            host.mkdir(parents=True)
            os.chown(host, UID, UID)
            mounts += ["-v", f"{host}:{m['mountPath']}"]
        elif "emptyDir" in source:
            mounts += ["--tmpfs", m["mountPath"]]
        elif "configMap" in source:
            cm = objects[("ConfigMap", source["configMap"]["name"])]
            host.mkdir(parents=True)
            (host / m["subPath"]).write_text(cm["data"][m["subPath"]])
            mounts += ["-v", f"{host / m['subPath']}:{m['mountPath']}:ro"]
        elif "secret" in source:
            secret = objects[("Secret", source["secret"]["secretName"])]
            host.mkdir(parents=True)
            for name, data in secret["data"].items():
                path = host / name
                path.write_bytes(base64.b64decode(data))
                os.chown(path, UID, UID)
                path.chmod(source["secret"]["defaultMode"])
            mounts += ["-v", f"{host}:{m['mountPath']}:ro"]
    return mounts


def _run_args(rid: int, spec: dict[str, Any], root: Path, cfg) -> list[str]:
    pod = spec["sts"]["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    sc = c["securityContext"]
    env = {"POD_NAME": f"{spec['sts']['metadata']['name']}-0", "POD_IP": ip_of(rid)}
    args = [a.replace("$(POD_IP)", env["POD_IP"]) for a in c["args"]]
    run = ["run", "-d", "--name", f"k8s-{spec['sts']['metadata']['name']}", "--network", "host"]
    run += ["--user", f"{sc['runAsUser']}:{sc['runAsGroup']}", "--cap-drop", "ALL"]
    run += ["--security-opt", "no-new-privileges"]
    if sc["readOnlyRootFilesystem"]:
        run += ["--read-only"]
    for r in cfg.replicas:
        run += ["--add-host", f"{r.host}:{ip_of(r.id)}"]
    for key, value in env.items():
        run += ["-e", f"{key}={value}"]
    run += _materialise(rid, spec, root)
    return [*run, "--entrypoint", c["command"][0], c["image"], *args]


async def _healthy(cfg, rid: int) -> dict[str, Any] | None:
    r = cfg.replica(rid)
    try:
        return await fetch_json(f"http://{ip_of(rid)}:{r.http_port}/status", timeout=1.0)
    except Exception:
        return None


def _host_view(directory: Path, cfg) -> Path:
    """The cluster.toml as the host sees it: the pods' names replaced by their addresses."""
    text = (directory / "cluster.toml").read_text()
    for r in cfg.replicas:
        text = text.replace(f'"{r.host}"', f'"{ip_of(r.id)}"')
    path = directory / "host.toml"
    path.write_text(text)
    return path


async def _scenario(tmp_path: Path) -> None:
    directory = tmp_path / "cluster"
    base, http_base = free_base_ports(NODES)
    out = init_kubernetes(directory, NODES, NS, tls=True, base_port=base, http_base_port=http_base)
    cfg = load_config(directory / "cluster.toml")
    specs = _statefulsets(out)
    with trio.fail_after(900):
        async with docker_daemon() as dockerd:
            await dockerd.ensure_base_image()
            await _build_image(dockerd, tmp_path / "context")
            try:
                for rid in range(NODES):
                    await dockerd.docker(*_run_args(rid, specs[rid], tmp_path / "pods", cfg))
                await _check_cluster(dockerd, directory, cfg)
            finally:
                names = [f"k8s-{specs[r]['sts']['metadata']['name']}" for r in range(NODES)]
                await dockerd.docker("rm", "--force", *names, check=False, timeout=120)


async def _build_image(dockerd: Dockerd, context: Path) -> None:
    stage_context(context)
    await build_wheels(context)
    await dockerd.docker(
        "build",
        "--tag",
        IMAGE,
        "--build-arg",
        f"BASE_IMAGE={BASE_IMAGE}",
        "--build-arg",
        "INSTALL_FROM=wheels",
        str(context),
        timeout=600,
    )


def _all_closed(doc: dict[str, Any]) -> bool:
    return bool(doc["peers"]) and all(p["circuit"] == "closed" for p in doc["peers"].values())


async def _check_cluster(dockerd: Dockerd, directory: Path, cfg) -> None:
    docs: list[dict[str, Any] | None] = [None] * NODES
    with trio.move_on_after(90):
        while True:
            docs = [await _healthy(cfg, rid) for rid in range(NODES)]
            if all(d and _all_closed(d) for d in docs):
                break
            await trio.sleep(0.5)
    if not all(docs):
        tails = []
        for r in range(NODES):
            res = await dockerd.docker("logs", "--tail", "15", f"k8s-bft-{r}", check=False)
            tails.append((res.stdout + res.stderr).decode(errors="replace")[-1500:])
        pytest.fail("pods not healthy:\n" + "\n".join(tails))
    assert [d["id"] for d in docs] == list(range(NODES))  # each found its id from its pod name
    host_cfg = load_config(_host_view(directory, cfg))
    assert host_cfg.tls
    async with connect(host_cfg, timeout=20.0) as kv:
        for i in range(10):
            await kv.put(f"k8s-{i}", f"value-{i}")
        assert await kv.get("k8s-9") == b"value-9"
    # committed on 2f + 1 replicas; the fourth catches up by itself, within seconds
    executed: list[int] = []
    with trio.move_on_after(30):
        while not executed or min(executed) < max(executed):
            executed = [
                ((await _healthy(cfg, rid)) or {}).get("last_executed", -1) for rid in range(NODES)
            ]
            await trio.sleep(0.3)
    assert min(executed) == max(executed) >= 1, executed
