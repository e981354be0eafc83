"""numlstm.convert: exact conversion between PyTorch's nn.LSTM layout and numlstm's."""

import re

import numpy as np
import pytest

from numlstm.convert import from_torch, from_torch_state_dict, to_torch

H, D = 5, 3


def torch_weights(hidden=H, features=D, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "weight_ih": rng.standard_normal((4 * hidden, features)).astype(dtype),
        "weight_hh": rng.standard_normal((4 * hidden, hidden)).astype(dtype),
        "bias_ih": rng.standard_normal(4 * hidden).astype(dtype),
        "bias_hh": rng.standard_normal(4 * hidden).astype(dtype),
    }


def keras_weights(hidden=H, features=D, dtype=np.float32, seed=1):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((features, 4 * hidden)).astype(dtype),
            rng.standard_normal((hidden, 4 * hidden)).astype(dtype),
            rng.standard_normal(4 * hidden).astype(dtype))


# -- from_torch -------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_from_torch_layout_and_dtype(dtype):
    w = torch_weights(dtype=dtype)
    kernel, recurrent_kernel, bias = from_torch(**w)
    assert kernel.shape == (D, 4 * H)
    assert recurrent_kernel.shape == (H, 4 * H)
    assert bias.shape == (4 * H,)
    for a in (kernel, recurrent_kernel, bias):
        assert a.dtype == dtype
        assert a.flags.c_contiguous
    assert np.array_equal(kernel, w["weight_ih"].T)
    assert np.array_equal(recurrent_kernel, w["weight_hh"].T)
    assert np.array_equal(bias, w["bias_ih"] + w["bias_hh"])


def test_from_torch_gate_blocks_keep_their_order():
    # Row block g of weight_ih (gate i, f, g, o) must become column block g of the kernel.
    weight_ih = np.repeat(np.arange(4.0), H)[:, None] * np.ones((1, D))
    weight_hh = np.repeat(np.arange(4.0), H)[:, None] * np.ones((1, H))
    bias_ih = np.repeat(np.arange(4.0), H)
    kernel, recurrent_kernel, bias = from_torch(weight_ih, weight_hh, bias_ih)
    for gate in range(4):
        block = slice(gate * H, (gate + 1) * H)
        assert np.all(kernel[:, block] == gate)
        assert np.all(recurrent_kernel[:, block] == gate)
        assert np.all(bias[block] == gate)


def test_from_torch_missing_biases_are_zeros():
    w = torch_weights()
    assert np.array_equal(from_torch(w["weight_ih"], w["weight_hh"])[2], np.zeros(4 * H))
    assert np.array_equal(from_torch(w["weight_ih"], w["weight_hh"], bias_ih=w["bias_ih"])[2],
                          w["bias_ih"])
    assert np.array_equal(from_torch(w["weight_ih"], w["weight_hh"], bias_hh=w["bias_hh"])[2],
                          w["bias_hh"])
    assert from_torch(w["weight_ih"], w["weight_hh"])[2].dtype == np.float32


def test_from_torch_returns_copies_even_for_one_feature():
    # The transpose of a (4H, 1) array is C-contiguous already; it must still be a copy.
    w = torch_weights(features=1)
    kernel, recurrent_kernel, bias = from_torch(w["weight_ih"], w["weight_hh"],
                                                bias_ih=w["bias_ih"])
    for result, source in ((kernel, w["weight_ih"]), (recurrent_kernel, w["weight_hh"]),
                           (bias, w["bias_ih"])):
        assert not np.shares_memory(result, source)
    kernel += 1.0
    bias += 1.0
    assert not np.array_equal(kernel, w["weight_ih"].T)
    assert not np.array_equal(bias, w["bias_ih"])


def test_from_torch_accepts_array_likes_and_mixed_dtypes():
    w = torch_weights(hidden=1, features=2)
    kernel, recurrent_kernel, bias = from_torch(w["weight_ih"].tolist(),
                                                w["weight_hh"].tolist(),
                                                [0.0, 1.0, 2.0, 3.0], w["bias_hh"])
    assert kernel.dtype == np.float64   # Python floats are float64
    assert np.array_equal(kernel, w["weight_ih"].T.astype(np.float64))
    # Integers are refused like everywhere in numlstm; float32 with float64 is float64.
    with pytest.raises(TypeError, match=r"weight_ih must be an array of floats \(float32 or "
                                        r"float64\); got integer data of dtype int64"):
        from_torch(np.ones((4, 2), dtype=np.int64), np.ones((4, 1), dtype=np.int64))
    mixed = from_torch(w["weight_ih"], w["weight_hh"].astype(np.float64))
    assert all(a.dtype == np.float64 for a in mixed)


def test_from_torch_dtype_sums_the_biases_in_that_dtype():
    # Two float32 biases whose float64 sum is not a float32 number.
    w = torch_weights(hidden=1, features=1)
    w["bias_ih"] = np.full(4, 1.0, np.float32)
    w["bias_hh"] = np.full(4, 2.0 ** -30, np.float32)
    assert np.array_equal(from_torch(**w)[2], np.full(4, 1.0, np.float32))
    kernel, recurrent_kernel, bias = from_torch(**w, dtype=np.float64)
    assert np.array_equal(bias, np.full(4, 1.0 + 2.0 ** -30))
    assert kernel.dtype == recurrent_kernel.dtype == bias.dtype == np.float64
    assert np.array_equal(kernel, w["weight_ih"].T.astype(np.float64))
    assert all(a.dtype == np.float32
               for a in from_torch(**torch_weights(dtype=np.float64), dtype="float32"))
    for bad in (np.int32, "complex128", "float16"):
        with pytest.raises(ValueError, match="dtype must be 'float32' or 'float64'"):
            from_torch(**w, dtype=bad)
    with pytest.raises(TypeError, match="dtype must be 'float32' or 'float64'"):
        from_torch(**w, dtype="not a dtype")


# -- to_torch and round trips -----------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_to_torch_layout(dtype):
    kernel, recurrent_kernel, bias = keras_weights(dtype=dtype)
    t = to_torch(kernel, recurrent_kernel, bias)
    assert sorted(t) == ["bias_hh", "bias_ih", "weight_hh", "weight_ih"]
    assert t["weight_ih"].shape == (4 * H, D)
    assert t["weight_hh"].shape == (4 * H, H)
    assert np.array_equal(t["weight_ih"], kernel.T)
    assert np.array_equal(t["weight_hh"], recurrent_kernel.T)
    assert np.array_equal(t["bias_ih"], bias)
    assert np.array_equal(t["bias_hh"], np.zeros(4 * H))
    for a in t.values():
        assert a.dtype == dtype
        assert a.flags.c_contiguous
    assert not np.shares_memory(t["bias_ih"], bias)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_numlstm_torch_numlstm_is_exact(dtype):
    weights = keras_weights(dtype=dtype)
    back = from_torch(**to_torch(*weights))
    for original, result in zip(weights, back):
        assert result.dtype == dtype
        assert np.array_equal(original, result)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_torch_numlstm_torch_is_exact(dtype):
    w = torch_weights(dtype=dtype)
    back = to_torch(*from_torch(**w))
    assert np.array_equal(back["weight_ih"], w["weight_ih"])
    assert np.array_equal(back["weight_hh"], w["weight_hh"])
    # Only the sum of torch's two biases is meaningful, and it survives exactly.
    assert np.array_equal(back["bias_ih"] + back["bias_hh"], w["bias_ih"] + w["bias_hh"])
    assert back["bias_ih"].dtype == dtype


def test_to_torch_layer_names():
    weights = keras_weights()
    assert sorted(to_torch(*weights, layer=1)) == [
        "bias_hh_l1", "bias_ih_l1", "weight_hh_l1", "weight_ih_l1"]
    assert sorted(to_torch(*weights, layer=0, reverse=True)) == [
        "bias_hh_l0_reverse", "bias_ih_l0_reverse", "weight_hh_l0_reverse",
        "weight_ih_l0_reverse"]
    with pytest.raises(ValueError, match="reverse=True only names keys together with layer"):
        to_torch(*weights, reverse=True)


# -- shape validation -------------------------------------------------------------------------

def test_from_torch_rejects_mismatched_weight_hh():
    weight_ih = np.zeros((256, 32), np.float32)
    with pytest.raises(ValueError, match=re.escape(
            "weight_hh must have shape (4*H, H) = (256, 64) to match weight_ih (256, 32); "
            "got shape (256, 32)")):
        from_torch(weight_ih, np.zeros((256, 32), np.float32))
    with pytest.raises(ValueError, match=re.escape(
            "weight_hh must have shape (4*H, H) = (256, 64) to match weight_ih (256, 32); "
            "got shape (128, 64)")):
        from_torch(weight_ih, np.zeros((128, 64), np.float32))
    with pytest.raises(ValueError, match=re.escape("got shape (256,)")):
        from_torch(weight_ih, np.zeros(256, np.float32))


def test_from_torch_rejects_proj_size_weights():
    # nn.LSTM(32, 64, proj_size=16) has weight_hh of shape (256, 16).
    with pytest.raises(ValueError, match=r"got shape \(256, 16\).*proj_size is not supported"):
        from_torch(np.zeros((256, 32)), np.zeros((256, 16)))


@pytest.mark.parametrize("shape", [(10, 3), (0, 3), (8,), (8, 3, 1), (8, 0)])
def test_from_torch_rejects_bad_weight_ih(shape):
    with pytest.raises(ValueError, match=re.escape(
            f"weight_ih must have shape (4*H, D) with H >= 1 and D >= 1 (4*H rows: one block "
            f"per gate i, f, g, o); got shape {shape}")):
        from_torch(np.zeros(shape), np.zeros((8, 2)))


@pytest.mark.parametrize("name", ["bias_ih", "bias_hh"])
@pytest.mark.parametrize("shape", [(19,), (1, 20), ()])
def test_from_torch_rejects_bad_bias(name, shape):
    w = torch_weights()
    w[name] = np.zeros(shape)
    with pytest.raises(ValueError, match=re.escape(
            f"{name} must have shape (4*H,) = (20,) to match weight_ih (20, 3); "
            f"got shape {shape}")):
        from_torch(**w)


def test_from_torch_rejects_non_numbers():
    w = torch_weights()
    w["weight_ih"] = np.full((20, 3), "a")
    with pytest.raises(TypeError, match=r"weight_ih must be an array of floats \(float32 or "
                                        r"float64\); got string data of dtype <U1"):
        from_torch(**w)
    w = torch_weights()
    w["bias_hh"] = np.zeros(20, dtype=bool)
    with pytest.raises(TypeError, match="bias_hh must be an array of floats"):
        from_torch(**w)
    w = torch_weights()
    w["weight_hh"] = w["weight_hh"] * 1j
    with pytest.raises(TypeError, match="weight_hh must be an array of floats"):
        from_torch(**w)
    w = torch_weights()
    w["weight_hh"][3, 0] = np.nan
    with pytest.raises(ValueError, match=r"weight_hh must contain only finite values; got nan "
                                         r"at index \(3, 0\)"):
        from_torch(**w)


def test_to_torch_rejects_bad_shapes():
    kernel, recurrent_kernel, bias = keras_weights()
    with pytest.raises(ValueError, match=re.escape(
            "recurrent_kernel must have shape (H, 4*H) with H >= 1; got shape (5, 21)")):
        to_torch(kernel, np.zeros((5, 21)), bias)
    with pytest.raises(ValueError, match=re.escape(
            "kernel must have shape (D, 4*H) = (3, 20) with D >= 1 to match recurrent_kernel "
            "(5, 20); got shape (3, 16)")):
        to_torch(np.zeros((3, 16)), recurrent_kernel, bias)
    with pytest.raises(ValueError, match=re.escape(
            "kernel must have shape (D, 4*H) = (D, 20) with D >= 1 to match recurrent_kernel "
            "(5, 20); got shape (20,)")):
        to_torch(np.zeros(20), recurrent_kernel, bias)
    with pytest.raises(ValueError, match=re.escape(
            "bias must have shape (4*H,) = (20,) to match recurrent_kernel (5, 20); "
            "got shape (16,)")):
        to_torch(kernel, recurrent_kernel, np.zeros(16))


# -- state dicts ------------------------------------------------------------------------------

def bidirectional_two_layer_state_dict(dtype=np.float32):
    """Names and shapes of nn.LSTM(D, H, num_layers=2, bidirectional=True).state_dict()."""
    state = {}
    for layer, features in ((0, D), (1, 2 * H)):
        for suffix in ("", "_reverse"):
            w = torch_weights(features=features, dtype=dtype, seed=10 * layer + len(suffix))
            state.update({f"{k}_l{layer}{suffix}": v for k, v in w.items()})
    return state


@pytest.mark.parametrize("layer", [0, 1])
@pytest.mark.parametrize("reverse", [False, True])
def test_from_torch_state_dict_picks_the_right_arrays(layer, reverse):
    state = bidirectional_two_layer_state_dict()
    suffix = f"_l{layer}" + ("_reverse" if reverse else "")
    kernel, recurrent_kernel, bias = from_torch_state_dict(state, layer=layer, reverse=reverse)
    assert np.array_equal(kernel, state[f"weight_ih{suffix}"].T)
    assert np.array_equal(recurrent_kernel, state[f"weight_hh{suffix}"].T)
    assert np.array_equal(bias, state[f"bias_ih{suffix}"] + state[f"bias_hh{suffix}"])
    assert kernel.shape == ((D if layer == 0 else 2 * H), 4 * H)


def test_from_torch_state_dict_round_trip_through_to_torch_names():
    weights = keras_weights(dtype=np.float64)
    state = to_torch(*weights, layer=3, reverse=True)
    back = from_torch_state_dict(state, layer=3, reverse=True)
    for original, result in zip(weights, back):
        assert np.array_equal(original, result)
        assert result.dtype == np.float64


def test_from_torch_state_dict_prefix_and_array_likes():
    w = torch_weights(hidden=1, features=2)
    state = {f"encoder.lstm.{k}_l0": v.tolist() for k, v in w.items()}
    kernel, _, bias = from_torch_state_dict(state, prefix="encoder.lstm.")
    assert np.array_equal(kernel, w["weight_ih"].T.astype(np.float64))
    assert np.array_equal(bias, w["bias_ih"].astype(np.float64) + w["bias_hh"])


def test_from_torch_state_dict_dtype():
    state = bidirectional_two_layer_state_dict(dtype=np.float32)
    weights = from_torch_state_dict(state, layer=1, dtype=np.float64)
    assert all(a.dtype == np.float64 for a in weights)
    assert np.array_equal(weights[2], state["bias_ih_l1"].astype(np.float64)
                          + state["bias_hh_l1"].astype(np.float64))


def test_from_torch_state_dict_without_biases():
    w = torch_weights()
    state = {"weight_ih_l0": w["weight_ih"], "weight_hh_l0": w["weight_hh"]}
    assert np.array_equal(from_torch_state_dict(state)[2], np.zeros(4 * H))


def test_from_torch_state_dict_missing_key_lists_available():
    state = bidirectional_two_layer_state_dict()
    with pytest.raises(KeyError, match=re.escape(
            "state_dict has no key 'weight_ih_l2' (layer=2, reverse=False); available keys: "
            "['bias_hh_l0', ")):
        from_torch_state_dict(state, layer=2)
    del state["weight_hh_l1_reverse"]
    with pytest.raises(KeyError, match=r"no key 'weight_hh_l1_reverse'.*'weight_ih_l1_reverse'"):
        from_torch_state_dict(state, layer=1, reverse=True)
    unidirectional = {k: v for k, v in state.items() if "reverse" not in k}
    with pytest.raises(KeyError, match="no key 'weight_ih_l0_reverse'"):
        from_torch_state_dict(unidirectional, reverse=True)


def test_from_torch_state_dict_one_bias_missing():
    state = bidirectional_two_layer_state_dict()
    del state["bias_hh_l0"]
    with pytest.raises(ValueError, match=re.escape(
            "state_dict has only one of 'bias_ih_l0' and 'bias_hh_l0'; missing 'bias_hh_l0'")):
        from_torch_state_dict(state)


def test_from_torch_state_dict_rejects_proj_size():
    w = torch_weights()
    state = {"weight_ih_l0": w["weight_ih"], "weight_hh_l0": np.zeros((4 * H, 2)),
             "weight_hr_l0": np.zeros((2, H))}
    with pytest.raises(ValueError, match="weight_hr_l0: the LSTM was built with proj_size, "
                                         "which numlstm does not support"):
        from_torch_state_dict(state)


def test_from_torch_state_dict_checks_its_arguments():
    state = bidirectional_two_layer_state_dict()
    with pytest.raises(ValueError, match="layer must be a non-negative integer; got layer=-1"):
        from_torch_state_dict(state, layer=-1)
    for bad in (1.0, True, "0"):
        with pytest.raises(TypeError, match="layer must be a non-negative integer; got layer="):
            from_torch_state_dict(state, layer=bad)
    with pytest.raises(TypeError, match="reverse must be True or False"):
        from_torch_state_dict(state, reverse="yes")
    with pytest.raises(TypeError, match="prefix must be a string"):
        from_torch_state_dict(state, prefix=None)
