"""Ameide platform core: the Django project package."""
