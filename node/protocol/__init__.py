"""The wire format every party shares: messages, their canonical codec, signatures and
MACs, and how client-link messages share frames.

Pure: no trio, sockets, files or clocks. Clients and replicas both import this; neither
needs the replica core to speak the protocol.
"""

from node.protocol import codec  # noqa: F401  (installs the messages' encoding)
