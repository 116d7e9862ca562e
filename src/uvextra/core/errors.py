"""The one error type every surface turns into a single line (CLI exit code 2, no traceback in a notebook)."""

from __future__ import annotations


class UvextraError(Exception):
    """A problem the user can fix; ``str(err)`` is one line that says what to do next."""

    exit_code = 2

    def __init__(self, message: str, *, exit_code: int = 2) -> None:
        # One line, whatever a wrapped library message (a marker parse error, uv's stderr) brought along.
        message = " ".join(part.strip() for part in str(message).splitlines() if part.strip())
        super().__init__(message)
        self.exit_code = exit_code


class Interrupted(UvextraError):
    """The user interrupted a running uv (Ctrl-C, the kernel's stop button)."""

    def __init__(self, message: str = "interrupted: uv was stopped") -> None:
        super().__init__(message, exit_code=130)
