"""Prototype backend for pair 3: BEGIN and the tenant setting in one round trip (bench only)."""
