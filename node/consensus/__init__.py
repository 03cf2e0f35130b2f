"""The sans-I/O PBFT replica core: the log, quorums, checkpoints, the proposer, view
change, state transfer and crash recovery, orchestrated by ``core.ReplicaCore``.

Pure: nothing here imports trio, sockets, files or clocks; time and messages are inputs
(``events``), what to do is output. The wire format it speaks is ``node.protocol``.
"""
