"""Placement: where a tenant's rows live (shared tables, a dedicated schema, a dedicated database)."""
