"""Benchmarks: what tenancy costs, as ratios against baselines measured in the same run."""
