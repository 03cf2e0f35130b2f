"""Mutants of the replicated application (`node/app/kv.py`) for the mutation harness; the
core's are in `mutants.py`, which adds these to its list."""

from __future__ import annotations

from .mutant import Mutant

KV = "node/app/kv.py"

APP_MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "cas_mismatch_wrong_value",
        KV,
        '            return encode_result("mismatch", current)',
        '            return encode_result("mismatch", arg1)',
        "a failed compare-and-set reports the expected value instead of the current one",
    ),
    Mutant(
        "restore_keeps_old_keys",
        KV,
        "        self._data = data\n",
        "        self._data.update(data)\n",
        "restoring a snapshot keeps keys the replica had that the snapshot does not hold",
    ),
    Mutant(
        "get_absent_as_empty",
        KV,
        '            return encode_result("ok", value) if value is not None else encode_result("absent")',
        '            return encode_result("ok", value or b"")',
        "a get of a missing key answers ok with an empty value",
    ),
    Mutant(
        "delete_keeps_key",
        KV,
        '            self._delete(key)\n            return encode_result("ok")',
        '            return encode_result("ok")',
        "delete answers ok but leaves the key",
    ),
    Mutant(
        "overwrite_ignored",
        KV,
        "        if old == value:\n            return",
        "        if old is not None:\n            return",
        "writing a new value over an existing key does nothing",
    ),
    Mutant(
        "cas_swaps_on_mismatch",
        KV,
        '        if current != arg1:\n            return encode_result("mismatch", current)',
        '        if current is None:\n            return encode_result("mismatch", current)',
        "compare-and-set swaps whatever the current value",
    ),
)
