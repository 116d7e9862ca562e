"""Property tests on every reader of outside input: any input gives a result or a UvextraError, never another exception.

The readers are those of ``pyproject.toml`` (:func:`uvextra.project.load_project`), ``uv.lock``
(:func:`uvextra.lock.read_uv_lock`), uv's PEP 751 export (:func:`uvextra.lock.wanted_from_pylock`) and a venv's
``.dist-info`` folders (:func:`uvextra.installed.read_dist_info`). Each gets both arbitrary bytes/text and
structurally plausible documents whose values have the wrong types, since real files are mostly well-formed TOML
with something unexpected inside.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from uvextra.core.environment import Environment
from uvextra.core.errors import UvextraError
from uvextra.core.installed import Installed, read_dist_info
from uvextra.core.lock import LockInfo, Wanted, read_uv_lock, wanted_from_pylock
from uvextra.core.project import Project, load_project

SETTINGS = settings(
    max_examples=int(__import__("os").environ.get("UVEXTRA_PROP_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# ------------------------------------------------------------------------------------------------ a tiny TOML writer

_BARE = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


def _key(k: str) -> str:
    return k if k and set(k) <= _BARE else json.dumps(k)


def _value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # JSON string escapes are valid TOML basic-string escapes for these values
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def to_toml(doc: dict) -> str:
    """Top-level ``key = value`` lines with inline tables/arrays: valid TOML for any JSON-like document."""
    return "".join(f"{_key(k)} = {_value(v)}\n" for k, v in doc.items())


# ------------------------------------------------------------------------------------------------ strategies

# Text TOML can carry (no surrogates; tomllib rejects most control characters, which is fine: they give errors).
_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
_names = st.sampled_from(["torch", "numpy", "Torch_Foo", "a", "", " ", "x.y", "ünï", "cpu; rm -rf /", "$(touch pwned)"])
_scalars = st.one_of(
    _text,
    _names,
    st.integers(-5, 10**20),
    st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
)


def _nested(inner: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    # a named function, not a lambda: hypothesis reads a lambda's source to see that it recurses, and loses it
    # once the formatter spreads the call over several lines
    return st.one_of(st.lists(inner, max_size=4), st.dictionaries(_text, inner, max_size=4))


_json_like = st.recursive(_scalars, _nested, max_leaves=12)


def _maybe(strategy: st.SearchStrategy) -> st.SearchStrategy:
    """Mostly the plausible value, sometimes anything at all."""
    return st.one_of(strategy, strategy, _json_like)


def _opt_fields(**fields: st.SearchStrategy) -> st.SearchStrategy:
    return st.fixed_dictionaries({}, optional={k: _maybe(v) for k, v in fields.items()})


_extra_names = st.lists(_names | _text, max_size=4)
_pyproject_doc = st.fixed_dictionaries(
    {},
    optional={
        "project": _maybe(
            _opt_fields(
                name=_names | _text,
                version=st.just("0.1.0"),
                **{"optional-dependencies": st.dictionaries(_names | _text, st.lists(_text, max_size=2), max_size=4)},
            )
        ),
        "tool": _maybe(
            st.fixed_dictionaries(
                {},
                optional={
                    "uv": _maybe(
                        _opt_fields(
                            conflicts=st.lists(
                                st.lists(_maybe(st.fixed_dictionaries({"extra": _names | _text})), max_size=3),
                                max_size=2,
                            ),
                            index=st.lists(
                                _opt_fields(name=_text, url=_text | st.just("https://u:s3cret@example.invalid/simple")),
                                max_size=3,
                            ),
                        )
                    )
                },
            )
        ),
    },
)

_lock_package = _opt_fields(
    name=_names | _text,
    version=st.sampled_from(["2.9.0", "2.9.0+cpu", "", "bogus"]) | _text,
    source=_opt_fields(registry=_text, editable=_text, virtual=_text),
    dependencies=st.lists(_opt_fields(name=_names | _text, extra=st.lists(_text, max_size=2)), max_size=3),
)
_uv_lock_doc = st.fixed_dictionaries(
    {"version": _maybe(st.just(1))},
    optional={"revision": st.integers(0, 5), "package": _maybe(st.lists(_lock_package, max_size=4))},
)

_sha = st.sampled_from(["0" * 64, "ab" * 32, "zz", ""]) | _text
_wheel_entry = _opt_fields(
    name=st.sampled_from(
        [
            "torch-2.9.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl",
            "torch-2.9.0-py3-none-any.whl",
            "not a wheel.whl",
            "x",
        ]
    )
    | _text,
    url=st.sampled_from(["http://127.0.0.1:1/files/torch-2.9.0-py3-none-any.whl", "http://[bad", "file:///tmp/x.whl"])
    | _text,
    path=_text,
    hashes=st.dictionaries(st.sampled_from(["sha256", "md5"]) | _text, _sha, max_size=2),
    size=st.integers(-1, 10**6),
)
_pylock_package = _opt_fields(
    name=_names | _text,
    version=st.sampled_from(["2.9.0", "2.9.0+cpu", "1!2", "bad version"]) | _text,
    index=st.sampled_from(["http://127.0.0.1:1/cpu/simple/", "https://user:pw@example.invalid/simple"]) | _text,
    marker=st.sampled_from(["python_version >= '3'", "extra == 'cpu'", "os_name == 'nt'", "bogus ==="]) | _text,
    **{"requires-python": st.sampled_from([">=3.10", "<3", "junk"]) | _text},
    wheels=st.lists(_wheel_entry, max_size=2),
    directory=_opt_fields(path=_text, editable=st.booleans()),
    archive=_opt_fields(url=_text, path=_text, hashes=st.dictionaries(_text, _sha, max_size=1)),
    vcs=_opt_fields(type=st.just("git"), url=_text, **{"commit-id": _text}),
    sdist=_opt_fields(name=_text, url=_text, hashes=st.dictionaries(_text, _sha, max_size=1)),
)
_pylock_doc = st.fixed_dictionaries(
    {"lock-version": _maybe(st.sampled_from(["1.0", "1.5", "2.0"])), "created-by": _maybe(st.just("uv"))},
    optional={
        "requires-python": _maybe(st.sampled_from([">=3.11", ">=4", "junk"])),
        "environments": _maybe(st.lists(st.sampled_from(["sys_platform == 'linux'", "bogus ==="]), max_size=2)),
        "packages": _maybe(st.lists(_pylock_package, max_size=4)),
    },
)


# ------------------------------------------------------------------------------------------------ helpers


@pytest.fixture(scope="module")
def scratch():
    folder = Path(tempfile.mkdtemp(prefix="uvextra-props-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _fresh(scratch: Path) -> Path:
    folder = Path(tempfile.mkdtemp(dir=scratch))
    return folder


def _load_pyproject(scratch: Path, data: bytes) -> Project | None:
    root = _fresh(scratch)
    (root / "pyproject.toml").write_bytes(data)
    try:
        project = load_project(root)
    except UvextraError as exc:
        assert str(exc) and "\n" not in str(exc)
        return None
    assert isinstance(project, Project)
    assert all(isinstance(e, str) for e in project.extras)
    assert all(isinstance(e, str) for group in project.conflict_sets for e in group)
    assert "s3cret" not in repr(project.indexes)
    # validate_extras on anything must also answer with a result or the clean error.
    for extras in (list(project.extras[:1]), list(project.extras[:2]), ["nope"]):
        try:
            project.validate_extras(extras)
        except UvextraError:
            pass
    return project


def _project_at(root: Path) -> Project:
    return Project(root=root, name="p", extras=("cpu", "pypi"), conflict_sets=(("cpu", "pypi"),))


def _read_lock(scratch: Path, data: bytes) -> LockInfo | None:
    root = _fresh(scratch)
    (root / "uv.lock").write_bytes(data)
    try:
        info = read_uv_lock(_project_at(root))
    except UvextraError as exc:
        assert str(exc) and "\n" not in str(exc)
        return None
    assert isinstance(info, LockInfo)
    for name, version in info.sources:
        info.ambiguous(name, version)
    return info


@pytest.fixture(scope="module")
def this_env() -> Environment:
    # The running interpreter: interpreter_info answers in-process (no subprocess per example).
    return Environment(prefix=Path(sys.prefix).absolute(), python=Path(sys.executable).absolute())


def _read_pylock(scratch: Path, env: Environment, text: str) -> dict | None:
    try:
        wanted = wanted_from_pylock(text, _project_at(scratch), env)
    except UvextraError as exc:
        assert str(exc) and "\n" not in str(exc)
        return None
    for name, w in wanted.items():
        assert isinstance(w, Wanted) and w.name == name
        w.to_dict(), w.source_label
    return wanted


# ------------------------------------------------------------------------------------------------ pyproject.toml


@SETTINGS
@given(st.binary(max_size=400))
def test_load_project_any_bytes(scratch, data):
    _load_pyproject(scratch, data)


@SETTINGS
@given(st.text(st.sampled_from(list("[]{}=\"'.,\n #-_abcxyz019ü\\")), max_size=300))
def test_load_project_toml_ish_text(scratch, text):
    _load_pyproject(scratch, text.encode("utf-8"))


@SETTINGS
@given(_pyproject_doc)
# found by this test: an index without a name was keyed by its URL, credentials and all
@example({"tool": {"uv": {"index": [{"url": "https://u:s3cret@example.invalid/simple"}]}}})
def test_load_project_wrong_types(scratch, doc):
    _load_pyproject(scratch, to_toml(doc).encode("utf-8"))


def test_load_project_reports_file_and_line(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\noptional-dependencies = {cpu = [}\n')
    with pytest.raises(UvextraError) as err:
        load_project(tmp_path)
    assert str(tmp_path / "pyproject.toml") in str(err.value) and "line 3" in str(err.value)


# ------------------------------------------------------------------------------------------------ uv.lock


@SETTINGS
@given(st.binary(max_size=400))
def test_read_uv_lock_any_bytes(scratch, data):
    _read_lock(scratch, data)


@SETTINGS
@given(_uv_lock_doc)
@example({"version": 1, "package": [{"name": "torch", "dependencies": 1}]})  # found: TypeError
@example({"version": 1, "package": [{"name": "torch", "source": "registry", "dependencies": "numpy"}]})
def test_read_uv_lock_wrong_types(scratch, doc):
    _read_lock(scratch, to_toml(doc).encode("utf-8"))


# ------------------------------------------------------------------------------------------------ pylock export


@SETTINGS
@given(st.text(max_size=300))
def test_wanted_from_pylock_any_text(scratch, this_env, text):
    _read_pylock(scratch, this_env, text)


@SETTINGS
@given(_pylock_doc)
@example({"lock-version": "1.0", "created-by": "uv", "environments": ["bogus ==="]})  # found: a 3-line error
def test_wanted_from_pylock_wrong_types(scratch, this_env, doc):
    _read_pylock(scratch, this_env, to_toml(doc))


def test_wanted_from_pylock_valid_document(scratch, this_env):
    """The happy path still works: the checks above are not satisfied by always raising."""
    doc = {
        "lock-version": "1.0",
        "created-by": "uv",
        "requires-python": ">=3.10",
        "packages": [
            {
                "name": "torch",
                "version": "2.9.0+cpu",
                "index": "https://u:pw@example.invalid/cpu/simple",
                "wheels": [
                    {
                        "name": "torch-2.9.0+cpu-py3-none-any.whl",
                        "url": "https://example.invalid/torch-2.9.0+cpu-py3-none-any.whl",
                        "hashes": {"sha256": "ab" * 32},
                    }
                ],
            }
        ],
    }
    wanted = _read_pylock(scratch, this_env, to_toml(doc))
    assert wanted is not None and wanted["torch"].version == "2.9.0+cpu"
    assert wanted["torch"].kind == "index" and "pw" not in (wanted["torch"].index or "")


# ------------------------------------------------------------------------------------------------ .dist-info

_FILES = ("METADATA", "WHEEL", "direct_url.json", "RECORD", "INSTALLER")
_metadata_text = st.one_of(
    st.binary(max_size=300),
    st.builds(
        lambda name, version, reqs, tail: (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
            + "".join(f"Requires-Dist: {r}\n" for r in reqs)
            + tail
        ).encode("utf-8", "surrogatepass"),
        _names | _text,
        st.sampled_from(["2.9.0", "2.9.0+cpu", " ", "ünï"]) | _text,
        st.lists(st.sampled_from(["numpy", "nvidia-x; extra == 'cu'", "bad req ===", "a (>=1)"]) | _text, max_size=3),
        _text,
    ),
)
_direct_url = st.one_of(
    st.binary(max_size=200),
    _json_like.map(lambda v: json.dumps(v).encode()),
    st.builds(
        lambda url, extra: json.dumps({"url": url, **extra}).encode(),
        st.sampled_from(["file:///tmp/x", "http://[bad", "https://u:pw@h/x.whl", "file://%00"]) | _text,
        st.fixed_dictionaries(
            {}, optional={"dir_info": _json_like, "vcs_info": _json_like, "archive_info": _json_like}
        ),
    ),
)


@SETTINGS
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "METADATA": _metadata_text,
            "WHEEL": st.binary(max_size=200) | _text.map(lambda t: f"Tag: {t}\n".encode()),
            "direct_url.json": _direct_url,
            "RECORD": st.binary(max_size=200),
            "INSTALLER": st.binary(max_size=20),
        },
    )
)
# found by this test: a direct_url.json that is not an object, an unparsable URL, a dir_info that is not an object
@example({"METADATA": b"Name: x\nVersion: 1\n", "direct_url.json": b'""'})
@example({"METADATA": b"Name: x\nVersion: 1\n", "direct_url.json": b'{"url": "http://[bad"}'})
@example({"METADATA": b"Name: x\nVersion: 1\n", "direct_url.json": b'{"url": "file:///x", "dir_info": [1]}'})
def test_read_dist_info_any_bytes(scratch, files):
    folder = _fresh(scratch) / "x-1.dist-info"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    try:
        dist = read_dist_info(folder)
    except UvextraError:
        return
    if dist is None:
        return
    assert isinstance(dist, Installed)
    assert isinstance(dist.version, str) and isinstance(dist.name, str)
    assert all(isinstance(t, str) for t in dist.wheel_tags) and all(isinstance(r, str) for r in dist.requires)
    dist.dependency_names()
    assert "pw@" not in (dist.location or "")


def test_read_dist_info_folder_is_a_file(tmp_path):
    bogus = tmp_path / "x-1.dist-info"
    bogus.write_text("not a folder")
    assert read_dist_info(bogus) is None
    assert read_dist_info(tmp_path / "missing.dist-info") is None
