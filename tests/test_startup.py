"""Start-up: numba is imported without SciPy, and user numba code still gets SciPy's BLAS."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("scipy") is None, reason="SciPy is not installed"
)


def _run(code: str) -> str:
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_a_model_predicts_without_importing_scipy():
    out = _run(
        "import sys\nimport numpy as np\nimport edgemine as keras\n"
        "m = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(2)])\n"
        "m.predict(np.ones((1, 4), np.float32), verbose=0)\n"
        "print(sorted(n for n in sys.modules if n == 'scipy' or n.startswith('scipy.')))\n"
    )
    assert out.strip() == "[]"


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


def test_a_scipy_imported_first_is_left_alone():
    out = _run(
        "import sys\nimport scipy.linalg\nmod = sys.modules['scipy.linalg']\n"
        "import edgemine.kernels\nfrom numba.np import arraymath\n"
        "print(sys.modules['scipy.linalg'] is mod, arraymath._HAVE_BLAS)\n"
    )
    assert out.strip() == "True True"
