"""The reference's backward pass against central finite differences, in float64.

The loss is L = Σ outputs·Go + Σ h·Gh + Σ c·Gc with random Go, Gh, Gc, so every output of the
forward contributes. Every entry of every gradient is checked.
"""

import numpy as np
import pytest

from numlstm.functional import lstm_backward

from conftest import make_problem

EPS = 1e-6
ARGUMENTS = ("x", "kernel", "recurrent_kernel", "bias", "h0", "c0")


def loss(problem) -> float:
    result = problem.forward("numpy", return_cache=False)
    return float(np.sum(result.outputs * problem.grad_outputs) + np.sum(result.h * problem.grad_h)
                 + np.sum(result.c * problem.grad_c))


def numerical_gradient(problem, name: str) -> np.ndarray:
    array = getattr(problem, name)
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        original = array[index]
        array[index] = original + EPS
        plus = loss(problem)
        array[index] = original - EPS
        minus = loss(problem)
        array[index] = original
        grad[index] = (plus - minus) / (2 * EPS)
    return grad


CASES = {
    "plain": dict(),
    "mask_output_carried_state": dict(mask="holes"),
    "mask_zero_output": dict(mask="holes", zero_output_for_mask=True),
    "reverse": dict(reverse=True),
    "reverse_masked": dict(mask="holes", reverse=True),
    "recurrent_dropout": dict(dropout=True, mask="random"),
    "relu_hard_sigmoid": dict(activation="relu", recurrent_activation="hard_sigmoid"),
    "linear_keras2_hard_sigmoid": dict(activation="linear",
                                       recurrent_activation="hard_sigmoid_keras2"),
    "sigmoid_tanh": dict(activation="sigmoid", recurrent_activation="tanh"),
    # the activations of codes 6 and up, as activation and as gates (the kinks of relu6,
    # hard_tanh and leaky_relu are met with probability 0 by random inputs; exponential gates
    # make c grow fast, so that case takes smaller weights to keep the loss near 1)
    "softsign_elu": dict(activation="softsign", recurrent_activation="elu"),
    "selu_softplus": dict(activation="selu", recurrent_activation="softplus"),
    "elu_log_sigmoid": dict(activation="elu", recurrent_activation="log_sigmoid"),
    "exponential_softsign": dict(activation="exponential", recurrent_activation="softsign"),
    "softsign_exponential": dict(activation="softsign",
                                 recurrent_activation="exponential", scale=0.3),
    "softplus_selu": dict(activation="softplus", recurrent_activation="selu"),
    "hard_tanh_relu6": dict(activation="hard_tanh", recurrent_activation="relu6"),
    "leaky_relu_hard_tanh": dict(activation="leaky_relu", recurrent_activation="hard_tanh"),
    "relu6_leaky_relu": dict(activation="relu6", recurrent_activation="leaky_relu"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_reference_gradients_match_finite_differences(case):
    problem = make_problem(batch=3, timesteps=4, features=3, units=2, seed=7, **CASES[case])
    analytic = lstm_backward(problem.forward("numpy").cache, grad_outputs=problem.grad_outputs,
                             grad_h=problem.grad_h, grad_c=problem.grad_c)
    for name in ARGUMENTS:
        numeric = numerical_gradient(problem, name)
        assert np.abs(numeric).max() > 0 or name in ("h0", "c0"), name
        np.testing.assert_allclose(getattr(analytic, name), numeric, rtol=1e-6, atol=1e-8,
                                   err_msg=f"d loss / d {name} ({case})")


def test_finite_difference_check_can_fail():
    """Guard against a check that cannot fail: a wrong gradient (sign flipped on one entry of
    the recurrent kernel's) is caught."""
    problem = make_problem(batch=2, timesteps=3, features=2, units=2, seed=3)
    analytic = lstm_backward(problem.forward("numpy").cache, grad_outputs=problem.grad_outputs,
                             grad_h=problem.grad_h, grad_c=problem.grad_c)
    wrong = analytic.recurrent_kernel.copy()
    wrong[0, 0] = -wrong[0, 0] + 1e-3
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(wrong, numerical_gradient(problem, "recurrent_kernel"),
                                   rtol=1e-6, atol=1e-8)
