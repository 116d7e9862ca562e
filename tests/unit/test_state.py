"""uvextra's own records inside a venv (``uvextra.core.state``): ``state.json`` written and read back, what an
unreadable record reads as, and one switch at a time per venv — on real files in a temporary folder.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from uvextra.core.environment import Environment
from uvextra.core.errors import UvextraError
from uvextra.core.project import Backend, kind_of
from uvextra.core.state import (
    LOCK_FILE,
    STATE_FILE,
    STATE_VERSION,
    Provenance,
    State,
    load_state,
    save_state,
    switch_lock,
)


@pytest.fixture
def env(tmp_path: Path) -> Environment:
    prefix = tmp_path / "venv"
    (prefix / "bin").mkdir(parents=True)
    (prefix / "pyvenv.cfg").write_text("home = /usr/bin\n", encoding="utf-8")
    return Environment(prefix=prefix, python=prefix / "bin" / "python")


def full_state() -> State:
    return State(
        extras=[Backend("cu128"), Backend("Dev_Tools", "group")],
        project="/work/moo",
        packages={
            "torch": Provenance(
                "2.9.0+cu128", "registry", "http://127.0.0.1:8000/cu128/", "torch.whl", "ab" * 32, "f1"
            ),
            "moo": Provenance("0.1.0", "editable", None, None, None, "f2"),
        },
        owned=["nvidia-cublas-cu12", "torch"],  # stored sorted
        requested=[Backend("cpu")],
        requested_failure="uv sync exited 2",
        requested_changed=False,
        no_default_groups=True,
    )


def test_a_saved_state_reads_back_equal_with_each_backends_kind(env: Environment) -> None:
    saved = full_state()
    assert save_state(env, saved) is True
    loaded = load_state(env)
    assert loaded == saved
    assert [(str(b), kind_of(b)) for b in loaded.extras] == [("cu128", "extra"), ("dev-tools", "group")]
    assert [(str(b), kind_of(b)) for b in loaded.requested] == [("cpu", "extra")]


def test_saving_stamps_the_time_and_writes_one_json_file_in_the_state_folder(env: Environment) -> None:
    before = time.time()
    state = State(extras=[Backend("cpu")])
    assert save_state(env, state)
    assert before <= state.updated <= time.time()
    assert sorted(p.name for p in env.state_dir.iterdir()) == [STATE_FILE]  # no temporary file left beside it
    data = json.loads((env.state_dir / STATE_FILE).read_text(encoding="utf-8"))
    assert data["version"] == STATE_VERSION and data["extras"] == ["cpu"] and data["kinds"]["extras"] == ["extra"]


def test_owned_names_are_stored_once_and_sorted(env: Environment) -> None:
    assert save_state(env, State(owned=["torch", "filelock", "torch"]))
    assert load_state(env).owned == ["filelock", "torch"]


def test_no_record_reads_as_an_empty_state(env: Environment) -> None:
    assert load_state(env) == State()


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        "[]",
        json.dumps({"version": STATE_VERSION + 1, "extras": ["cpu"]}),  # a newer uvextra's layout
        json.dumps({"version": STATE_VERSION, "packages": {"torch": {"version": "2.9.0"}}}),  # a record cut short
        json.dumps({"version": STATE_VERSION, "packages": ["torch"]}),
    ],
    ids=["not-json", "not-an-object", "other-version", "missing-fields", "wrong-type"],
)
def test_a_record_that_cannot_be_read_reads_as_an_empty_state(env: Environment, text: str) -> None:
    env.state_dir.mkdir(parents=True)
    (env.state_dir / STATE_FILE).write_text(text, encoding="utf-8")
    assert load_state(env) == State()


def test_a_record_from_before_kinds_were_stored_reads_its_backends_as_extras(env: Environment) -> None:
    env.state_dir.mkdir(parents=True)
    old = {"version": STATE_VERSION, "extras": ["cu128"], "project": "/p", "packages": {}, "updated": 5}
    (env.state_dir / STATE_FILE).write_text(json.dumps(old), encoding="utf-8")
    loaded = load_state(env)
    assert (loaded.extras, [kind_of(b) for b in loaded.extras], loaded.project) == (["cu128"], ["extra"], "/p")
    assert (loaded.requested_changed, loaded.no_default_groups, loaded.updated) == (True, False, 5.0)


def test_a_venv_that_cannot_be_written_keeps_nothing_half_written(tmp_path: Path) -> None:
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("", encoding="utf-8")  # the state folder's parent is a file: every write fails, even as root
    env = Environment(prefix=blocker, python=blocker / "bin" / "python")
    assert save_state(env, full_state()) is False
    assert load_state(env) == State()


# ------------------------------------------------------------------------------------------------ switch_lock


def test_the_lock_records_who_holds_it(env: Environment) -> None:
    with switch_lock(env):
        assert (env.state_dir / LOCK_FILE).read_text() == str(os.getpid())


def test_a_second_switch_waits_saying_who_holds_the_venv_then_runs(env: Environment) -> None:
    order: list[str] = []
    said: list[str] = []
    holding = threading.Event()

    def first() -> None:
        with switch_lock(env):
            order.append("first in")
            holding.set()
            time.sleep(0.5)
            order.append("first out")

    thread = threading.Thread(target=first)
    thread.start()
    assert holding.wait(10)
    with switch_lock(env, on_wait=said.append):
        order.append("second in")
    thread.join()
    assert order == ["first in", "first out", "second in"]
    assert said == [f"another uvextra is changing {env.prefix} (process {os.getpid()}); waiting for it to finish…"]


def test_a_switch_that_waits_too_long_gives_up_in_one_line(env: Environment) -> None:
    with switch_lock(env), pytest.raises(UvextraError) as caught, switch_lock(env, timeout=0.3):
        pass
    assert str(caught.value) == f"another uvextra has been changing {env.prefix} for 0 s; retry later"


def test_the_lock_is_free_again_after_an_error_inside_it(env: Environment) -> None:
    with pytest.raises(RuntimeError), switch_lock(env):
        raise RuntimeError("uv failed")
    with switch_lock(env, timeout=0.3):  # would raise if the first still held it
        pass


def test_a_venv_that_cannot_be_written_is_refused_saying_what_to_do(tmp_path: Path) -> None:
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("", encoding="utf-8")
    env = Environment(prefix=blocker, python=blocker / "bin" / "python")
    with pytest.raises(UvextraError) as caught, switch_lock(env):
        pass
    message = str(caught.value)
    assert message.startswith(f"the environment {blocker} is not writable (")
    assert message.endswith(
        "uvextra changes nothing there — ask the image's admin, or create your own venv (`uv venv`) and start the "
        "kernel from it"
    )
