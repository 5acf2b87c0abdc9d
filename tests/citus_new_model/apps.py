"""App config of an app that adds one tenant model (loaded only by its settings.py)."""

from django.apps import AppConfig


class CitusNewModelConfig(AppConfig):
    name = "tests.citus_new_model"
    label = "citus_new_model"
