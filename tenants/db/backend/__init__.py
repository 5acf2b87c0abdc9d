"""PostgreSQL backend that carries the current tenant into every transaction (ENGINE)."""
