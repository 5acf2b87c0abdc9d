"""Browser sessions stored under a hash of their key: the table never holds a usable cookie.

SESSION_ENGINE points here. The store reads and writes in the global scope whatever tenant the
request is in (it is platform code), and the table's policy hides every row from tenant work,
so SQL sent under a tenant neither sees nor plants a session.
"""

from __future__ import annotations

import hashlib

from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.core.exceptions import SuspiciousOperation
from django.utils import timezone

from accounts.models import Session
from tenants.context import no_tenant


def hashed(session_key: str) -> str:
    return hashlib.sha256(session_key.encode()).hexdigest()


class SessionStore(DatabaseSessionStore):
    @classmethod
    def get_model_class(cls):
        return Session

    def _get_session_from_db(self):
        try:
            with no_tenant():
                return self.model.objects.get(
                    session_key=hashed(self.session_key), expire_date__gt=timezone.now()
                )
        except (self.model.DoesNotExist, SuspiciousOperation):
            self._session_key = None

    async def _aget_session_from_db(self):
        try:
            with no_tenant():
                return await self.model.objects.aget(
                    session_key=hashed(self.session_key), expire_date__gt=timezone.now()
                )
        except (self.model.DoesNotExist, SuspiciousOperation):
            self._session_key = None

    def exists(self, session_key):
        with no_tenant():
            return self.model.objects.filter(session_key=hashed(session_key)).exists()

    async def aexists(self, session_key):
        with no_tenant():
            return await self.model.objects.filter(session_key=hashed(session_key)).aexists()

    def create_model_instance(self, data):
        instance = super().create_model_instance(data)
        instance.session_key = hashed(instance.session_key)
        return instance

    async def acreate_model_instance(self, data):
        instance = await super().acreate_model_instance(data)
        instance.session_key = hashed(instance.session_key)
        return instance

    def save(self, must_create=False):
        with no_tenant():
            return super().save(must_create=must_create)

    async def asave(self, must_create=False):
        with no_tenant():
            return await super().asave(must_create=must_create)

    def delete(self, session_key=None):
        key = session_key if session_key is not None else self.session_key
        if key is None:
            return
        with no_tenant():
            self.model.objects.filter(session_key=hashed(key)).delete()

    async def adelete(self, session_key=None):
        key = session_key if session_key is not None else self.session_key
        if key is None:
            return
        with no_tenant():
            await self.model.objects.filter(session_key=hashed(key)).adelete()

    @classmethod
    def clear_expired(cls):
        with no_tenant():
            super().clear_expired()
