"""Issue 17: real projects as they are written — backends that cannot be read here, advice that says what to do.

The real CLI and the real uv against local indexes the tests build; each fixture is shaped like a public project
(named beside it). Where uv can answer, uvextra's answer is compared with `uv sync --dry-run --frozen`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from support.cli import Setup, error_line, report_of, run_cli
from support.localindex import IndexServer
from support.run import run_uv
from support.venvs import dist_infos, find_python
from uvextra._demo_wheels import build_wheel


def uv_dry_run(s: Setup, uv: str, *flags: str) -> tuple[int, dict[str, str], str]:
    """`uv sync --dry-run --frozen --inexact` into the venv: (exit, what it would install, its words)."""
    proc = run_uv(
        uv,
        "sync",
        "--color",
        "never",
        "--dry-run",
        "--frozen",
        "--inexact",
        "--project",
        s.project,
        *flags,
        env=dict(s.env, UV_PROJECT_ENVIRONMENT=str(s.venv)),
        check=False,
    )
    words = proc.stdout + proc.stderr
    plan = {}
    for line in words.splitlines():
        if line.startswith(" + ") and "==" in line:
            name, _, version = line[3:].strip().partition("==")
            plan[name] = version
    return proc.returncode, plan, words


def uv_sync(s: Setup, uv: str, *flags: str) -> None:
    """What a user does with uv alone (no uvextra record in the venv): `uv sync --inexact --frozen --extra …`."""
    run_uv(
        uv,
        "sync",
        "--inexact",
        "--frozen",
        "--project",
        s.project,
        *flags,
        env=dict(s.env, UV_PROJECT_ENVIRONMENT=str(s.venv)),
    )


def add_to_extra(project: Path, extra: str, requirement: str, index: tuple[str, str] | None = None) -> None:
    """Add ``requirement`` to ``extra`` (the project's torch extras are written as `extra = [\\n  "torch>=2.8.0",`);
    ``index`` = (name, flat folder URL) routes it there. pyproject.toml is the fixture's; uvextra never edits it."""
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    head = f'{extra} = [\n  "torch>=2.8.0",\n'
    assert head in text
    text = text.replace(head, f'{head}  "{requirement}",\n')
    if index is not None:
        name = re.split(r"[<>=!~; ]", requirement, maxsplit=1)[0]
        text = text.replace("[tool.uv.sources]\n", f'[tool.uv.sources]\n{name} = {{ index = "{index[0]}" }}\n')
        text += f'\n[[tool.uv.index]]\nname = "{index[0]}"\nurl = "{index[1]}"\nformat = "flat"\nexplicit = true\n'
    pyproject.write_text(text, encoding="utf-8")


# ---------------------------------------------------------------------------------------------------- item 2


def test_a_backend_with_no_wheel_for_this_python_does_not_sink_status(
    make_project, target_venv, tmp_path, uv_env, uv_new
):
    # Shape: a CUDA extra that pins flash-attn, published only for cp310 (as its GitHub-release wheels are, pinned by
    # URL in e.g. allenai/OLMo-core's and huggingface/lerobot's CUDA extras); the kernel runs Python 3.11.
    wheels = tmp_path / "flash-attn-wheels"
    build_wheel(wheels, "flash-attn", "2.8.0", {"flash_attn/__init__.py": ""}, tag="cp310-cp310-linux_x86_64")
    project = make_project(lock=False)
    add_to_extra(project, "cu128", "flash-attn", ("flash-attn-wheels", wheels.as_uri()))
    run_uv(uv_new, "lock", env=uv_env, cwd=project)
    s = Setup(project, target_venv, dict(uv_env, UVEXTRA_UV=uv_new))
    uv_sync(s, uv_new, "--extra", "cpu")

    for verb in ("check", "status"):
        proc = s.run(verb, "--json")
        report = report_of(proc)
        assert report["exit_code"] == 0, report  # was: exit 2, "the lock has nothing installable … packages[1]"
        assert report["extras"] == ["cpu"] and report["drift"] == [], report
        why = report["unreadable"]["cu128"]
        assert "no wheel of flash-attn 2.8.0 for this Python (cp311" in why, why
        assert "packages[" not in proc.stdout
    assert uv_dry_run(s, uv_new, "--extra", "cpu")[:2] == (0, {}), "uv agrees: nothing to do for cpu"

    text = s.run("status").stdout
    assert "unread" in text and "cu128 could not be read here" in text, text

    # Asked for by name, it is the one-line error, in words: uv cannot install it here either
    line = error_line(s.run("check", "--extra", "cu128"))
    assert "the lock has no wheel of flash-attn 2.8.0 for this Python (cp311" in line and "packages[" not in line
    code, _plan, words = uv_dry_run(s, uv_new, "--extra", "cu128")
    assert code != 0 and "flash-attn" in words
    s.assert_nothing_lost()


def test_a_set_of_features_none_of_which_can_be_read_here_does_not_sink_status(
    make_project, target_venv, tmp_path, uv_env, uv_new
):
    # Shape: inference engines in a conflict set of their own (volcengine/verl's `vllm` / `sglang`), whose pinned
    # kernels ship wheels for one Python only (here flash-attn for cp310, the kernel runs 3.11)
    wheels = tmp_path / "flash-attn-wheels"
    build_wheel(wheels, "flash-attn", "2.8.0", {"flash_attn/__init__.py": ""}, tag="cp310-cp310-linux_x86_64")
    project = make_project(lock=False, more_extras={"vllm": ["flash-attn"], "sglang": ["flash-attn", "filelock"]})
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text().replace(
        "conflicts = [\n", 'conflicts = [\n  [{ extra = "vllm" }, { extra = "sglang" }],\n'
    )
    text = text.replace("[tool.uv.sources]\n", '[tool.uv.sources]\nflash-attn = { index = "flash-attn-wheels" }\n')
    pyproject.write_text(
        text + f'\n[[tool.uv.index]]\nname = "flash-attn-wheels"\nurl = "{wheels.as_uri()}"\n'
        'format = "flat"\nexplicit = true\n'
    )
    run_uv(uv_new, "lock", env=uv_env, cwd=project)
    s = Setup(project, target_venv, dict(uv_env, UVEXTRA_UV=uv_new))
    uv_sync(s, uv_new, "--extra", "cpu")

    report = report_of(s.run("status", "--json"))
    assert (report["exit_code"], report["extras"], report["drift"]) == (0, ["cpu"], []), report  # was: exit 2
    assert sorted(report["unreadable"]) == ["sglang", "vllm"], report
    assert "none of vllm, sglang can be read here" in report["extras_source"]
    assert uv_dry_run(s, uv_new, "--extra", "cpu")[:2] == (0, {})


def test_a_backend_whose_export_needs_the_network_does_not_sink_status(
    make_project, target_venv, index_root, uv_env, uv_new
):
    # Shape: a ROCm extra on PyTorch's index whose wheels uv.lock records without a hash (uv then downloads them to
    # export, see FIELD-NOTES), as in locks of projects with cpu/cu/rocm extras such as ComfyUI forks and
    # pytorch-lightning templates; here the ROCm index is down.
    with IndexServer(index_root) as rocm_server:
        project = make_project({"cpu": "cpu", "rocm": rocm_server.simple_url("cu128"), "pypi": "pypi"})
    lock = project / "uv.lock"
    text = lock.read_text(encoding="utf-8")
    host = rocm_server.simple_url("cu128").rstrip("/")
    blocks = text.split("\n[[package]]\n")
    stripped = [re.sub(r', hash = "sha256:[0-9a-f]+"', "", b) if host in b else b for b in blocks]
    assert stripped != blocks
    lock.write_text("\n[[package]]\n".join(stripped), encoding="utf-8")
    s = Setup(project, target_venv, dict(uv_env, UVEXTRA_UV=uv_new))
    uv_sync(s, uv_new, "--extra", "cpu")

    report = report_of(s.run("status", "--json"))
    assert report["exit_code"] == 0 and report["extras"] == ["cpu"] and report["drift"] == [], report
    # read without the network (uv.lock and uv's requirements export, issue 16): judged like the others, not named
    assert report["unreadable"] == {} and "rocm: 0 of" in report["extras_source"], report
    assert uv_dry_run(s, uv_new, "--extra", "cpu")[:2] == (0, {})
    assert dist_infos(s.venv, "torch") == ["torch-2.9.0+cpu.dist-info"]


# ---------------------------------------------------------------------------------------------------- item 3


def test_features_are_not_offered_as_backends(make_project, target_venv, uv_env, uv_new):
    # Shape: torch routed per extra (cpu / cu128 / pypi) beside feature extras (`dev`, `test`, `aws`), a `kernels`
    # group that builds CUDA code outside every conflict set, and a second conflict set of inference engines that
    # route no torch (`vllm` / `sglang`, as in volcengine/verl's extras).
    project = make_project(
        lock=False,
        more_extras={
            "dev": ["filelock"],
            "test": ["filelock"],
            "aws": ["numpy"],
            "vllm": ["filelock"],
            "sglang": ["numpy"],
        },
        more_groups={"kernels": ["nvidia-cublas-cu12"]},
    )
    pyproject = project / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            "conflicts = [\n", 'conflicts = [\n  [{ extra = "vllm" }, { extra = "sglang" }],\n'
        )
    )
    run_uv(uv_new, "lock", env=uv_env, cwd=project)
    s = Setup(project, target_venv, dict(uv_env, UVEXTRA_UV=uv_new))

    report = report_of(s.run("check", "--json"))
    assert report["available_extras"] == ["cpu", "cu128", "pypi"], report
    assert sorted(report["features"]) == ["aws", "dev", "kernels", "sglang", "test", "vllm"], report
    assert report["extras_unknown"] == "none"
    assert "`uvextra switch cpu | cu128 | pypi`" in s.run("check").stdout
    # a feature is still the user's to select, beside a backend
    report = report_of(s.run("switch", "cpu", "aws", "--no-probe", "--json"))
    assert (report["exit_code"], report["extras"]) == (0, ["cpu", "aws"]), report


def test_the_backend_rule_reads_the_project(tmp_path):
    from uvextra.core.project import load_project

    # Shape: conflicting extras that pin torch versions without any index route (a torch-version matrix, as in
    # projects that test against two torch releases), beside a conflict set of frameworks that list no torch.
    (tmp_path / "pyproject.toml").write_text("""
[project]
name = "matrix"
version = "0"
[project.optional-dependencies]
torch-old = ["torch==2.8.0"]
torch-new = ["torch==2.9.0", "torchvision"]
jax = ["jax"]
tf = ["tensorflow"]
docs = ["sphinx"]
[tool.uv]
conflicts = [[{ extra = "jax" }, { extra = "tf" }], [{ extra = "torch-old" }, { extra = "torch-new" }]]
""")
    project = load_project(tmp_path)
    assert project.offered == ("torch-old", "torch-new")
    assert sorted(project.features) == ["docs", "jax", "tf"]
    # No conflict set says torch: its members stay the project's only choices
    (tmp_path / "pyproject.toml").write_text("""
[project]
name = "frameworks"
version = "0"
[project.optional-dependencies]
jax = ["jax"]
tf = ["tensorflow"]
docs = ["sphinx"]
[tool.uv]
conflicts = [[{ extra = "jax" }, { extra = "tf" }]]
""")
    project = load_project(tmp_path)
    assert (project.offered, project.features) == (("jax", "tf"), ("docs",))


# ---------------------------------------------------------------------------------------------------- item 4


def test_a_python_the_lock_does_not_accept_says_which_and_how(make_project, target_venv, uv_env, uv_new):
    # Shape: `requires-python` pinned above the kernel's Python (as NVIDIA/NeMo-RL pins one minor, and a project
    # pinned to a patch release is refused by a venv of an older patch of the same minor)

    python312 = find_python("3.12")
    if python312 is None:
        pytest.skip("no Python 3.12 on this machine to lock with (python3.12 on PATH or under pyenv)")
    project = make_project(requires_python=">=3.12", lock=False)
    run_uv(uv_new, "lock", "--python", python312, env=uv_env, cwd=project)
    s = Setup(project, target_venv, dict(uv_env, UVEXTRA_UV=uv_new))
    for args in (("status",), ("check", "--extra", "cpu")):
        line = error_line(s.run(*args))
        assert line.startswith("the lock needs Python >=3.12, and ") and "is Python 3.11" in line, line
        assert "(`uv venv --python '>=3.12' DIR`), install ipykernel into it and start the kernel from it" in line
    code, _plan, words = uv_dry_run(s, uv_new, "--extra", "cpu")
    assert code != 0 and "3.12" in words, "uv refuses this venv too"
    # a switch: uv refuses, and the next step says what to do instead of "run it again"
    report = report_of(s.run("switch", "cpu", "--no-probe", "--json"))
    assert report["exit_code"] == 1 and report["lock_unread"], report
    text = s.run("switch", "cpu", "--no-probe").stdout
    assert (
        "next         this venv's Python is not one the project accepts (>=3.12): make a venv with one (`uv venv "
        "--python '>=3.12' DIR`)" in text
    ), text
    assert "drift        not checked" in text and "none found" not in text


def test_a_python_too_new_for_the_lock_says_which_and_how(make_project, target_venv, uv_env, uv_new):
    # Shape: `requires-python` capped below the kernel's Python (projects pinned to one minor, `>=3.10,<3.11`)

    python310 = find_python("3.10")
    if python310 is None:
        pytest.skip("no Python 3.10 on this machine to lock with (python3.10 on PATH or under pyenv)")
    project = make_project(requires_python=">=3.10,<3.11", lock=False)
    run_uv(uv_new, "lock", "--python", python310, env=uv_env, cwd=project)
    s = Setup(project, target_venv, dict(uv_env, UVEXTRA_UV=uv_new))
    line = error_line(s.run("check"))
    assert line.startswith("the lock needs Python ==3.10.*, and "), line  # uv's export writes the cap so
    assert "is Python 3.11" in line and "(`uv venv --python '==3.10.*' DIR`)" in line, line
    assert uv_dry_run(s, uv_new, "--extra", "cpu")[0] != 0, "uv refuses this venv too"


def test_advice_for_a_lock_worth_of_missing_packages_is_a_count():
    from uvextra.core.drift import Drift
    from uvextra.core.report import Report

    missing = [Drift(f"pkg{i:02}", "missing", None, "1.0", "not installed") for i in range(40)]
    report = Report(command="check", drift=missing)
    assert (
        report.next_step() == "run `uvextra repair` to install 40 packages (pkg00, pkg01, pkg02, pkg03, pkg04 "
        "and 35 more)"
    )
    from uvextra.render.text import render_text

    text = render_text(report)
    assert text.count("not installed") == 8 and "  … and 32 more missing: pkg08, pkg09," in text, text
    assert "(26 more) (-v lists each)" in text and len(text) < 1500
    assert render_text(report, verbose=True).count("not installed") == 40
    report = Report(command="check", drift=[*missing[:2], Drift("torch", "local-version", "2.9.0+cpu", "2.9.0", "")])
    assert report.next_step() == "run `uvextra repair` to reinstall pkg00 pkg01 torch"


def test_a_path_dependency_in_a_missing_submodule_is_named_and_not_repaired(
    make_project, target_venv, tmp_path, index_server, uv_env, uv_new
):
    # Shape: a workspace whose member depends on a library vendored as a git submodule, installed editable from
    # its path (as NVIDIA/NeMo-RL's 3rdparty/ members and facebookresearch projects' third_party/ libraries);
    # a clone without `--recursive` leaves the submodule's folder empty.
    from support.localindex import write_project

    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "pyproject.toml").write_text(
        '[tool.uv.workspace]\nmembers = ["app"]\n\n[[tool.uv.index]]\nname = "default"\n'
        f'url = "{index_server.simple_url("pypi")}"\ndefault = true\n'
    )
    indexes = {e: index_server.simple_url(e) for e in ("cpu", "cu128", "pypi")}
    app = write_project(ws / "app", indexes, extra_deps=("numpy", "libfoo"))
    pyproject = app / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            "[tool.uv.sources]\n", '[tool.uv.sources]\nlibfoo = { path = "../third_party/libfoo", editable = true }\n'
        )
    )
    write_project(ws / "third_party" / "libfoo", {}, name="libfoo", extras=(), extra_deps=(), package=True)
    run_uv(uv_new, "lock", env=uv_env, cwd=ws)
    for child in sorted((ws / "third_party" / "libfoo").rglob("*"), reverse=True):  # the submodule, not checked out
        child.rmdir() if child.is_dir() else child.unlink()
    s = Setup(app, target_venv, dict(uv_env, UVEXTRA_UV=uv_new))

    report = report_of(s.run("check", "--extra", "cpu", "--json"))
    libfoo = next(d for d in report["drift"] if d["package"] == "libfoo")
    folder = ws / "third_party" / "libfoo"
    assert libfoo["detail"].startswith(f"its source folder {folder} is empty"), libfoo  # was: "the lock wants  from"
    assert "git submodule update --init" in libfoo["detail"]
    text = s.run("check", "--extra", "cpu").stdout
    assert "next         libfoo: its source folder" in text and "uvextra repair" not in text, text

    report = report_of(s.run("repair", "--extra", "cpu", "--json"))  # asked anyway: nothing run that uv cannot do
    assert report["exit_code"] == 1 and report["changes"]["installed"] == [] and not report["failure"], report
    assert dist_infos(s.venv, "torch") == []
    proc = run_uv(
        uv_new,
        "sync",
        "--frozen",
        "--inexact",
        "--extra",
        "cpu",
        "--project",
        app,
        check=False,
        env=dict(s.env, UV_PROJECT_ENVIRONMENT=str(s.venv)),
    )
    assert proc.returncode != 0 and "libfoo" in proc.stderr, "uv cannot install it either"


def test_a_malformed_pyproject_is_named_before_the_missing_venv(tmp_path, uv_env):
    # Shape: a fresh clone (no .venv yet) whose pyproject.toml has a merge conflict left in it
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n<<<<<<< HEAD\nversion = "1"\n')

    line = error_line(run_cli("status", env=uv_env, cwd=tmp_path))
    assert line.startswith(f"{tmp_path / 'pyproject.toml'}: invalid TOML"), line  # was: "create it (`uv sync` …)"


# ---------------------------------------------------------------------------------------------------- item 5


def test_a_companion_left_out_of_a_marker_route_is_a_finding(tmp_path, target_venv, index_server, uv_env, uv_new):
    # Shape: uv's PyTorch guide routing torch by platform marker, no backend at all
    # (`torch = [{ index = "pytorch-cpu", marker = "sys_platform == 'linux'" }]`), torchvision left to the default
    # index, as projects copying that guide do for torch alone.
    project = tmp_path / "markers"
    project.mkdir()
    (project / "pyproject.toml").write_text(f'''[project]
name = "markers"
version = "0.1.0"
requires-python = ">=3.10"
dependencies = ["torch>=2.8.0", "torchvision"]

[tool.uv.sources]
torch = [{{ index = "pytorch-cpu", marker = "sys_platform == 'linux'" }}]

[[tool.uv.index]]
name = "pytorch-cpu"
url = "{index_server.simple_url("cpu")}"
explicit = true

[[tool.uv.index]]
name = "default"
url = "{index_server.simple_url("pypi")}"
default = true
''')
    run_uv(uv_new, "lock", env=uv_env, cwd=project)
    s = Setup(project, target_venv, dict(uv_env, UVEXTRA_UV=uv_new))
    uv_sync(s, uv_new)
    assert dist_infos(s.venv, "torchvision") == ["torchvision-0.24.0.dist-info"], "PyPI's (CUDA) build, as locked"

    report = report_of(s.run("check", "--json"))
    (finding,) = report["routing"]
    assert (finding["package"], finding["kind"], finding["extra"]) == (
        "torchvision",
        "marker",
        "sys_platform == 'linux'",
    )
    assert finding["package_index"] == index_server.simple_url("pypi") and "/cpu/" in finding["torch_index"]
    assert finding["fix"] == [
        "[tool.uv.sources]",
        "torchvision = [",
        """  { index = "pytorch-cpu", marker = "sys_platform == 'linux'" },""",
        "]",
    ]
    text = s.run("check").stdout
    assert "routes torch by marker `sys_platform == 'linux'` but not torchvision" in text, text
    assert "then run `uv lock`, then `uvextra repair`" in text
    assert uv_dry_run(s, uv_new)[:2] == (0, {}), "uv sees nothing to do: the lock itself is the cause"


# ---------------------------------------------------------------------------------------------------- big locks


def test_a_lock_over_a_megabyte_is_read_and_agrees_with_uv(make_project, target_venv, uv_env, uv_new):
    # Shape: real locks of 1–4 MB (e.g. huggingface/lerobot's, NVIDIA/NeMo-RL's): most of it is every platform's
    # wheels of torch and its stack, each with its hash. Here torch's entries list 2,000 wheels per build for other
    # platforms and Pythons (with build tags, so the names are unique), as uv writes them.
    project = make_project()
    lock = project / "uv.lock"
    blocks = lock.read_text(encoding="utf-8").split("\n[[package]]\n")
    for i, block in enumerate(blocks):
        if block.startswith('name = "torch"\n') and "wheels = [\n" in block:
            version = re.search(r'^version = "([^"]+)"', block, re.M).group(1)
            url = re.search(r'\{ url = "([^"]+)/torch-', block).group(1)
            extra = "".join(
                f'    {{ url = "{url}/torch-{version}-{n}-cp3{12 + n % 3}-cp3{12 + n % 3}-'
                f'{("win_amd64", "macosx_14_0_arm64", "manylinux_2_28_aarch64")[n % 3]}.whl", '
                f'hash = "sha256:{n:064x}", size = {100_000 + n} }},\n'
                for n in range(2000)
            )
            blocks[i] = block.replace("wheels = [\n", "wheels = [\n" + extra, 1)
    lock.write_text("\n[[package]]\n".join(blocks), encoding="utf-8")
    assert lock.stat().st_size > 1_000_000
    s = Setup(project, target_venv, dict(uv_env, UVEXTRA_UV=uv_new))

    report = report_of(s.run("switch", "cu128", "--frozen", "--no-probe", "--json"))
    assert report["exit_code"] == 0 and s.torch() == ["torch-2.9.0+cu128.dist-info"], report
    assert uv_dry_run(s, uv_new, "--extra", "cu128")[:2] == (0, {})
    (s.venv / ".uvextra").joinpath("state.json").unlink()  # inference reads every backend of the big lock
    report = report_of(s.run("status", "--json"))
    assert (report["exit_code"], report["extras"], report["drift"], report["unreadable"]) == (0, ["cu128"], [], {})
    report = report_of(s.run("check", "--extra", "pypi", "--json"))
    wanted = {
        d["package"]: d["wanted"] for d in report["drift"] if d["kind"] in ("missing", "local-version", "version")
    }
    plan = uv_dry_run(s, uv_new, "--extra", "pypi")[1]
    assert plan == wanted, (plan, report["drift"])


def test_the_set_of_backends_comes_first_for_the_toggle(tmp_path):
    from types import SimpleNamespace

    from uvextra.core.project import load_project
    from uvextra.core.verbs import Context

    (tmp_path / "pyproject.toml").write_text("""
[project]
name = "engines"
version = "0"
[project.optional-dependencies]
vllm = ["vllm"]
sglang = ["sglang"]
cpu = ["torch"]
cu128 = ["torch"]
[tool.uv]
conflicts = [[{ extra = "vllm" }, { extra = "sglang" }], [{ extra = "cpu" }, { extra = "cu128" }]]
[tool.uv.sources]
torch = [{ index = "pytorch-cpu", extra = "cpu" }, { index = "pytorch-cu128", extra = "cu128" }]
""")
    env = SimpleNamespace(prefix=tmp_path, source="", python=tmp_path, writable=lambda: True)
    uv = SimpleNamespace(warning=None, to_dict=dict)
    report = Context(project=load_project(tmp_path), env=env, uv=uv).new_report("check")
    assert report.conflict_sets == [["cpu", "cu128"], ["vllm", "sglang"]]  # the toggle offers the first set it finds
    assert (report.available_extras, report.features) == (["cpu", "cu128"], ["vllm", "sglang"])
