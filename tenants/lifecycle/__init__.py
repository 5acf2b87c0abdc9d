"""Tenant lifecycle beyond create and suspend: soft delete, purge, export, import, usage, exec."""
