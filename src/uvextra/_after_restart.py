"""Runs in the new kernel after the card's Restart (sent by :mod:`uvextra._restart_helper`): redraw that card.

The old card's widgets still live in the page: the frontend was not told about the restart, so it kept their comm
channels. Their kernel side is gone, but a ``comm_msg`` ``update`` with the same comm id still reaches their
views. The card then says what happened — restarted, the new kernel's process, and (when ``%uvextra`` is loaded
here) the environment as this kernel sees it, its torch build included — and its buttons go away (they would talk
to widgets that no longer exist in this process).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any


def _send(kernel: Any, comm_id: str, state: dict[str, Any]) -> None:
    content = {"comm_id": comm_id, "data": {"method": "update", "state": state, "buffer_paths": []}}
    kernel.session.send(kernel.iopub_socket, "comm_msg", content, parent=kernel.get_parent(),
                        ident=f"comm-{comm_id}".encode())


def _card(payload: dict[str, Any], said: str) -> str:
    from . import magic
    from .html import render_error, render_html

    session = magic._current
    if session is None:
        return render_error(f"{said}; %uvextra is not loaded in the new kernel (`%load_ext uvextra`)")
    from . import core
    from .kernel import KernelState

    try:
        report = core.check(payload.get("project"), None, payload.get("extras") or None,
                            probe=bool(payload.get("probe", True)), command="status")
    except Exception as exc:  # noqa: BLE001 - the card still says that the restart happened
        return render_error(f"{said}; checking the environment failed: {exc}")
    probe = report.probe
    if probe is not None and probe.torch_version:
        from .notebook import torch_build

        said += f"; torch {probe.torch_version} ({torch_build(probe.torch_version, probe.cuda_version, probe.hip_version)} build)"
    return render_html(report, KernelState(stale=[], restart=session.restart_plan()), note=said)


def announce(payload_json: str) -> None:
    """Redraw the card whose Restart was clicked (widget ids in the payload); never raises."""
    try:
        from IPython import get_ipython

        kernel = getattr(get_ipython(), "kernel", None)
        payload = json.loads(payload_json or "{}")
        if kernel is None or not payload.get("body"):
            return
        said = f"restarted at {time.strftime('%H:%M:%S')}: a new kernel process ({os.getpid()})"
        _send(kernel, payload["body"], {"value": _card(payload, said)})
        for layout in payload.get("hide") or []:
            _send(kernel, layout, {"display": "none"})
    except Exception:  # noqa: BLE001 - silent code in a fresh kernel: nothing may show up as an error
        return
