"""Benchmarks (see README: make bench)."""
