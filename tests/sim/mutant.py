"""One small realistic bug: an exact piece of text in one file and what replaces it."""

from __future__ import annotations

import attrs


@attrs.frozen
class Mutant:
    name: str
    path: str
    old: str
    new: str
    why: str
