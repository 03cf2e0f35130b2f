"""Errors every layer may raise for the command line to print (a user's mistake), and
how to find them inside the exception groups that nurseries raise.

`UserError` is a mistake the user can fix (a port in use, a replica already running, a
missing directory); the command line prints it as one line on stderr and exits non-zero,
never with a traceback. It lives here, below every command, so that the layers raising
it need not import the command line above them.
"""

from __future__ import annotations

from collections.abc import Iterator


class UserError(Exception):
    """Raised by any command for a mistake the user can fix; printed as one line."""


def leaves(group: BaseExceptionGroup) -> Iterator[BaseException]:
    """Every exception inside `group` that is not itself a group, depth first: what a
    nursery's caller looks through to tell a user's mistake from a failure."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from leaves(exc)
        else:
            yield exc


def only_of(
    group: BaseExceptionGroup, kinds: type[BaseException] | tuple[type[BaseException], ...]
) -> BaseException | None:
    """The first leaf of `group` when every leaf is one of `kinds`, else None: a user's
    mistake (or Ctrl-C) raised inside a nursery, to show as if it were raised bare."""
    found = list(leaves(group))
    if found and all(isinstance(e, kinds) for e in found):
        return found[0]
    return None
