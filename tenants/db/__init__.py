"""Where the tenant reaches PostgreSQL: the database backend and the roles it runs as."""
