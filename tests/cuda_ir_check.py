"""Lower ``cuda`` kernels to LLVM IR for given argument types and report every ``double``.

Run as a script in a process where Numba's CUDA *simulator is off* (the simulator has no
compiler): it reads ``{"kernels": {name: [argument type, ...]}, "control": bool}`` as JSON on
stdin and prints ``{name: [IR lines that mention double]}`` as JSON on stdout. Argument types
are ``"boolean"``, ``"int64"``, ``"float32"``, ``"float64"`` or ``["array", dtype, ndim,
contiguous]``.

Why LLVM IR and not PTX: numba-cuda lowers a kernel to LLVM IR itself, with no GPU, driver or
CUDA toolkit; turning that IR into PTX needs NVVM/NVRTC from the toolkit, which a machine
without CUDA does not have. The IR is the honest place to look anyway: a float64 literal in a
float32 kernel shows up as ``fpext float ... to double`` and ``double`` arithmetic as soon as
Numba types the code, and NVVM does not narrow double operations back to float.

With ``"control": true`` it also lowers a tiny float32 kernel that multiplies by a bare float64
literal, reported as ``"control"``: its list must not be empty, or the check could not fail.

With ``"divisions": true`` the report also has ``"divisions": {name: {"udiv i32": count, ...}}``,
the integer divisions and remainders in each kernel's IR by kind and width.
"""

from __future__ import annotations

import json
import os
import re
import sys

#: The compute capability the kernels are lowered for (the H200's); the IR does not depend on
#: it for these kernels, but numba-cuda requires one.
COMPUTE_CAPABILITY = (9, 0)
_DOUBLE = re.compile(r"\bdouble\b")
_DIVISION = re.compile(r"= ([su](?:div|rem)) (?:exact )?(i\d+) ")


def _numba_type(spec):
    import numpy as np
    from numba import types
    from numba.np.numpy_support import from_dtype
    if isinstance(spec, list):
        _, dtype, ndim, contiguous = spec
        return types.Array(from_dtype(np.dtype(dtype)), ndim, "C" if contiguous else "A")
    return getattr(types, spec)


class _DeviceStandIn:
    """What numba-cuda asks of "the current device" when it compiles a device function called
    from a kernel: only its compute capability. Without a GPU there is no device to ask."""

    compute_capability = COMPUTE_CAPABILITY


def _compile_device_functions_without_a_device() -> None:
    from numba.cuda import dispatcher
    dispatcher.get_current_device = _DeviceStandIn


def llvm_ir(pyfunc, argument_types) -> str:
    """``pyfunc``'s LLVM IR, lowered as a kernel for these argument types."""
    from numba import types
    from numba.cuda.compiler import compile_cuda
    result = compile_cuda(pyfunc, types.void, tuple(argument_types), cc=COMPUTE_CAPABILITY)
    return result.library.get_llvm_str()


def double_lines(pyfunc, argument_types) -> list[str]:
    """The lines of ``pyfunc``'s LLVM IR, lowered as a kernel, that mention ``double``."""
    return [line.strip() for line in llvm_ir(pyfunc, argument_types).splitlines()
            if _DOUBLE.search(line)]


def divisions(pyfunc, argument_types) -> dict[str, int]:
    """``{"udiv i32": count, "sdiv i64": count, ...}`` in ``pyfunc``'s LLVM IR."""
    counts: dict[str, int] = {}
    for kind, width in _DIVISION.findall(llvm_ir(pyfunc, argument_types)):
        counts[f"{kind} {width}"] = counts.get(f"{kind} {width}", 0) + 1
    return counts


def _control(values):
    values[0] = values[0] * 0.5


def main() -> int:
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        print("cuda_ir_check.py needs the CUDA simulator off (unset NUMBA_ENABLE_CUDASIM)",
              file=sys.stderr)
        return 2
    request = json.load(sys.stdin)
    from numba import types
    from numlstm.backends import cuda_kernels
    _compile_device_functions_without_a_device()
    report = {name: double_lines(getattr(cuda_kernels, name).py_func,
                                 [_numba_type(spec) for spec in specs])
              for name, specs in request["kernels"].items()}
    if request.get("control"):
        report["control"] = double_lines(_control, [types.Array(types.float32, 1, "C")])
    if request.get("divisions"):
        report["divisions"] = {
            name: divisions(getattr(cuda_kernels, name).py_func,
                            [_numba_type(spec) for spec in specs])
            for name, specs in request["kernels"].items()}
    json.dump(report, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
