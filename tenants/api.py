"""The base of every tenant-data API view: sealed, so no subclass can widen its queryset."""

from __future__ import annotations

from django.http import Http404
from rest_framework import viewsets

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

    def get_queryset(self):
        return type(self).selector()

    def get_object(self):
        lookup = self.kwargs.get(self.lookup_url_kwarg or self.lookup_field, "")
        if not str(lookup).isdigit():
            raise Http404  # malformed ids look missing too, never a 500 or a different body
        return super().get_object()
