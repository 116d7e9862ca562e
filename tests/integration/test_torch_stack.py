"""Issue 10: the whole PyTorch stack verified together — companions built for another torch are caught, with why,
and a project that routes torch per extra but not its companions is told which [tool.uv.sources] lines fix it.

The real CLI, the real uv, the stand-in torch and torchvision wheels of the local indexes (PyPI's stand-in
torchvision is a CUDA 12.8 build whose METADATA says plain ``0.24.0``, pins ``torch==2.9.0`` and refuses to load
beside a CPU torch, as the real one does); unit tests on fabricated ``dist-info`` folders and real ELF files.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from support.cli import Setup, report_of
from support.localindex import build_wheel
from support.run import run_uv
from uvextra.core.installed import read_dist_info
from uvextra.core.probe_child import CompanionAnswer
from uvextra.core.stack import check_stack, companions, elf_needed, flavour_of_tag


def _setup(make_project, venv, uv_env, uv_new, **kw) -> Setup:
    project = make_project({"cpu": "cpu", "cu128": "cu128", "pypi": "pypi"}, companions=("torchvision",), **kw)
    return Setup(project, venv, dict(uv_env, UVEXTRA_UV=uv_new))


def rows(text: str, key: str) -> list[str]:
    return [line.split("  ", 1)[1].strip() for line in text.splitlines() if line.startswith(key + " ")]


def test_unrouted_torchvision_is_caught_with_why_and_the_lines_that_fix_it(make_project, target_venv, uv_env, uv_new):
    s = _setup(make_project, target_venv, uv_env, uv_new)
    proc = s.run("switch", "cpu")
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    assert rows(out, "drift") == ["none — installed packages match the lock"]  # the lock is what it is
    assert rows(out, "stack") == [
        "FAILS: torchvision 0.24.0 is a CUDA 12.8 build (+cu128), torch is 2.9.0+cpu: "
        "`RuntimeError: operator torchvision::nms does not exist` (its _C.so needs libc10_cuda.so, libtorch_cuda.so)"
    ]
    routing = rows(out, "routing")[0]
    assert routing.startswith(
        "[tool.uv.sources] routes torch per extra but not torchvision: for extra cpu the lock "
        "takes torchvision from http://127.0.0.1:"
    ), routing
    assert "/pypi/simple" in routing and "/cpu/simple" in routing
    fix = [
        line.strip()
        for line in out.splitlines()
        if (line.startswith(" " * 10) and "{ index" in line) or line.strip() in ("torchvision = [", "]")
    ]
    assert fix[0] == "torchvision = [" and '{ index = "pytorch-cpu", extra = "cpu" },' in fix, out
    step = rows(out, "next")[0]
    assert step.startswith("`uvextra repair` cannot fix this") and "uvextra switch cpu" in step, step
    assert "\x1b" not in out + proc.stderr
    s.assert_nothing_lost()  # pyproject.toml never edited

    report = report_of(s.run("status", "--json"))
    assert report["exit_code"] == 1
    (entry,) = report["probe"]["stack"]
    assert {k: entry[k] for k in ("package", "version", "built_for", "ok")} == {
        "package": "torchvision",
        "version": "0.24.0",
        "built_for": "CUDA 12.8 (+cu128)",
        "ok": False,
    }
    assert entry["error"] == "RuntimeError: operator torchvision::nms does not exist"
    assert "its pin torch==2.9.0 accepts 2.9.0+cpu: PEP 440 ignores the local part" in entry["evidence"]
    assert "torchvision/version.py says 0.24.0+cu128" in entry["evidence"]
    assert report["routing"][0]["package"] == "torchvision" and report["routing"][0]["extra"] == "cpu"

    check = s.run("check")  # no probe: the static evidence alone
    assert check.returncode == 1 and rows(check.stdout, "stack")[0].startswith(
        "FAILS: torchvision 0.24.0 is a CUDA 12.8 build (+cu128), torch is 2.9.0+cpu (its _C.so needs"
    ), check.stdout

    # The lines shown, put under the existing [tool.uv.sources], fix it: lock, switch, and the stack passes.
    text = (s.project / "pyproject.toml").read_text()
    block = "\n".join(
        line.strip() if line.strip() in ("torchvision = [", "]") else "  " + line.strip()
        for line in out.splitlines()[
            out.splitlines().index(next(ln for ln in out.splitlines() if ln.strip() == "torchvision = [")) :
        ][:5]
    )
    (s.project / "pyproject.toml").write_text(text.replace("[tool.uv.sources]\n", f"[tool.uv.sources]\n{block}\n"))
    run_uv(uv_new, "lock", env=uv_env, cwd=s.project)
    fixed = s.run("switch", "cpu")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert rows(fixed.stdout, "stack") == [
        "ok: torchvision 0.24.0+cpu: a CPU build (+cpu), fits torch 2.9.0+cpu; ops.nms on two boxes ran"
    ]
    assert not rows(fixed.stdout, "routing")


def test_unrouted_torchvision_in_a_groups_project_gets_group_keyed_fix_lines(make_project, target_venv, uv_env, uv_new):
    # The backends as [dependency-groups]: torch routed with `{ index = "pytorch-cpu", group = "cpu" }`.
    s = _setup(make_project, target_venv, uv_env, uv_new, groups=True)
    assert '{ index = "pytorch-cpu", group = "cpu" }' in (s.project / "pyproject.toml").read_text()
    proc = s.run("switch", "cpu")
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    assert rows(out, "stack")[0].startswith(
        "FAILS: torchvision 0.24.0 is a CUDA 12.8 build (+cu128), torch is 2.9.0+cpu"
    ), out
    (routing,) = rows(out, "routing")
    assert routing.startswith(
        "[tool.uv.sources] routes torch per group but not torchvision: for group cpu the lock "
        "takes torchvision from http://127.0.0.1:"
    ), routing
    assert "/pypi/simple" in routing and "/cpu/simple" in routing
    lines = out.splitlines()
    at = next(n for n, ln in enumerate(lines) if ln.strip() == "torchvision = [")
    fix = [ln.strip() for ln in lines[at : at + 5]]
    assert fix == [
        "torchvision = [",
        '{ index = "pytorch-cpu", group = "cpu" },',
        '{ index = "pytorch-cu128", group = "cu128" },',
        '{ index = "pytorch-pypi", group = "pypi" },',
        "]",
    ], out
    assert not any("extra =" in ln for ln in fix)
    step = rows(out, "next")[0]
    assert step.startswith("`uvextra repair` cannot fix this") and "uvextra switch cpu" in step, step
    s.assert_nothing_lost()

    report = report_of(s.run("check", "--json"))
    assert report["exit_code"] == 1
    assert [(r["package"], r["extra"], r["kind"]) for r in report["routing"]] == [("torchvision", "cpu", "group")]

    # The lines shown fix it: put under [tool.uv.sources], lock, switch — the stack passes, no routing row.
    text = (s.project / "pyproject.toml").read_text()
    block = "\n".join(ln if ln in ("torchvision = [", "]") else "  " + ln for ln in fix)
    (s.project / "pyproject.toml").write_text(text.replace("[tool.uv.sources]\n", f"[tool.uv.sources]\n{block}\n"))
    run_uv(uv_new, "lock", env=uv_env, cwd=s.project)
    fixed = s.run("switch", "cpu")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert rows(fixed.stdout, "stack") == [
        "ok: torchvision 0.24.0+cpu: a CPU build (+cpu), fits torch 2.9.0+cpu; ops.nms on two boxes ran"
    ]
    assert not rows(fixed.stdout, "routing")


def test_routed_companions_pass_and_a_cuda_switch_fits(make_project, target_venv, uv_env, uv_new):
    s = _setup(make_project, target_venv, uv_env, uv_new, routed=("torchvision",))
    report = report_of(s.run("switch", "cu128", "--json"))
    assert report["exit_code"] == 0, report
    assert report["routing"] == []
    (entry,) = report["probe"]["stack"]
    assert (entry["version"], entry["built_for"], entry["ok"], entry["error"]) == (
        "0.24.0+cu128",
        "CUDA 12.8 (+cu128)",
        True,
        None,
    )
    assert entry["why"] == (
        "torchvision 0.24.0+cu128: a CUDA 12.8 build (+cu128), fits torch 2.9.0+cu128; ops.nms on two boxes ran"
    )


# ------------------------------------------------------------------------------------------------ unit


def _install(wheel: Path, site: Path) -> Path:
    import zipfile

    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    return next(site.glob(wheel.name.split("-")[0] + "-*.dist-info"))


def test_companions_come_from_metadata_not_only_a_list(tmp_path):
    wheels, site = tmp_path / "w", tmp_path / "site"
    dists = {}
    for name, version, files, requires in (
        ("torch", "2.9.0+cpu", {"torch/__init__.py": "", "torch/version.py": "cuda = None\n"}, ()),
        (
            "flash-attn",
            "2.8.3",
            {"flash_attn/__init__.py": "", "flash_attn_2_cuda.so": "\0libc10_cuda.so\0"},
            ("torch",),
        ),  # requires torch and ships an extension: a companion
        ("lightning", "2.5.0", {"lightning/__init__.py": ""}, ("torch>=2.1",)),  # pure Python: not one
        ("torch-pinned", "1.0", {"torch_pinned/__init__.py": ""}, ("torch==2.9.0",)),  # an exact pin: one
    ):
        dist = read_dist_info(_install(build_wheel(wheels, name, version, files, requires), site))
        dists[dist.name] = dist
    assert [d.name for d, _ in companions(dists)] == ["flash-attn", "torch-pinned"]
    verdicts = {e.package: e for e in check_stack(dists)}
    assert not verdicts["flash-attn"].ok
    assert verdicts["flash-attn"].why == (
        "flash-attn 2.8.3 is a CUDA build (its flash_attn_2_cuda.so needs libc10_cuda.so), torch is 2.9.0+cpu"
    )
    assert verdicts["torch-pinned"].ok and "fits torch 2.9.0+cpu" in verdicts["torch-pinned"].why


def test_a_pin_the_installed_torch_misses_is_named(tmp_path):
    wheels, site = tmp_path / "w", tmp_path / "site"
    torch = read_dist_info(_install(build_wheel(wheels, "torch", "2.13.0+cpu", {"torch/__init__.py": ""}), site))
    tv = read_dist_info(
        _install(
            build_wheel(wheels, "torchvision", "0.29.0+cpu", {"torchvision/__init__.py": ""}, ("torch==2.14.0",)), site
        )
    )
    (entry,) = check_stack({"torch": torch, "torchvision": tv})
    assert not entry.ok and entry.why == "torchvision 0.29.0+cpu requires torch==2.14.0, torch is 2.13.0+cpu"


def test_local_tags_name_the_flavour():
    assert [flavour_of_tag(t).label for t in ("cpu", "cu130", "cu128", "cu118", "rocm6.3", "xpu")] == [
        "CPU (+cpu)",
        "CUDA 13.0 (+cu130)",
        "CUDA 12.8 (+cu128)",
        "CUDA 11.8 (+cu118)",
        "ROCm 6.3 (+rocm6.3)",
        "XPU (+xpu)",
    ]
    assert flavour_of_tag("internal") is None and flavour_of_tag(None) is None


@pytest.mark.skipif(not shutil.which("readelf"), reason="readelf (binutils) is not installed to compare with")
def test_elf_reader_agrees_with_readelf():
    so = sorted(Path(sysconfig.get_paths()["platstdlib"], "lib-dynload").glob("_ssl*.so")) or sorted(
        Path(sys.base_prefix).glob("lib/python3*/lib-dynload/*.so")
    )
    assert so, "no extension module of this Python to read"
    out = subprocess.run(["readelf", "-d", str(so[0])], capture_output=True, text=True, check=True).stdout
    expected = [line.split("[", 1)[1].split("]", 1)[0] for line in out.splitlines() if "(NEEDED)" in line]
    assert elf_needed(so[0]) == expected
    assert elf_needed(Path(__file__)) is None  # no ELF: None, the caller scans the bytes instead


def test_the_card_has_its_own_stack_row_and_the_fix(make_project, target_venv, uv_env, uv_new, monkeypatch):
    from uvextra.core import verbs as core
    from uvextra.render.card import render_html
    from uvextra.render.markdown import render_markdown

    s = _setup(make_project, target_venv, uv_env, uv_new)
    for key, value in s.env.items():
        monkeypatch.setenv(key, value)
    report = core.switch(["cpu"], s.project, s.python)
    assert report.exit_code == 1 and not report.can_repair
    card = render_html(report, live=True)
    assert "matches the lock, but torchvision does not fit the installed torch" in card
    assert 'class="uvextra-stack-bad"' in card and "operator torchvision::nms does not exist" in card
    assert "torchvision = [\n  { index = &quot;pytorch-cpu&quot;, extra = &quot;cpu&quot; }," in card
    # no Reinstall offered, and the card says why in a notebook's words (the CLI says `uvextra repair`)
    assert "uvextra-reinstall" not in card and "Reinstall cannot fix this" in card
    assert "`uvextra repair` cannot fix this" in report.next_step()
    assert "| stack | ❌ torchvision 0.24.0 is a CUDA 12.8 build (+cu128)" in render_markdown(report)


def test_routing_lint_follows_the_backend_kind_when_a_name_is_both_an_extra_and_a_group(tmp_path):
    # `cpu` is an extra (torch from pytorch-cpu) and a group (torch from mirror-cpu); torchvision is routed for the
    # extra only. The lint reads the route of the kind the user chose, and keys its fix lines as torch's are.
    from uvextra.core.project import Backend
    from uvextra.core.stack import lint_routing

    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\nname = "p"\nversion = "0"\n[project.optional-dependencies]\ncpu = ["torch", "torchvision"]\n'
        '[dependency-groups]\ncpu = ["torch", "torchvision"]\n[tool.uv.sources]\n'
        'torch = [{ index = "pytorch-cpu", extra = "cpu" }, { index = "mirror-cpu", group = "cpu" }]\n'
        'torchvision = [{ index = "pytorch-cpu", extra = "cpu" }]\n'
    )
    where = {"torch": "https://mirror/cpu", "torchvision": "https://pypi"}
    assert lint_routing(pyproject, [Backend("cpu", "extra")], where) == []  # routed like torch for the extra
    (m,) = lint_routing(pyproject, [Backend("CPU", "group")], where)
    assert (m.package, m.extra, m.kind) == ("torchvision", "cpu", "group")
    assert m.why == (
        "[tool.uv.sources] routes torch per group but not torchvision: for group cpu the lock takes "
        "torchvision from https://pypi, torch from https://mirror/cpu"
    )
    assert m.fix == (
        "[tool.uv.sources]",
        "torchvision = [",
        '  { index = "pytorch-cpu", extra = "cpu" },',
        '  { index = "mirror-cpu", group = "cpu" },',
        "]",
    )
    assert lint_routing(pyproject, ["cpu"], where) == []  # a plain name: the extra, when both keys name it


def test_a_kernels_repeated_checks_see_a_reinstalled_companion_and_not_the_last_probe(tmp_path):
    # What the files said is kept per .dist-info folder and RECORD digest: a second check in the same process must
    # still see another build installed in the same folder, and what the probe added to one report stays there.
    from uvextra.core.stack import merge_dynamic

    wheels, site = tmp_path / "w", tmp_path / "site"
    torch = read_dist_info(_install(build_wheel(wheels, "torch", "2.9.0+cpu", {"torch/__init__.py": ""}), site))

    def torchvision(tag: str):
        so = "\0libc10_cuda.so\0" if tag.startswith("cu") else "\0libc10.so\0"
        wheel = build_wheel(
            wheels / tag,
            "torchvision",
            "0.24.0",
            {
                "torchvision/__init__.py": "",
                "torchvision/version.py": f"__version__ = '0.24.0+{tag}'\n",
                "torchvision/_C.so": so,
            },
            ("torch==2.9.0",),
        )
        return read_dist_info(_install(wheel, site))

    (first,) = check_stack({"torch": torch, "torchvision": torchvision("cu128")})
    assert not first.ok and first.why.startswith(
        "torchvision 0.24.0 is a CUDA 12.8 build (+cu128), torch is 2.9.0+cpu"
    ), first.why
    merge_dynamic(
        [first],
        {
            "torchvision": CompanionAnswer(
                "torchvision", False, "RuntimeError: operator torchvision::nms does not exist"
            )
        },
    )
    (again,) = check_stack({"torch": torch, "torchvision": torchvision("cu128")})
    assert again.error is None and "nms" not in again.why and again.evidence == first.evidence, (again, first)

    (fixed,) = check_stack({"torch": torch, "torchvision": torchvision("cpu")})  # the same folder, another build
    assert fixed.ok and fixed.why == "torchvision 0.24.0: a CPU build (+cpu), fits torch 2.9.0+cpu", fixed.why
