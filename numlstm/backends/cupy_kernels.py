"""The fused gate kernels of the ``cupy`` backend: two named, module-level ``ElementwiseKernel``s.

Importing this module imports CuPy (the registry imports it only when the ``cupy`` backend is
asked for). The gate math is written here once in CUDA C++, CuPy's kernel language: the
activations and their derivatives as the device functions of :data:`PREAMBLE`, the step's
equations in the two kernels. It mirrors :mod:`numlstm.backends.gate_math`'s generic update
formula for formula (the same activation codes from :mod:`numlstm.activations`, the same
overflow-safe sigmoid, derivatives written through the activation's output, 0 at the kinks),
and the parity suite holds it to the reference.

Both kernels work on one timestep of a time-major batch: one element per ``(row b, unit j)``,
``i = b * units + j``; the four gate pre-activations / gradients of a row are
``[i | f | g | o]`` blocks of ``units`` in a ``(B, 4H)`` C-contiguous array.
"""

from __future__ import annotations

import cupy

from .. import activations as A

PREAMBLE = f"""
#define NUMLSTM_TANH {A.TANH}
#define NUMLSTM_SIGMOID {A.SIGMOID}
#define NUMLSTM_RELU {A.RELU}
#define NUMLSTM_HARD_SIGMOID {A.HARD_SIGMOID}
#define NUMLSTM_HARD_SIGMOID_KERAS2 {A.HARD_SIGMOID_KERAS2}
#define NUMLSTM_SOFTSIGN {A.SOFTSIGN}
#define NUMLSTM_ELU {A.ELU}
#define NUMLSTM_SELU {A.SELU}
#define NUMLSTM_EXPONENTIAL {A.EXPONENTIAL}
#define NUMLSTM_SOFTPLUS {A.SOFTPLUS}
#define NUMLSTM_RELU6 {A.RELU6}
#define NUMLSTM_LEAKY_RELU {A.LEAKY_RELU}
#define NUMLSTM_HARD_TANH {A.HARD_TANH}
#define NUMLSTM_LOG_SIGMOID {A.LOG_SIGMOID}
#define NUMLSTM_SELU_SCALE {A.SELU_SCALE!r}
#define NUMLSTM_SELU_SCALE_ALPHA {A.SELU_SCALE * A.SELU_ALPHA!r}
#define NUMLSTM_LEAKY_SLOPE {A.LEAKY_RELU_SLOPE!r}

template <typename F>
__device__ F numlstm_activate(int code, F x) {{
    switch (code) {{
    case NUMLSTM_TANH: return tanh(x);
    // exp(-x) overflows to +inf for very negative x, and 1 / inf is 0: never NaN.
    case NUMLSTM_SIGMOID: return F(1) / (F(1) + exp(-x));
    case NUMLSTM_RELU: return x > F(0) ? x : F(0);
    case NUMLSTM_HARD_SIGMOID: return min(max(x / F(6) + F(0.5), F(0)), F(1));
    case NUMLSTM_HARD_SIGMOID_KERAS2: return min(max(F(0.2) * x + F(0.5), F(0)), F(1));
    case NUMLSTM_SOFTSIGN: return x / (F(1) + abs(x));
    // exp only of non-positive values where the result is bounded (no overflow)
    case NUMLSTM_ELU: return x > F(0) ? x : expm1(min(x, F(0)));
    case NUMLSTM_SELU:
        return x > F(0) ? F(NUMLSTM_SELU_SCALE) * x
                        : F(NUMLSTM_SELU_SCALE_ALPHA) * expm1(min(x, F(0)));
    case NUMLSTM_EXPONENTIAL: return exp(x);
    case NUMLSTM_SOFTPLUS: return max(x, F(0)) + log1p(exp(-abs(x)));
    case NUMLSTM_RELU6: return min(max(x, F(0)), F(6));
    case NUMLSTM_LEAKY_RELU: return x > F(0) ? x : F(NUMLSTM_LEAKY_SLOPE) * x;
    case NUMLSTM_HARD_TANH: return min(max(x, F(-1)), F(1));
    case NUMLSTM_LOG_SIGMOID: return min(x, F(0)) - log1p(exp(-abs(x)));
    default: return x;  // linear
    }}
}}

// d act(z)/dz through the output y = act(z); 0 at the kinks.
template <typename F>
__device__ F numlstm_derivative(int code, F y) {{
    switch (code) {{
    case NUMLSTM_TANH: return F(1) - y * y;
    case NUMLSTM_SIGMOID: return y * (F(1) - y);
    case NUMLSTM_RELU: return y > F(0) ? F(1) : F(0);
    case NUMLSTM_HARD_SIGMOID: return (y > F(0) && y < F(1)) ? F(1) / F(6) : F(0);
    case NUMLSTM_HARD_SIGMOID_KERAS2: return (y > F(0) && y < F(1)) ? F(0.2) : F(0);
    case NUMLSTM_SOFTSIGN: return (F(1) - abs(y)) * (F(1) - abs(y));
    case NUMLSTM_ELU: return y > F(0) ? F(1) : y + F(1);
    case NUMLSTM_SELU:
        return y > F(0) ? F(NUMLSTM_SELU_SCALE) : y + F(NUMLSTM_SELU_SCALE_ALPHA);
    case NUMLSTM_EXPONENTIAL: return y;
    case NUMLSTM_SOFTPLUS: return -expm1(-y);
    case NUMLSTM_RELU6: return (y > F(0) && y < F(6)) ? F(1) : F(0);
    case NUMLSTM_LEAKY_RELU: return y > F(0) ? F(1) : F(NUMLSTM_LEAKY_SLOPE);
    case NUMLSTM_HARD_TANH: return (y > F(-1) && y < F(1)) ? F(1) : F(0);
    case NUMLSTM_LOG_SIGMOID: return -expm1(y);
    default: return F(1);  // linear
    }}
}}
"""

#: One forward timestep for every ``(row, unit)``. ``recurrent`` (B, 4H) is
#: ``(h_{t-1} * r) @ recurrent_kernel`` and ``x_proj`` (B, 4H) is ``x_t @ kernel + bias``;
#: ``step`` (B,) says which rows are processed. Writes the new states, the output, the hidden
#: state entering the step (``h_before``) and the activated gates (``gates``, (B, 4H)).
LSTM_GATES_FORWARD = cupy.ElementwiseKernel(
    in_params=("raw T x_proj, raw T recurrent, T h_prev, T c_prev, raw bool step, "
               "bool has_mask, int32 activation, int32 recurrent_activation, int32 units, "
               "bool zero_output_for_mask"),
    out_params="T h_new, T c_new, T output, T h_before, raw T gates",
    operation="""
    const ptrdiff_t b = i / units;
    const ptrdiff_t j = i % units;
    const T hp = h_prev;
    const T cp = c_prev;
    h_before = hp;
    if (has_mask && !step[b]) {
        h_new = hp;
        c_new = cp;
        output = zero_output_for_mask ? T(0) : hp;
    } else {
        const ptrdiff_t row = b * 4 * units + j;
        const T gi = numlstm_activate(recurrent_activation,
                                      T(x_proj[row] + recurrent[row]));
        const T gf = numlstm_activate(recurrent_activation,
                                      T(x_proj[row + units] + recurrent[row + units]));
        const T gg = numlstm_activate(activation,
                                      T(x_proj[row + 2 * units] + recurrent[row + 2 * units]));
        const T go = numlstm_activate(recurrent_activation,
                                      T(x_proj[row + 3 * units] + recurrent[row + 3 * units]));
        const T c = gf * cp + gi * gg;
        const T h = go * numlstm_activate(activation, c);
        c_new = c;
        h_new = h;
        output = h;
        gates[row] = gi;
        gates[row + units] = gf;
        gates[row + 2 * units] = gg;
        gates[row + 3 * units] = go;
    }
    """,
    name="numlstm_lstm_gates_forward",
    preamble=PREAMBLE,
)

#: One backward timestep for every ``(row, unit)``: from the gradients reaching the states
#: after the step (``dh``, ``dc``) and the output gradient, the pre-activation gradients
#: ``dz`` (B, 4H), the gradient of the previous cell state (``dc_out``) and, for masked rows,
#: the carried hidden-state gradient (``dh_out``; processed rows get theirs from
#: ``dz @ recurrent_kernel.T`` afterwards).
LSTM_GATES_BACKWARD = cupy.ElementwiseKernel(
    in_params=("raw T gates, T cell, T c_prev, T dh, T dc, T grad_output, raw bool step, "
               "bool has_mask, bool zero_output_for_mask, int32 activation, "
               "int32 recurrent_activation, int32 units"),
    out_params="T dh_out, T dc_out, raw T dz",
    operation="""
    const ptrdiff_t b = i / units;
    const ptrdiff_t j = i % units;
    const ptrdiff_t row = b * 4 * units + j;
    if (has_mask && !step[b]) {
        dh_out = zero_output_for_mask ? dh : T(dh + grad_output);
        dc_out = dc;
        dz[row] = T(0);
        dz[row + units] = T(0);
        dz[row + 2 * units] = T(0);
        dz[row + 3 * units] = T(0);
    } else {
        const T gi = gates[row];
        const T gf = gates[row + units];
        const T gg = gates[row + 2 * units];
        const T go = gates[row + 3 * units];
        const T dh_total = dh + grad_output;
        const T act_c = numlstm_activate(activation, cell);
        const T dc_total = dc + dh_total * go * numlstm_derivative(activation, act_c);
        dz[row] = dc_total * gg * numlstm_derivative(recurrent_activation, gi);
        dz[row + units] = dc_total * c_prev * numlstm_derivative(recurrent_activation, gf);
        dz[row + 2 * units] = dc_total * gi * numlstm_derivative(activation, gg);
        dz[row + 3 * units] = dh_total * act_c * numlstm_derivative(recurrent_activation, go);
        dc_out = dc_total * gf;
        dh_out = dh_total;
    }
    """,
    name="numlstm_lstm_gates_backward",
    preamble=PREAMBLE,
)
