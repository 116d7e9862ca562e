"""Keep secrets out of everything uvextra prints, logs or writes as JSON.

Secrets reach uvextra in two ways: credentials inside index URLs (``https://user:token@host/simple``) and
uv's per-index environment variables (``UV_INDEX_<NAME>_PASSWORD``); a notebook server adds its own tokens.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

# ANSI escapes: CSI (colours, cursor moves) and OSC (titles, hyperlinks) sequences, other two-byte escapes, and any
# lone ESC left over; the 8-bit CSI too. uv is told `--color never`; this strips what still arrives.
_ANSI = re.compile(
    r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC ... BEL | ST (or cut short)
    r"|\x1b\[[0-?]*[ -/]*[@-~]"  # CSI
    r"|\x1b[ -/]*[0-~]"  # two-byte escapes (charset selection, keypad modes, ...)
    r"|\x9b[0-?]*[ -/]*[@-~]"  # 8-bit CSI
    r"|[\x1b\x9b]"
)
# scheme://user:password@host -> scheme://user:***@host ; scheme://token@host -> scheme://***@host
_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/\s@]+)@")
# Environment variables whose values are secrets (uv's index credentials, hub and server tokens).
_SECRET_ENV = re.compile(
    r"^(UV_INDEX_.*_PASSWORD|UV_.*TOKEN.*|.*_API_TOKEN|JPY_API_TOKEN|JUPYTER_TOKEN|.*PASSWORD.*|.*SECRET.*)$"
)


def _mask_userinfo(match: re.Match[str]) -> str:
    user, sep, _ = match.group("userinfo").partition(":")
    return f"{match.group('scheme')}{user}:***@" if sep else f"{match.group('scheme')}***@"


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of secret-looking environment variables, longest first (so overlapping secrets mask fully)."""
    env = os.environ if environ is None else environ
    # Names first, values only for the few that match: reading every value of os.environ decodes it (3x slower,
    # and redact() runs this once per call).
    found = {v for v in (env[k] for k in env if _SECRET_ENV.match(k.upper())) if len(v) >= 4}
    return sorted(found, key=len, reverse=True)


def strip_ansi(text: str) -> str:
    """``text`` without terminal escape sequences (colour codes, hyperlinks, titles)."""
    if not text or ("\x1b" not in text and "\x9b" not in text):
        return text
    return _ANSI.sub("", text)


def redact(text: str, environ: Mapping[str, str] | None = None) -> str:
    """Mask URL credentials and the values of secret environment variables in ``text`` (and drop ANSI escapes)."""
    if not text:
        return text
    text = strip_ansi(text)
    text = _URL_USERINFO.sub(_mask_userinfo, text)
    for value in secret_values(environ):
        if value in text:
            text = text.replace(value, "***")
    return text
