"""A real JupyterHub on 127.0.0.1: what it needs besides the browser (the jupyterhub package, configurable-http-proxy)."""

from __future__ import annotations

import importlib.util
import os
import shutil

from support.browser import browser_missing


def proxy_binary() -> str | None:
    return os.environ.get("UVEXTRA_CHP") or shutil.which("configurable-http-proxy")


def hub_missing() -> str | None:
    reason = browser_missing()
    if reason:
        return reason
    if importlib.util.find_spec("jupyterhub") is None:
        return "the Python package jupyterhub is missing (pip install jupyterhub)"
    if not proxy_binary():
        return (
            "configurable-http-proxy is not on PATH and $UVEXTRA_CHP is not set "
            "(npm install -g configurable-http-proxy)"
        )
    return None
