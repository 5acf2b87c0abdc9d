"""Benchmark only: the database backend as it was before the database wall (issue 9)."""
