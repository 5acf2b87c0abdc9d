"""Tenancy core: the tenant, the context, scoping, constraints, RLS, audit and their checks."""
