"""Typed errors. Every message is one line that names the file or setting and the problem."""

from __future__ import annotations


class EngineError(Exception):
    """Base of every error the engine raises on purpose."""

    #: Short title for a dialog; the message itself is the plain-language explanation.
    title = "Bitsmith could not finish"

    def __init__(self, message: str, *, suggestion: str | None = None):
        super().__init__(message)
        self.suggestion = suggestion

    def __str__(self) -> str:  # one line, with the suggestion appended when there is one
        msg = super().__str__().replace("\n", " ")
        return f"{msg} ({self.suggestion})" if self.suggestion else msg


class InvalidInput(EngineError):
    title = "Invalid input"


class UnsupportedModel(EngineError):
    title = "Unsupported model"


class OutOfMemory(EngineError):
    title = "Not enough memory"


class NotEnoughDisk(EngineError):
    title = "Not enough disk space"


class Cancelled(EngineError):
    """Raised when a job stops because the user asked it to; never shown as an error."""

    title = "Cancelled"


class Paused(Cancelled):
    """A stop the user asked for in order to resume later: the job keeps its checkpoint. Every
    handler of Cancelled treats it as one; the job history records it as "paused"."""

    title = "Paused"
