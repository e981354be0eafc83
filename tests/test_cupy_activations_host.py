"""The CuPy backend's activation device functions (``cupy_kernels.PREAMBLE``, CUDA C++) compiled
as host C++ and evaluated against the NumPy reference for every activation code, in float64
and float32.

Without a GPU the CuPy kernels never run here (``test_cupy_orchestration.py`` runs their host
logic with NumPy stand-ins), so this is what holds the C++ formulas to the reference. The
preamble is plain templated C++ apart from ``__device__``, which is defined away; CUDA's
``min``/``max``/``abs``/``exp``... are the ``<cmath>``/``<algorithm>`` ones on the host.
"""

import shutil
import subprocess
import sys
import types

import numpy as np
import pytest

from numlstm.activations import ACTIVATION_NAMES, EXPONENTIAL
from numlstm.backends.numpy_backend import activate, activation_derivative

COMPILER = shutil.which("g++") or shutil.which("clang++")
pytestmark = pytest.mark.skipif(COMPILER is None, reason="no C++ compiler (g++/clang++) here")

_MAIN = r"""
#include <algorithm>
#include <cmath>
#include <cstdio>
using namespace std;
#define __device__
%s
int main() {
    int code;
    double x;
    while (scanf("%%d %%lf", &code, &x) == 2) {
        const double a64 = numlstm_activate<double>(code, x);
        const float a32 = numlstm_activate<float>(code, (float)x);
        printf("%%.17g %%.17g %%.9g %%.9g\n", a64, numlstm_derivative<double>(code, a64),
               (double)a32, (double)numlstm_derivative<float>(code, a32));
    }
    return 0;
}
"""


@pytest.fixture(scope="module")
def preamble_program(tmp_path_factory):
    import numlstm.backends as package
    stand_in = types.ModuleType("cupy")
    stand_in.ElementwiseKernel = lambda *args, **kwargs: None
    saved = {name: sys.modules.get(name) for name in ("cupy", "numlstm.backends.cupy_kernels")}
    attribute = package.__dict__.get("cupy_kernels")
    sys.modules["cupy"] = stand_in
    sys.modules.pop("numlstm.backends.cupy_kernels", None)
    try:
        from numlstm.backends import cupy_kernels
        preamble = cupy_kernels.PREAMBLE
    finally:
        # as it was: the modules and the package's attribute (a later "from numlstm.backends
        # import cupy_kernels" would otherwise get this stand-in's module)
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
        if attribute is None:
            package.__dict__.pop("cupy_kernels", None)
        else:
            package.cupy_kernels = attribute
    folder = tmp_path_factory.mktemp("preamble")
    source, program = folder / "preamble.cpp", folder / "preamble"
    source.write_text(_MAIN % preamble)
    subprocess.run([COMPILER, "-O1", "-std=c++14", "-o", str(program), str(source)],
                   check=True, capture_output=True, text=True)
    return program


def _run(program, codes, values):
    lines = "".join(f"{c} {float(v)!r}\n" for c, v in zip(codes, values))
    out = subprocess.run([str(program)], input=lines, capture_output=True, text=True,
                         check=True).stdout
    return np.array([[float(v) for v in line.split()] for line in out.splitlines()])


@pytest.mark.parametrize("code", sorted(ACTIVATION_NAMES), ids=ACTIVATION_NAMES.get)
def test_cupy_activation_matches_the_reference(preamble_program, code):
    grid = np.concatenate([np.linspace(-8, 8, 161), [-30.0, -0.5, 0.5, 30.0]])
    if code == EXPONENTIAL:
        grid = grid[np.abs(grid) <= 20]
    grid32 = grid.astype(np.float32).astype(np.float64)    # the float32 run reads these
    result = _run(preamble_program, [code] * grid.size, grid)
    a64, d64, a32, d32 = result.T
    expected = activate(code, grid)
    np.testing.assert_allclose(a64, expected, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(d64, activation_derivative(code, expected), rtol=1e-12,
                               atol=1e-14)
    expected32 = activate(code, grid32)
    scale = np.maximum(1.0, np.abs(expected32))
    np.testing.assert_array_less(np.abs(a32 - expected32), 1e-6 * scale)
    derivative = activation_derivative(code, a32.astype(np.float64))
    np.testing.assert_array_less(np.abs(d32 - derivative), 1e-6 * np.maximum(1, np.abs(
        derivative)))
