"""The Trio shell: everything that runs one replica.

``replica`` wires the pure core to storage, transport, guards and HTTP; ``peer_traffic``
sends to peers through the guards (``guard``, ``guard_tasks``: breaker, adaptive timeout,
fallback queue, health); ``round_writer`` makes a round's records durable before its sends;
``admission`` refuses client work a busy replica cannot take; ``status`` is what it shows;
``fault_modes`` and ``fault_injection`` are the ``--fault`` modes.
"""
