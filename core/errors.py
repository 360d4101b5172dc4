"""Errors that carry a message for the person who asked.

Every error raised by the core is a :class:`BerthError`: ``message`` is what the
user reads (what was asked, which limit refused it and what to do), ``status`` is
the HTTP status a front end should answer with, and ``log_message`` (optional)
holds detail meant for the log only. Front ends turn these into
``{"message": ...}`` JSON bodies or spawn failures; they never re-word them.
"""

from __future__ import annotations


class BerthError(Exception):
    """Base of every error the core raises on purpose."""

    status = 500

    def __init__(self, message: str, *, status: int | None = None, log_message: str | None = None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.log_message = log_message or message

    def to_json(self) -> dict:
        return {"message": self.message}


class RequestError(BerthError):
    """Malformed input: names the field and the accepted form (HTTP 400)."""

    status = 400

    def __init__(self, field: str, message: str, **kw):
        self.field = field
        super().__init__(f"{field}: {message}", **kw)

    def to_json(self) -> dict:
        return {"message": self.message, "field": self.field}


class PolicyError(BerthError):
    """The request is well formed but exceeds the user's policy (HTTP 403)."""

    status = 403

    def __init__(self, message: str, *, limit: str | None = None, **kw):
        self.limit = limit
        super().__init__(message, **kw)

    def to_json(self) -> dict:
        return {"message": self.message, "limit": self.limit}


class CapacityError(BerthError):
    """The host (or cluster) has no room for the request right now (HTTP 409)."""

    status = 409

    def __init__(self, message: str, *, resource: str | None = None, never_fits: bool = False, **kw):
        self.resource = resource
        #: True when no host could ever hold the request (refuse it; do not queue it).
        self.never_fits = never_fits
        super().__init__(message, **kw)


class NotFoundError(BerthError):
    """The named kernel, image, preset or folder does not exist for this user (HTTP 404)."""

    status = 404


class ConflictError(BerthError):
    """The object exists but is in a state that forbids the action (HTTP 409)."""

    status = 409


class EngineError(BerthError):
    """The container engine is unreachable or refused an operation (HTTP 503)."""

    status = 503
