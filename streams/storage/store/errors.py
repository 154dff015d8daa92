"""Errors of the store: its own (``StoreError``) and the ones it reports to clients the
way ClickHouse does (``ClickHouseError``)."""

from __future__ import annotations

from streams.storage.store.protocol import (
    CODE_NAMES,
    EXCEPTION_CODE,
    STD_EXCEPTION,
    VERSION_TRAILER,
)

__all__ = ["StoreError", "ClickHouseError"]


class StoreError(RuntimeError):
    """The store could not start or answer; the message is one line saying why."""


class ClickHouseError(Exception):
    """An error the store reports to its client the way ClickHouse does."""

    def __init__(self, code: int, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status

    @classmethod
    def make(cls, code: int, text: str, status: int = 500) -> ClickHouseError:
        """Build the exact ``Code: N. DB::Exception: text (NAME)`` shape clients parse."""
        name = CODE_NAMES.get(code, "UNKNOWN_EXCEPTION")
        return cls(code, f"Code: {code}. DB::Exception: {text}. ({name})", status)

    @classmethod
    def from_chdb(cls, exc: BaseException) -> ClickHouseError:
        """chDB raises RuntimeError whose text holds ClickHouse's own message somewhere."""
        text = str(exc)
        start = text.find("Code: ")
        if start < 0:
            return cls.make(STD_EXCEPTION, text.strip() or type(exc).__name__)
        message = text[start:].strip()
        match = EXCEPTION_CODE.match(message)
        return cls(int(match.group(1)) if match else STD_EXCEPTION, message)

    def body(self, version: str) -> bytes:
        """The reply body: the message with ClickHouse's ``(version ...)`` trailer."""
        return f"{VERSION_TRAILER.sub('', self.message)} (version {version})\n".encode()
