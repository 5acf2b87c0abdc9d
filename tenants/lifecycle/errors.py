"""Errors of the tenant lifecycle; every one of them means nothing was written."""

from __future__ import annotations

from tenants.services import TenantInputError


class LifecycleError(TenantInputError):
    """A lifecycle operation refused its input or its state; nothing was written."""


class ArchiveInvalid(LifecycleError):
    """An archive failed verification (manifest, checksum, count, schema); nothing was written."""


class ImportMismatch(ArchiveInvalid):
    """The rows read back after an import differ from the archive; the import was rolled back."""
