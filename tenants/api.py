"""The base of every tenant-data API view: sealed, so no subclass can widen its queryset."""

from __future__ import annotations

from django.db import transaction
from django.http import Http404
from rest_framework import viewsets
from rest_framework.permissions import SAFE_METHODS

_SEALED = ("get_queryset", "get_object", "initial")


class TenantViewSet(viewsets.GenericViewSet):
    """Subclasses declare `selector` (a function returning a scoped queryset) and may narrow
    it with `filter_queryset`; they cannot override how the queryset or the object is found.

    Objects are looked up inside the tenant's queryset only, so another tenant's id answers
    exactly like an id that does not exist: 404 with the same body.
    """

    selector = None

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        for name in _SEALED:
            if name in cls.__dict__:
                raise TypeError(
                    f"{cls.__name__} overrides {name}(); tenant viewsets read through "
                    "`selector` and must not replace the lookup (tenants.api.TenantViewSet)."
                )
        if cls.selector is None and not cls.__name__.startswith("_"):
            raise TypeError(f"{cls.__name__} must set `selector`.")

    @classmethod
    def as_view(cls, actions=None, **initkwargs):
        # Reads need no explicit transaction: each statement carries the tenant in its own
        # implicit one (tenants.db.backend), which saves BEGIN and COMMIT round trips.
        # Writes get a transaction in dispatch() below, as ATOMIC_REQUESTS would give them.
        return transaction.non_atomic_requests(super().as_view(actions, **initkwargs))

    def dispatch(self, request, *args, **kwargs):
        if request.method in SAFE_METHODS and not transaction.get_connection().in_atomic_block:
            return super().dispatch(request, *args, **kwargs)
        # DRF's exception handler marks the innermost transaction for rollback on an error
        # response: writes need their own, and so does a read inside a caller's transaction
        # (a savepoint), so that a 404 never poisons the caller's work.
        with transaction.atomic():
            return super().dispatch(request, *args, **kwargs)

    def get_queryset(self):
        return type(self).selector()

    def get_object(self):
        lookup = self.kwargs.get(self.lookup_url_kwarg or self.lookup_field, "")
        if not str(lookup).isdigit():
            raise Http404  # malformed ids look missing too, never a 500 or a different body
        return super().get_object()
