"""Load the uvextra IPython extension (``%uvextra``) in every IPython of this environment.

Installed by the uvextra wheel into ``{sys.prefix}/etc/ipython/startup/`` (hatch shared-data), a folder every
IPython started from this environment reads — kernels and terminal IPython alike; uninstalling uvextra removes it.
Opt out with the environment variable ``UVEXTRA_NO_AUTOLOAD=1``. See docs/jupyterhub.md.

IPython runs startup files in the user's namespace and skips the remaining ones after one that raises, so this
file defines one function, deletes it again, and never lets an exception out. A failure is one warning line: in a
terminal at once; in a kernel with the first cell's output (a kernel's output before its first cell reaches no one).
"""


def _uvextra_autoload() -> None:
    import os
    import sys

    # Any value but "" or "0" opts out: UVEXTRA_NO_AUTOLOAD=1 in the server's environment or the kernelspec's "env".
    if os.environ.get("UVEXTRA_NO_AUTOLOAD", "").strip() not in ("", "0"):
        return
    shell = None
    try:
        import importlib.util

        from IPython import get_ipython

        shell = get_ipython()
        # This file may also sit in a machine-wide folder (/etc/ipython/startup) that environments without
        # uvextra read too: there is nothing to load there and nothing to warn about.
        if shell is None or importlib.util.find_spec("uvextra") is None:
            return
        shell.extension_manager.load_extension("uvextra")  # imports uvextra/__init__.py; the magic loads lazily
    except BaseException as exc:  # noqa: BLE001 - a broken extension must never break the kernel's start
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            return
        detail = " ".join(str(exc).split())[:200]
        line = (
            f"uvextra: not loaded automatically ({type(exc).__name__}: {detail}); "
            "try `%load_ext uvextra`, or set UVEXTRA_NO_AUTOLOAD=1 to silence this"
        )
        if shell is None or getattr(shell, "kernel", None) is None:
            print(line, file=sys.stderr)
            return

        def _warn_once(*_args: object) -> None:
            shell.events.unregister("pre_run_cell", _warn_once)
            print(line, file=sys.stderr)

        try:
            shell.events.register("pre_run_cell", _warn_once)
        except Exception:  # noqa: BLE001
            print(line, file=sys.__stderr__)  # the server's log is the last place left


_uvextra_autoload()
del _uvextra_autoload
