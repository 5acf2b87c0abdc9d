"""Log filters of the project's handler: client errors are logged without a traceback."""

from __future__ import annotations

import logging


class ClientErrorWithoutTraceback(logging.Filter):
    """A 4xx (a refused permission, a missing object) is the client's doing: Django logs it
    with the exception that produced it, which is a traceback of the refusal, not of a bug.
    The line stays; the traceback goes. 5xx keep theirs."""

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if record.exc_info and isinstance(status, int) and 400 <= status < 500:
            record.exc_info = None
            record.exc_text = None
        return True
