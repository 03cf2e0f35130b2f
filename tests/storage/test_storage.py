"""SQLite storage: one transaction per write, GC by seq, identity check, crash safety."""

import sqlite3
import subprocess
import sys

import pytest

from node.storage import LogRow, Storage, StorageError


def test_write_load_replace_and_gc(tmp_path):
    s = Storage(tmp_path, b"replica-0")
    s.write([LogRow(b"a", 1, "pp", b"1"), LogRow(b"b", 2, "c", b"2")], meta={"view": b"0"})
    s.write([LogRow(b"a", 1, "pp", b"1'")], meta={"view": b"1"})
    st = s.load()
    assert st.meta["view"] == b"1"
    assert [(r.key, r.data) for r in st.rows] == [(b"a", b"1'"), (b"b", b"2")]
    s.write(gc_below_or_at=1)
    assert [r.key for r in s.load().rows] == [b"b"]
    s.close()


def test_other_replicas_data_dir_is_refused(tmp_path):
    Storage(tmp_path, b"replica-0").close()
    with pytest.raises(StorageError, match="belongs to another replica"):
        Storage(tmp_path, b"replica-1")


def test_unwritable_data_dir(tmp_path):
    target = tmp_path / "file"
    target.write_text("not a dir")
    with pytest.raises(StorageError, match="cannot create data dir"):
        Storage(target / "sub", b"x")


def test_failed_transaction_writes_nothing(tmp_path):
    s = Storage(tmp_path, b"r")
    with pytest.raises(sqlite3.Error):
        s.write([LogRow(b"a", 1, "pp", b"1"), LogRow(b"b", 2, "x", object())])
    assert s.load().rows == []


def test_committed_rows_survive_kill_9(tmp_path):
    """A child writes and then SIGKILLs itself: every committed row must be there."""
    code = (
        "import os, signal, sys\n"
        "from node.storage import Storage, LogRow\n"
        "s = Storage(sys.argv[1], b'r')\n"
        "for i in range(50):\n"
        "    s.write([LogRow(i.to_bytes(4, 'big'), i, 'c', b'x' * 100)])\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=False)
    assert proc.returncode == -9
    assert len(Storage(tmp_path, b"r").load().rows) == 50
