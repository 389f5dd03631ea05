"""Both backends against the one backend interface (``edgemine.kernels.interface.Backend``).

Every op of the interface exists in each backend module with the interface's signature:
parameter names, kinds, order and defaults (annotations may differ: numpy vs device arrays).
The CUDA backend is inspected in a subprocess under Numba's simulator, which must not leak into
this process (see test_cuda_sim.py).
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def signature_mismatches(module) -> list[str]:
    """What in ``module`` differs from the interface (empty when it implements it exactly)."""
    from edgemine.kernels.interface import OPS, Backend

    problems = []
    if not isinstance(getattr(module, "name", None), str):
        problems.append("no 'name' attribute")
    if not isinstance(getattr(module, "gemm_epilogue", None), bool):
        problems.append("no 'gemm_epilogue' attribute")
    for op in OPS:
        fn = getattr(module, op, None)
        if not callable(fn):
            problems.append(f"{op}: missing")
            continue
        want = list(inspect.signature(getattr(Backend, op)).parameters.values())[1:]
        got = list(inspect.signature(fn).parameters.values())
        strip = [(p.name, p.kind, p.default) for p in want]
        if [(p.name, p.kind, p.default) for p in got] != strip:
            problems.append(f"{op}{inspect.signature(fn)} != interface {strip}")
    if sorted(getattr(module, "__all__", [])) != sorted(OPS):
        problems.append("__all__ is not the interface's OPS")
    return problems


def test_cpu_backend_implements_the_interface():
    from edgemine.kernels import cpu
    from edgemine.kernels.interface import Backend

    assert isinstance(cpu, Backend)
    assert signature_mismatches(cpu) == []


def test_cuda_backend_implements_the_interface():
    code = (
        "import json, sys; sys.path.insert(0, 'tests'); "
        "from test_backend_interface import signature_mismatches; "
        "from edgemine.kernels import cuda; print(json.dumps(signature_mismatches(cuda)))"
    )
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


def test_a_backend_missing_an_op_or_renaming_a_parameter_is_caught():
    """The check itself, on a fake backend derived from the CPU one."""
    import types

    from edgemine.kernels import cpu

    fake = types.ModuleType("fake")
    fake.__dict__.update({k: getattr(cpu, k) for k in cpu.__all__})
    fake.name, fake.__all__ = "fake", [n for n in cpu.__all__ if n != "add"]
    del fake.add
    fake.reshape = lambda x, new_shape: x
    problems = signature_mismatches(fake)
    assert "add: missing" in problems
    assert "no 'gemm_epilogue' attribute" in problems
    assert any(p.startswith("reshape(x, new_shape)") for p in problems)
    assert "__all__ is not the interface's OPS" in problems
