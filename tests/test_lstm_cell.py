"""``LSTMCell``: the weights and the one-timestep step, on its own and as an LSTM's cell."""

import numpy as np
import pytest

import numlstm
from numlstm.layers import LSTMCell


def test_a_cell_steps_as_its_lstm_runs_a_sequence():
    """Stepping a cell through a sequence gives the LSTM's outputs with the same weights."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5, 4)).astype(np.float32)
    layer = numlstm.LSTM(6, return_sequences=True, seed=1)
    expected = layer(x)
    cell = LSTMCell(6)
    cell.set_weights(layer.get_weights())
    states = [np.zeros((3, 6), np.float32), np.zeros((3, 6), np.float32)]
    for t in range(5):
        h, states = cell(x[:, t], states)
        np.testing.assert_allclose(h, expected[:, t], rtol=1e-5, atol=1e-6)


def test_the_layer_holds_its_weights_and_options_in_its_cell():
    layer = numlstm.LSTM(3, activation="relu", dropout=0.25, seed=2, name="encoder")
    layer.build((None, None, 2))
    assert isinstance(layer.cell, LSTMCell)
    assert layer.kernel is layer.cell.kernel and layer.cell.input_features == 2
    assert (layer.cell.activation, layer.cell.dropout, layer.cell.seed) == ("relu", 0.25, 2)
    layer.name = "renamed"                       # what a model does to a duplicate name
    layer.seed = 7
    assert (layer.cell.name, layer.cell.seed) == ("renamed", 7)
    zeros = [np.zeros_like(w) for w in layer.get_weights()]
    layer.set_weights(zeros)
    assert not layer.cell.kernel.any()


def test_a_cell_is_built_from_a_2d_or_3d_input_shape_and_round_trips_its_config():
    cell = LSTMCell(4, recurrent_activation="hard_sigmoid", use_bias=False, seed=3)
    cell.build((None, 5))
    assert [w.shape for w in cell.get_weights()] == [(5, 16), (4, 16)]
    assert cell.count_params() == 4 * 4 * (5 + 4)
    again = LSTMCell.from_config(cell.get_config())
    again.build((None, None, 5))
    for mine, theirs in zip(cell.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(mine, theirs)
    with pytest.raises(ValueError, match=r"input_shape must be a tuple \(batch, features\)"):
        cell.build((5,))


def test_a_model_refuses_a_bare_cell():
    with pytest.raises(TypeError, match="one timestep: a model runs sequences, with LSTM"):
        numlstm.Sequential([numlstm.Input((3, 2)), LSTMCell(4)])
