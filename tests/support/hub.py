"""A real JupyterHub on 127.0.0.1: what it needs besides the browser (the jupyterhub package, configurable-http-proxy)."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

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


_HUB_CONFIG = """c = get_config()  # noqa: F821
import json
job = json.load(open({job!r}))
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = job["port"]
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = job["hub_port"]
c.JupyterHub.db_url = "sqlite:///" + job["base"] + "/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = job["base"] + "/jupyterhub_cookie_secret"
c.JupyterHub.pid_file = job["base"] + "/jupyterhub.pid"
c.JupyterHub.cleanup_servers = True
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allowed_users = {{job["user"]}}
c.JupyterHub.spawner_class = {spawner!r}
c.ConfigurableHTTPProxy.command = [job["proxy"]]
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:%d" % job["proxy_api_port"]
c.ConfigurableHTTPProxy.pid_file = job["base"] + "/proxy.pid"
c.Spawner.cmd = [job["python"], "-m", "jupyterhub.singleuser"]
c.Spawner.args = job["args"]
c.Spawner.default_url = "/lab"
c.Spawner.environment = job["env"]
c.Spawner.start_timeout = job["timeout"]
c.Spawner.http_timeout = job["timeout"]
"""


def hub_config(job: Path, spawner: str, extra: str = "") -> str:
    """A jupyterhub_config.py on 127.0.0.1 that reads its ports, user and single-user command from ``job`` (JSON):
    DummyAuthenticator, ``spawner`` (``simple`` or ``localprocess``), the proxy at ``job["proxy"]``; ``extra``: more
    config lines."""
    return _HUB_CONFIG.format(job=str(job), spawner=spawner) + extra
