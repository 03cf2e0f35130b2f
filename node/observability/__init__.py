"""Per-replica metrics (`metrics`) and the HTTP endpoints /metrics /status /healthz (`http`)."""
