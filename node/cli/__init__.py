"""The ``bft-node`` command line (``main``, ``commands``) and the operator's cluster
tools (``cluster``: local launcher, status, watch, chaos and the demo)."""
