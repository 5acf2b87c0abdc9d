"""The errors of the workflows app."""

from __future__ import annotations


class DuplicateName(Exception):
    """A workflow of that name already exists in this tenant."""
