"""uvextra's caches (``uvextra.cache``) and the readers that replaced library imports on the check path.

* every on-disk entry is content-addressed, written atomically, and the folder stays bounded;
* the target interpreter is asked for its markers and tags once, until something that changes them changes;
* ``installed.read_headers`` reads METADATA/WHEEL exactly as ``email``'s compat32 ``HeaderParser`` does, and
  ``names.canonicalize_name`` normalizes exactly as ``packaging.utils.canonicalize_name`` does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from email.parser import HeaderParser
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.utils import canonicalize_name as packaging_canonicalize_name

from uvextra.core import cache, environment
from uvextra.core.environment import interpreter_info
from uvextra.core.installed import name_and_version, read_dist_info, read_headers
from uvextra.core.names import canonicalize_name

# ------------------------------------------------------------------------------------------------ the cache module


def test_entries_are_content_addressed_and_written_atomically(tmp_path):
    a = cache.entry(tmp_path, "kind", "one", b"two")
    assert a == cache.entry(tmp_path, "kind", "one", b"two")
    assert a != cache.entry(tmp_path, "kind", "onet", b"wo") != cache.entry(tmp_path, "other", "one", b"two")
    assert a.parent == tmp_path / cache.FOLDER and a.name.startswith("kind-") and a.suffix == ".json"
    assert cache.read_json(a, dict) is None
    assert cache.write_json(a, {"x": 1})
    assert cache.read_json(a, dict) == {"x": 1}
    assert [p.name for p in a.parent.iterdir()] == [a.name]  # no temporary file left
    a.write_text("{not json", encoding="utf-8")
    assert cache.read_json(a, dict) is None  # a broken entry is a miss, never an error
    assert cache.read_json(a, lambda data: data["missing"]) is None


def test_the_folder_is_bounded_and_the_least_recently_used_go_first(tmp_path):
    folder = tmp_path / cache.FOLDER
    paths = []
    for i in range(12):
        path = cache.entry(tmp_path, "e", str(i), suffix=".toml")
        assert cache.write_text(path, f"{i}\n", keep=5)
        os.utime(path, (1000 + i, 1000 + i))  # a clear order of use
        paths.append(path)
    assert len(list(folder.iterdir())) == 5
    os.utime(paths[7], (5000, 5000))  # used again: the newest now
    (folder / ".left-by-a-killed-writer.123.tmp").write_text("x")
    os.utime(folder / ".left-by-a-killed-writer.123.tmp", (1, 1))
    newest = cache.entry(tmp_path, "e", "new", suffix=".toml")
    assert cache.write_text(newest, "new\n", keep=5)
    left = sorted(p.name for p in folder.iterdir())
    assert len(left) == 5 and newest.name in left and paths[7].name in left and paths[8].name not in left
    assert not any(name.endswith(".tmp") for name in left)


def test_a_read_only_folder_is_no_cache_and_no_error(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root may write anywhere")
    tmp_path.chmod(0o500)
    try:
        path = cache.entry(tmp_path, "e", "x")
        assert not cache.write_json(path, [1]) and cache.read_json(path, list) is None
        assert not cache.atomic_write(tmp_path / "state.json", "{}")
    finally:
        tmp_path.chmod(0o700)


def test_memo_is_bounded():
    memo: cache.Memo[int, int] = cache.Memo(3)
    calls = []
    for key in (1, 2, 1, 3, 4, 1):
        memo.get(key, lambda key=key: calls.append(key) or key * 10)
    assert calls == [1, 2, 3, 4, 1] and len(memo) == 3  # 1 was dropped (oldest) when 4 came, so read again


def test_sha256_is_sha256():
    import hashlib

    assert cache.sha256(b"abc").hexdigest() == hashlib.sha256(b"abc").hexdigest()
    big = "x" * cache._LARGE
    assert cache.digest(big, "y") == hashlib.sha256(big.encode() + b"\0y\0").hexdigest()[:32]
    assert cache.digest("x", "y") == hashlib.sha256(b"x\0y\0").hexdigest()[:32]


# ------------------------------------------------------------------------------------------------ the interpreter


@pytest.fixture
def venv(tmp_path) -> Path:
    path = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    return path


def test_the_interpreter_is_asked_once_until_what_changes_its_answer_changes(venv, monkeypatch):
    python = str(venv / "bin" / "python")
    asked = []
    real = environment._ask_interpreter

    def ask(python: str):
        asked.append(python)
        return real(python)

    monkeypatch.setattr(environment, "_ask_interpreter", ask)
    interpreter_info.cache_clear()
    first = interpreter_info(python)
    assert not (venv / ".uvextra").exists()  # a venv uvextra never worked in is left as it is
    (venv / ".uvextra").mkdir()
    interpreter_info.cache_clear()
    assert interpreter_info(python) == first and asked == [python, python]  # asked again, and kept this time
    asked.clear()
    assert first.tags and first.marker_env["implementation_name"]
    entries = list((venv / ".uvextra" / cache.FOLDER).glob("interp-*.json"))
    assert len(entries) == 1 and json.loads(entries[0].read_text())["tags"] == list(first.tags)
    interpreter_info.cache_clear()  # as a new process would start
    assert interpreter_info(python) == first and asked == []
    cfg = venv / "pyvenv.cfg"
    cfg.write_text(cfg.read_text() + "# changed\n")  # e.g. the venv recreated over another base interpreter
    interpreter_info.cache_clear()
    assert interpreter_info(python) == first and asked == [python]
    interpreter_info.cache_clear()


def test_the_running_interpreter_and_one_outside_a_venv_are_still_answered(tmp_path):
    interpreter_info.cache_clear()
    here = interpreter_info(sys.executable)
    assert here.tags and here.marker_env["python_version"] == f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert environment._interpreter_entry(str(tmp_path / "not-a-venv" / "python")) is None
    interpreter_info.cache_clear()


# ------------------------------------------------------------------------------------------------ the readers

_PARSER = HeaderParser()


def _email_headers(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in _PARSER.parsestr(text, headersonly=True).items():
        out.setdefault(name.lower(), []).append(str(value))
    return out


_PIECES = [
    "Name",
    "Version",
    "Requires-Dist",
    "Tag",
    ":",
    ": ",
    " ",
    "\t",
    "\n",
    "\r",
    "\r\n",
    "From ",
    "x",
    "é",
    "1.0",
    "\x0c",
    "\x1c",
    "\u2028",
    ";",
    "a b",
    "é:",
    "\n\n",
]


@settings(max_examples=int(os.environ.get("UVEXTRA_PROP_EXAMPLES", "300")), deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=30).map("".join) | st.text(max_size=60))
def test_headers_are_read_as_email_reads_them(text):
    assert read_headers(text) == _email_headers(text)


@pytest.mark.parametrize(
    "text",
    [
        "Metadata-Version: 2.4\nName: Torch\nVersion: 2.9.0+cpu \nRequires-Dist: a\nRequires-Dist: b; extra == 'x'\n\n"
        "Name: the body\n",
        "Name: a\r\nVersion:  1\r\n  continued\r\n\r\n",
        "From someone\nName: a\n",
        ":no name\nName: b\n",
        " leading continuation\nName: c\n",
        "Name: a\nnot a header line\nVersion: 2\n",
        "Wheel-Version: 1.0\nTag: a\nTag: b",
        "",
        "\n",
        "Name: a\rVersion: b\r",
        "Name: a\nFrom b\nVersion: c\n",
        "Name: a\nFrom b",
    ],
)
def test_headers_of_real_shapes(text):
    assert read_headers(text) == _email_headers(text)


@given(st.text(alphabet="aZ09-_.~ é", max_size=20))
def test_names_are_normalized_as_packaging_normalizes_them(name):
    assert canonicalize_name(name) == packaging_canonicalize_name(name)


def test_the_kernel_and_the_scan_read_a_dist_info_alike(tmp_path):
    info = tmp_path / "Foo_Bar-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: Foo_Bar\nVersion: 1.0 \nRequires-Dist: x>=1\n\nbody")
    (info / "WHEEL").write_text("Wheel-Version: 1.0\nTag: py3-none-any\n")
    (info / "RECORD").write_text("foo_bar/__init__.py,,\n")
    dist = read_dist_info(info)
    assert dist is not None and (dist.name, dist.version, dist.wheel_tags, dist.requires) == (
        "foo-bar",
        "1.0",
        ("py3-none-any",),
        ("x>=1",),
    )
    assert name_and_version(info) == ("foo-bar", "1.0")
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: Foo_Bar\n")
    assert read_dist_info(info) is None and name_and_version(info) is None


def test_check_path_imports_stay_light():
    """What a cached check does not need is not imported by the modules it uses (a CLI call pays every import)."""
    code = (
        "import sys, uvextra.cli, uvextra.core.verbs, uvextra.core.installed, uvextra.core.lock, uvextra.core.environment;"
        "print(sorted(m for m in ('email.parser', 'packaging.pylock', 'packaging.tags', 'packaging.requirements',"
        " 'packaging.utils', 'subprocess', 'importlib.metadata', 'hashlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out
