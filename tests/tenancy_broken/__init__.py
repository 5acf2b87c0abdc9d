"""A deliberately broken app: `manage.py check` must report every model here."""
