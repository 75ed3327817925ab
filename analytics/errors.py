"""Errors users see: one readable line, a hint, and the exit code the CLI uses.

Everything the toolkit raises on purpose derives from :class:`AnalyticsError`; the CLI prints
``error: <message>`` (and ``hint: <hint>``) and exits with ``exit_code``, never a traceback.
"""

from __future__ import annotations


class AnalyticsError(Exception):
    """Base of all expected errors; ``hint`` says what to do about it."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class DataError(AnalyticsError):
    """The data cannot be read or does not fit the request (missing file, bad schema...)."""


class UsageError(AnalyticsError):
    """The request itself is wrong (unknown option, malformed filter, bad column spec)."""

    exit_code = 2


class EngineError(AnalyticsError):
    """An engine failed to start or a task failed on a worker."""
