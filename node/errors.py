"""Errors every layer may raise for the command line to print: a user's mistake.

`UserError` is a mistake the user can fix (a port in use, a replica already running, a
missing directory); the command line prints it as one line on stderr and exits non-zero,
never with a traceback. It lives here, below every command, so that the layers raising
it need not import the command line above them.
"""

from __future__ import annotations


class UserError(Exception):
    """Raised by any command for a mistake the user can fix; printed as one line."""
