"""Pair 7's throwaway django-tenants project; runs only in bench/.venv-dt (see pairs_schemas)."""
