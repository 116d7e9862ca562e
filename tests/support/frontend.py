"""A frontend over jupyter_client, as JupyterLab is one: the kernel, its widget models and outputs by display id.

Tests drive real kernels through it: they run cells, follow the widgets' comm messages to know what the card shows, and
click buttons with the comm message a browser sends.
"""

from __future__ import annotations

import asyncio
import html
import re
from pathlib import Path
from typing import Any

TIMEOUT = 90


class Frontend:
    """A kernel and a client, plus what a frontend keeps: widget models and the outputs by display id."""

    def __init__(self, kernels_dir: Path, name: str, cwd: Path, *, time_to_dead: float = 3.0) -> None:
        self.kernels_dir, self.name, self.cwd, self.time_to_dead = kernels_dir, name, cwd, time_to_dead
        self.models: dict[str, dict[str, Any]] = {}  # comm id -> widget state
        self.displays: dict[str, dict[str, str]] = {}  # display id -> latest mime bundle
        self.km: Any = None
        self.kc: Any = None

    @classmethod
    async def connect(cls, connection_file: Path) -> Frontend:
        """Attach to a kernel someone else (a Jupyter server) owns, as a second frontend would."""
        from jupyter_client.asynchronous import AsyncKernelClient

        fe = cls(connection_file.parent, "", connection_file.parent)
        fe.kc = AsyncKernelClient(connection_file=str(connection_file))
        fe.kc.load_connection_file()
        fe.kc.start_channels()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIMEOUT
        while True:  # without a KernelManager, jupyter_client calls a kernel still starting "died" (busy machines)
            try:
                await fe.kc.wait_for_ready(timeout=max(1.0, deadline - loop.time()))
                return fe
            except RuntimeError:
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.2)

    async def start(self) -> Frontend:
        from jupyter_client.ioloop import AsyncIOLoopKernelManager
        from jupyter_client.kernelspec import KernelSpecManager
        from traitlets.config import Config

        # An IOLoop manager runs jupyter_client's auto-restarter (as a notebook server does for its kernels).
        config = Config({"KernelRestarter": {"time_to_dead": self.time_to_dead, "stable_start_time": 1.0}})
        self.km = AsyncIOLoopKernelManager(
            kernel_name=self.name,
            kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(self.kernels_dir)]),
            config=config,
        )
        await self.km.start_kernel(cwd=str(self.cwd))
        self.kc = self.km.client()
        self.kc.start_channels()
        await self.kc.wait_for_ready(timeout=TIMEOUT)
        return self

    async def stop(self) -> None:
        if self.kc is not None:
            self.kc.stop_channels()
        if self.km is not None and self.km.has_kernel:
            await self.km.shutdown_kernel(now=True)

    def _track(self, msg: dict[str, Any]) -> None:
        kind, content = msg["msg_type"], msg["content"]
        if kind == "comm_open" and content.get("target_name") == "jupyter.widget":
            self.models[content["comm_id"]] = dict(content["data"]["state"])
        elif kind == "comm_msg" and content["data"].get("method") in ("update", "echo_update"):
            self.models.setdefault(content["comm_id"], {}).update(content["data"]["state"])
        elif kind in ("display_data", "update_display_data"):
            display_id = (content.get("transient") or {}).get("display_id")
            if display_id:
                self.displays[display_id] = content["data"]

    async def _until_idle(self, msg_id: str) -> list[dict[str, Any]]:
        seen = []
        while True:
            msg = await self.kc.get_iopub_msg(timeout=TIMEOUT)
            self._track(msg)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            seen.append(msg)
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return seen

    async def run(self, code: str) -> list[dict[str, Any]]:
        """Execute a cell; returns its iopub messages. Fails on an error (there should never be a traceback)."""
        messages = await self._until_idle(self.kc.execute(code))
        errors = [m["content"] for m in messages if m["msg_type"] == "error"]
        assert not errors, errors
        return messages

    async def stdout(self, code: str) -> str:
        return "".join(
            m["content"]["text"]
            for m in await self.run(code)
            if m["msg_type"] == "stream" and m["content"]["name"] == "stdout"
        )

    async def send_comm(
        self, comm_id: str, data: dict[str, Any], *, subshell_id: str | None = None, wait: bool = True
    ) -> list[dict[str, Any]]:
        """What a browser sends when the user clicks a button or picks a toggle (JupyterLab 4.6: over the subshell
        ``subshell_id``); ``wait=False`` returns at once, with no messages."""
        msg = self.kc.session.msg("comm_msg", {"comm_id": comm_id, "data": data})
        if subshell_id is not None:
            msg["header"]["subshell_id"] = subshell_id
        self.kc.shell_channel.send(msg)
        return await self._until_idle(msg["header"]["msg_id"]) if wait else []

    async def create_subshell(self) -> str:
        """A kernel subshell, as JupyterLab 4.6 makes one per comm target (JEP 91, control channel)."""
        msg = self.kc.session.msg("create_subshell_request", {})
        self.kc.control_channel.send(msg)
        while True:
            reply = await self.kc.get_control_msg(timeout=TIMEOUT)
            if reply["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
                return str(reply["content"]["subshell_id"])

    # -- the card as a user sees it ---------------------------------------------------------------------------
    def widget(self, css_class: str) -> str:
        """The comm id of the newest widget carrying ``css_class`` (what a browser test's selector finds)."""
        found = [cid for cid, state in self.models.items() if css_class in state.get("_dom_classes", ())]
        assert found, f"no widget with class {css_class}"
        return found[-1]

    def visible(self, css_class: str) -> bool:
        state = self.models[self.widget(css_class)]
        layout = self.models.get(str(state.get("layout", "")).removeprefix("IPY_MODEL_"), {})
        return layout.get("display") != "none" and not state.get("disabled", False)

    def card(self) -> str:
        """What the newest live card shows now (its body widget), as a reader sees it: tags dropped."""
        markup = self.models[self.widget("uvextra-body")]["value"]
        inline = re.sub(r"</?(code|b|span)\b[^>]*>", "", markup)
        return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", inline)).split())

    def output(self, messages: list[dict[str, Any]]) -> dict[str, str]:
        """The mime bundle of the output the cell displayed (the card), as it stands now."""
        ids = [
            (m["content"].get("transient") or {}).get("display_id") for m in messages if m["msg_type"] == "display_data"
        ]
        assert ids and ids[-1], "the cell displayed no card"
        return self.displays[ids[-1]]

    def card_text(self, messages: list[dict[str, Any]]) -> str:
        """The plain text of the card's static fallback (written when its cell finished)."""
        return self.output(messages)["text/plain"]
