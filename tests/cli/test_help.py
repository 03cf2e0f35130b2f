"""The command line explains itself: every option has a help line, `run --help` lists the
fault modes, `--version` answers, and `--config` falls back to $BFT_CONFIG."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from node.cli.main import build_parser
from node.shell.fault_modes import DESCRIPTIONS, MODES


def _parsers(parser: argparse.ArgumentParser, path: str = "bft-node"):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{path} {name}")


def test_every_option_and_argument_has_help() -> None:
    missing = [
        f"{path}: {action.dest}"
        for path, parser in _parsers(build_parser())
        for action in parser._actions
        if not isinstance(action, argparse._SubParsersAction) and not action.help
    ]
    assert missing == []


def test_defaults_are_shown() -> None:
    text = build_parser()._subparsers._group_actions[0].choices["load"].format_help()  # type: ignore[union-attr]
    assert "(default: 8)" in text and "(default: 10.0)" in text


def test_run_help_lists_every_fault_mode() -> None:
    text = build_parser()._subparsers._group_actions[0].choices["run"].format_help()  # type: ignore[union-attr]
    for mode in MODES:
        assert any(spec.startswith(mode) and spec in text for spec in DESCRIPTIONS), mode
    for spec, line in DESCRIPTIONS.items():
        assert spec in text and line in text


def test_version() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "node", "--version"], capture_output=True, text=True, check=True
    )
    assert proc.stdout.startswith("bft-node 0.")


def test_config_comes_from_bft_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BFT_CONFIG", "/somewhere/cluster.toml")
    for argv in (["status"], ["watch"], ["load"], ["run", "--id", "0"], ["client", "get", "k"]):
        assert build_parser().parse_args(argv).config == "/somewhere/cluster.toml", argv
    assert build_parser().parse_args(["status", "--config", "x"]).config == "x"
    monkeypatch.delenv("BFT_CONFIG")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["status"])


def test_client_parses_every_operation() -> None:
    p = build_parser()
    a = p.parse_args(["client", "--config", "c", "delete", "k"])
    assert (a.op, a.key) == ("delete", "k")
    a = p.parse_args(["client", "--config", "c", "cas", "k", "old", "new"])
    assert (a.op, a.key, a.expected, a.new, a.if_absent) == ("cas", "k", "old", "new", False)
    a = p.parse_args(["client", "--config", "c", "get", "k", "--json"])
    assert a.json
