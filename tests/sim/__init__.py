"""Deterministic multi-replica simulator: real PBFT cores, a seeded network, adversaries.

See docs/sim.md. Entry points: `harness.Simulation`, `params.ScheduleParams`, and
`python -m tests.sim.replay SEED` to replay one schedule.
"""
