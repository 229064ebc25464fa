"""Benchmarks: ours vs the peer vs the floor, in one process, written as evidence packets."""
