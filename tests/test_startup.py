"""Start-up: numba is imported without SciPy (user numba code still gets SciPy's BLAS), and
Numba cache entries older than an edited kernel source are dropped."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

from edgemine._numba_env import drop_stale_kernel_cache

needs_scipy = pytest.mark.skipif(
    importlib.util.find_spec("scipy") is None, reason="SciPy is not installed"
)


def _run(code: str) -> str:
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return res.stdout


@needs_scipy
def test_a_model_predicts_without_importing_scipy():
    out = _run(
        "import sys\nimport numpy as np\nimport edgemine as keras\n"
        "m = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(2)])\n"
        "m.predict(np.ones((1, 4), np.float32), verbose=0)\n"
        "print(sorted(n for n in sys.modules if n == 'scipy' or n.startswith('scipy.')))\n"
    )
    assert out.strip() == "[]"


@needs_scipy
def test_user_numba_code_still_uses_blas_after_edgemine():
    # numba's inner products (np.correlate) take BLAS where SciPy is installed, and np.dot
    # imports SciPy when it is compiled, as in a process without edgemine
    out = _run(
        "import sys\nimport numpy as np\nimport edgemine.kernels\nimport numba\n"
        "from numba.np import arraymath\n"
        "print(arraymath._HAVE_BLAS, 'scipy' in sys.modules)\n"
        "f = numba.njit(lambda a, b: (np.dot(a, b), np.correlate(a, b)[0]))\n"
        "print(f(np.arange(3.0), np.ones(3)), 'scipy.linalg' in sys.modules)\n"
    )
    assert out.split("\n")[:2] == ["True False", "(3.0, 3.0) True"]


@needs_scipy
def test_a_scipy_imported_first_is_left_alone():
    out = _run(
        "import sys\nimport scipy.linalg\nmod = sys.modules['scipy.linalg']\n"
        "import edgemine.kernels\nfrom numba.np import arraymath\n"
        "print(sys.modules['scipy.linalg'] is mod, arraymath._HAVE_BLAS)\n"
    )
    assert out.strip() == "True True"


def test_cache_entries_older_than_any_kernel_source_are_dropped(tmp_path):
    # numba checks a cached kernel against its own file only; one that inlines a function
    # from another file must go when that file changes
    def touch(path, t):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
        os.utime(path, (t, t))

    pkg, sub = tmp_path, tmp_path / "cpu"
    touch(pkg / "a.py", 1000)
    touch(sub / "b.py", 1000)
    old = [sub / "__pycache__" / n for n in ("b.f-3.py311.nbi", "b.f-3.py311.1.nbc")]
    mixed = [pkg / "__pycache__" / n for n in ("a.g-9.py311.nbi", "a.g-9.py311.2.nbc")]
    fresh = [sub / "__pycache__" / n for n in ("b.h-7.py311.nbi", "b.h-7.py311.1.nbc")]
    for path, t in zip(old + mixed + fresh, (1500, 1500, 3000, 1500, 3000, 3000)):
        touch(path, t)
    assert drop_stale_kernel_cache(str(pkg)) == 0  # every entry is newer than the sources
    touch(pkg / "a.py", 2000)  # an edit
    assert drop_stale_kernel_cache(str(pkg)) == 2
    assert not any(p.exists() for p in old + mixed)  # a.g's overload predates the edit
    assert all(p.exists() for p in fresh) and (sub / "b.py").exists()


def test_a_numba_laid_out_otherwise_is_imported_as_it_is():
    # no numba.np.arraymath to import (another numba version): edgemine.kernels still imports
    out = _run(
        "import sys\n"
        "class NoArrayMath:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'numba.np.arraymath':\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, NoArrayMath())\n"
        "import edgemine.kernels\n"
        "print('numba' in sys.modules, 'numba.np.arraymath' in sys.modules)\n"
    )
    assert out.strip() == "True False"
