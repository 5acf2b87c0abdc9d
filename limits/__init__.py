"""Per-tenant limits, quotas and usage: the noisy-neighbour defences (docs/limits.md)."""
