"""The errors of the workflows app: names, definitions, run state changes, role refusals."""

from __future__ import annotations

from rest_framework import status
from rest_framework.exceptions import APIException


class DuplicateName(Exception):
    """A workflow of that name already exists in this tenant."""


class InvalidDefinition(ValueError):
    """A workflow definition the step language (workflows.steps) cannot run."""


class RunStateConflict(APIException):
    """The run is not in a state that allows the request (e.g. cancelling a finished run)."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "The run's state does not allow this."
    default_code = "run_state_conflict"


class RoleRefused(APIException):
    """The caller's role in the tenant does not allow the request; nothing was written."""

    status_code = status.HTTP_403_FORBIDDEN
    default_detail = "Your role in this tenant does not allow this."
    default_code = "role_forbidden"
