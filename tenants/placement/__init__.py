"""Where a tenant's rows live: the shared tables, a dedicated schema or a dedicated database (issue 12)."""
