"""Talking to a cluster as a client: the connection pool (``pool``) and the load
generator behind ``bft-node load`` (``load``)."""
