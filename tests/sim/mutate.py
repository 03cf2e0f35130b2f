"""Mutation harness: how many small realistic bugs does the simulation catch by itself?

    python -m tests.sim.mutate [--jobs 2] [--budget 1500] [--timeout 600] [--only NAME,...]
        [--tests PATHS] [--list] [--json-out FILE]

Copies the tracked files of the tree (``git ls-files``) into a scratch directory per
worker, then for each mutant of `mutants.py`: writes the one edit into the copy, runs
``python -m pytest -x -q tests/sim`` there with ``BFT_SIM_SCHEDULES=--budget`` (the
simulation only: no unit test), and puts the file back. A mutant is caught when that run
fails (exit status 1) within ``--timeout`` seconds. The working tree is never written.

Prints a table (mutant, caught, seconds, the first failing test) and one JSON line:
``{"mutants": N, "caught": K, "score": K/N, "median_s": ..., "per_mutant": [...],
"survivors": [...]}``. Exit status 0 when every mutant applied and ran.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from queue import Queue
from typing import Any

from .mutants import MUTANTS, Mutant

ROOT = Path(__file__).resolve().parents[2]
FAILED = 1  # pytest: tests failed


def tracked_files(root: Path) -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "-z"], cwd=root, check=True, capture_output=True
    ).stdout
    return [p for p in out.decode().split("\0") if p]


def make_copy(root: Path, files: list[str], into: Path) -> Path:
    for rel in files:
        src = root / rel
        if src.is_file():
            dst = into / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    return into


def check_mutants(root: Path, mutants: tuple[Mutant, ...]) -> list[str]:
    """Problems with the list: an edit whose text is not found exactly once."""
    problems = []
    names = [m.name for m in mutants]
    if len(set(names)) != len(names):
        problems.append("mutant names are not unique")
    for m in mutants:
        count = (root / m.path).read_text().count(m.old)
        if count != 1:
            problems.append(f"{m.name}: its text occurs {count} times in {m.path}")
    return problems


def first_failure(output: str) -> str:
    for line in output.splitlines():
        if line.startswith("FAILED "):
            return line[len("FAILED ") :].split(" - ")[0][:90]
    return ""


def run_mutant(
    copy: Path, m: Mutant, budget: int, timeout: float, tests: str = "tests/sim"
) -> dict[str, Any]:
    target = copy / m.path
    original = target.read_text()
    target.write_text(original.replace(m.old, m.new, 1))
    env = dict(os.environ, BFT_SIM_SCHEDULES=str(budget), PYTHONPATH=str(copy))
    env.pop("BFT_SIM_SEED", None)
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests.split()]
    started = time.monotonic()
    try:
        proc = subprocess.run(
            cmd, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout
        )
        status, output = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired:
        status, output = None, ""
    finally:
        target.write_text(original)
    seconds = round(time.monotonic() - started, 1)
    caught = status == FAILED
    return {
        "name": m.name,
        "path": m.path,
        "caught": caught,
        "seconds": seconds,
        "status": "timeout" if status is None else status,
        "by": first_failure(output) if caught else "",
        "why": m.why,
    }


def run_all(
    mutants: list[Mutant], jobs: int, budget: int, timeout: float, tests: str = "tests/sim"
) -> list[dict]:
    files = tracked_files(ROOT)
    with tempfile.TemporaryDirectory(prefix="bft-mutate-") as tmp:
        copies: Queue[Path] = Queue()
        for j in range(jobs):
            copies.put(make_copy(ROOT, files, Path(tmp) / f"w{j}"))

        def one(m: Mutant) -> dict[str, Any]:
            copy = copies.get()
            try:
                row = run_mutant(copy, m, budget, timeout, tests)
            finally:
                copies.put(copy)
            mark = "caught" if row["caught"] else "SURVIVED"
            print(f"  {m.name:34} {mark:8} {row['seconds']:7.1f}s {row['by']}", flush=True)
            return row

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            return list(pool.map(one, mutants))


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    caught = [r for r in rows if r["caught"]]
    return {
        "mutants": len(rows),
        "caught": len(caught),
        "score": round(len(caught) / len(rows), 3) if rows else None,
        "median_s": statistics.median(r["seconds"] for r in rows) if rows else None,
        "max_s": max((r["seconds"] for r in rows), default=None),
        "per_mutant": [{k: r[k] for k in ("name", "caught", "seconds", "by")} for r in rows],
        "survivors": [{"name": r["name"], "why": r["why"]} for r in rows if not r["caught"]],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.sim.mutate", description=__doc__)
    parser.add_argument("--jobs", type=int, default=2, help="mutants run at once (default 2)")
    parser.add_argument(
        "--budget", type=int, default=1500, help="BFT_SIM_SCHEDULES per mutant (default 1500)"
    )
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds per mutant (default 600)"
    )
    parser.add_argument("--only", default="", help="comma-separated mutant names")
    parser.add_argument(
        "--tests",
        default="tests/sim",
        help="what pytest runs per mutant (default tests/sim, the whole simulation; e.g. "
        "tests/sim/test_twins.py to see what one part catches alone)",
    )
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--json-out", type=Path, help="also write the summary here")
    args = parser.parse_args(argv)
    problems = check_mutants(ROOT, MUTANTS)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 2
    chosen = list(MUTANTS)
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {m.name for m in MUTANTS}
        if unknown:
            print(f"unknown mutants: {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
        chosen = [m for m in MUTANTS if m.name in wanted]
    if args.list:
        for m in chosen:
            print(f"{m.name:34} {m.path:32} {m.why}")
        return 0
    print(
        f"{len(chosen)} mutants, budget {args.budget} schedules, {args.jobs} at once, "
        f"running {args.tests}"
    )
    rows = run_all(chosen, max(1, args.jobs), args.budget, args.timeout, args.tests)
    summary = summarise(rows)
    print(
        f"caught {summary['caught']} of {summary['mutants']} (score {summary['score']}), "
        f"median {summary['median_s']} s per mutant"
    )
    for s in summary["survivors"]:
        print(f"  survivor: {s['name']}: {s['why']}")
    line = json.dumps(summary)
    print(line)
    if args.json_out:
        args.json_out.write_text(line + "\n")
    broken = [r for r in rows if r["status"] not in (0, FAILED, "timeout")]
    for r in broken:
        print(f"  {r['name']}: pytest exited {r['status']} (not a test failure)", file=sys.stderr)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
