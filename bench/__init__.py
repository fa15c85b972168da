"""Benchmarks (`make bench`): each module's `run()` returns figures measured against a baseline taken
in the same run, so ratios stay meaningful on a shared, noisy machine."""
