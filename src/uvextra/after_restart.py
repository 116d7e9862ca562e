"""Runs in the new kernel after the card's Restart (sent by :mod:`uvextra.kernel.restart_helper`): redraw that card,
then tell the page that the kernel restarted.

The old card's widgets still live in the page: the frontend was not told about the restart, so it kept their comm
channels. Their kernel side is gone, but a ``comm_msg`` ``update`` with the same comm id still reaches their
views. The card then says what happened — restarted, the new kernel's process, and (when ``%uvextra`` is loaded
here) the environment as this kernel sees it, its torch build included — and its buttons go away (they would talk
to widgets that no longer exist in this process). The card's output itself is rewritten too
(``update_display_data`` on its display id), with the static card only: what the notebook saves is the present.

The page was not told about the restart (see :mod:`uvextra.kernel.restart_helper`), so it goes on sending comm
messages over the subshell it made in the old kernel, which this one refuses (``Unknown subshell_id``): a widget's
first click would work, every later one be dropped. A ``status: restarting`` would make JupyterLab forget those
ids, but it answers that status as a crash ("The kernel … appears to have died"), so this kernel does it itself:
comm messages addressed to a subshell it does not have run on its main shell (ipykernel 7.4's comm routing hook,
``BaseComm._reply_subshell_for``; the card's own widgets always do, see :mod:`uvextra.widgets`).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any


def _send(kernel: Any, comm_id: str, state: dict[str, Any]) -> None:
    content = {"comm_id": comm_id, "data": {"method": "update", "state": state, "buffer_paths": []}}
    kernel.session.send(
        kernel.iopub_socket, "comm_msg", content, parent=kernel.get_parent(), ident=f"comm-{comm_id}".encode()
    )


def _card(payload: dict[str, Any], said: str) -> tuple[str, dict[str, Any]]:
    """The card's HTML as this kernel sees the environment, and the output bundle that says the same."""
    from . import magic
    from .render.card import render_error, render_html, render_static
    from .render.markdown import render_markdown
    from .render.text import render_plain

    session = magic._current
    if session is None:
        line = f"{said}; %uvextra is not loaded in the new kernel (`%load_ext uvextra`)"
        return render_error(line), {"text/html": render_static(render_error(line)), "text/plain": f"uvextra: {line}"}
    from .core import verbs as core
    from .core.vocabulary import KernelState
    from .kernel.record import MIME, make_record

    try:
        report = core.check(
            payload.get("project"),
            None,
            payload.get("extras") or None,
            probe=bool(payload.get("probe", True)),
            command="status",
        )
    except Exception as exc:  # noqa: BLE001 - the card still says that the restart happened
        line = f"{said}; checking the environment failed: {exc}"
        return render_error(line), {"text/html": render_static(render_error(line)), "text/plain": f"uvextra: {line}"}
    probe = report.probe
    if probe is not None and probe.flavour is not None:
        said += f"; torch {probe.torch_version} ({probe.flavour.name} build)"
    state = KernelState(stale=[], restart=session.restart_plan())
    card = render_html(report, state, note=said)
    return render_html(report, state, note=said, in_card=True), {
        "text/html": render_static(card),
        "text/markdown": f"> {said}\n\n" + render_markdown(report, state),
        "text/plain": f"uvextra: {said}\n" + render_plain(report, state),
        MIME: make_record(report),
    }


def announce(payload_json: str) -> None:
    """Redraw the card whose Restart was clicked (widget ids in the payload); never raises."""
    try:
        from IPython import get_ipython

        kernel = getattr(get_ipython(), "kernel", None)
        payload = json.loads(payload_json or "{}")
        if kernel is None or not payload.get("body"):
            return
        said = f"restarted at {time.strftime('%H:%M:%S')}: a new kernel process ({os.getpid()})"
        card, bundle = _card(payload, said)
        _send(kernel, payload["body"], {"value": card})
        for layout in payload.get("hide") or []:
            _send(kernel, layout, {"display": "none"})
        if payload.get("display"):
            kernel.session.send(
                kernel.iopub_socket,
                "update_display_data",
                {"data": bundle, "metadata": {}, "transient": {"display_id": payload["display"]}},
                parent=kernel.get_parent(),
                ident=b"display_data",
            )
    except Exception:  # noqa: BLE001 - silent code in a fresh kernel: nothing may show up as an error
        pass
    adopt_old_subshells()


def adopt_old_subshells() -> None:
    """Run comm messages that name a subshell this kernel does not have on its main shell; never raises."""
    try:
        from ipykernel.comm.comm import BaseComm
        from IPython import get_ipython

        kernel = getattr(get_ipython(), "kernel", None)
        manager = getattr(getattr(kernel, "shell_channel_thread", None), "manager", None)
        route = getattr(BaseComm, "_reply_subshell_for", None)
        if manager is None or route is None or getattr(route, "uvextra", False):
            return

        def reply_subshell_for(comm: Any, data: Any, default: Any) -> Any:
            subshell = route(comm, data, default)
            return None if subshell is not None and subshell not in manager.list_subshell() else subshell

        reply_subshell_for.uvextra = True  # type: ignore[attr-defined]
        setattr(BaseComm, "_reply_subshell_for", reply_subshell_for)  # noqa: B010 - a method of a class mypy knows
    except Exception:  # noqa: BLE001 - an ipykernel without subshells: nothing to adopt
        return
