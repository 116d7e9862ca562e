"""The test harness: what the tests build and run, in one package (fixtures stay in ``tests/conftest.py``).

* :mod:`support.localindex` — real wheels (stand-in torch, CUDA builds, companions), PEP 503 simple and flat indexes
  on disk, an :class:`~support.localindex.IndexServer` on 127.0.0.1, and seed-shaped projects (``write_project``).
* :mod:`support.run` — running uv (``run_uv``), with ipykernel's colour variables (``KERNEL_COLOR_ENV``).
* :mod:`support.venvs` — what a test reads from a venv: ``site_packages``, ``dist_infos``.
* :mod:`support.kernels` — throwaway kernel venvs with this checkout's wheel, kernelspecs, a real ``Kernel``.
* :mod:`support.pip_indexes` — where this machine keeps real wheels (pip's configuration), for the real-torch tests.
* :mod:`support.real_torch` — projects over those real wheels.
* ``support/userenv_driver.py`` — a script, run as another user by ``e2e/test_userenv_users.py``.

Imported as ``support.<module>`` (``tests/`` is on ``sys.path``: ``pythonpath`` in pyproject's pytest options, and
the benchmarks insert it themselves).
"""
