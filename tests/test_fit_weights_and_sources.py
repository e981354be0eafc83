"""Class weights, sample weights and generators of batches in ``fit``/``evaluate``: the
paths where they meet (a validation split, a generator, integer weights, a used-up
generator)."""

from __future__ import annotations

import numpy as np
import pytest

import numlstm


def _classifier(seed=0, learning_rate=0.05):
    model = numlstm.Sequential([numlstm.Input((4, 2), dtype="float64"),
                                numlstm.LSTM(3, dtype="float64", seed=1),
                                numlstm.Dense(2, activation="softmax", dtype="float64",
                                              seed=2)], seed=seed)
    model.compile(numlstm.optimizers.SGD(learning_rate), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def _data(n=12, seed=3):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 4, 2)), rng.integers(0, 2, size=n)


def test_class_weight_does_not_weight_the_validation_split():
    """Keras weights the training samples only: the held-out part's val_loss is the plain
    evaluate of that part (learning rate 0: the weights do not move)."""
    x, y = _data()
    model = _classifier(learning_rate=0.0)
    history = model.fit(x, y, epochs=1, batch_size=4, validation_split=0.5,
                        class_weight={0: 0.0, 1: 3.0}, verbose=0, shuffle=False)
    expected = model.evaluate(x[6:], y[6:], batch_size=4, return_dict=True)
    assert history.history["val_loss"][0] == pytest.approx(expected["loss"], rel=1e-12)
    # ... while the training loss is weighted: class 0 counts 0, class 1 three times
    trained = model.evaluate(x[:6], y[:6], batch_size=4, return_dict=True,
                             sample_weight=np.where(y[:6] == 1, 3.0, 0.0))
    assert history.history["loss"][0] == pytest.approx(trained["loss"], rel=1e-12)


def test_class_weight_applies_to_a_generators_batches():
    """A generator of (x, y) batches with class_weight trains exactly as the same batches
    given as arrays; a batch that carries its own weights is refused with class_weight."""
    x, y = _data()
    weights = {0: 0.25, 1: 2.0}
    on_arrays, on_batches = _classifier(), _classifier()
    expected = on_arrays.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0,
                             class_weight=weights).history["loss"]
    batches = [(x[i:i + 4], y[i:i + 4]) for i in range(0, 12, 4)]
    losses = on_batches.fit(iter(batches), epochs=1, verbose=0,
                            class_weight=weights).history["loss"]
    np.testing.assert_allclose(losses, expected, rtol=1e-12)
    for a, b in zip(on_arrays.get_weights(), on_batches.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    unweighted = _classifier().fit(iter(batches), epochs=1, verbose=0).history["loss"]
    assert not np.allclose(unweighted, losses)
    with pytest.raises(ValueError, match="class_weight and sample_weight"):
        _classifier().fit(iter([(x[:4], y[:4], np.ones(4))]), epochs=1, verbose=0,
                          class_weight=weights)


def test_whole_number_and_boolean_sample_weights_are_taken_as_floats():
    x, y = _data()
    as_ints = np.where(y == 1, 5, 1)
    a, b = _classifier(), _classifier()
    la = a.fit(x, y, sample_weight=as_ints, epochs=1, verbose=0).history["loss"]
    lb = b.fit(x, y, sample_weight=as_ints.astype(np.float64), epochs=1,
               verbose=0).history["loss"]
    assert la == lb
    assert a.evaluate(x, y, sample_weight=(y == 1)) == pytest.approx(
        a.evaluate(x, y, sample_weight=(y == 1).astype(np.float64)), rel=1e-15)
    assert a.evaluate(x, y, sample_weight=list(as_ints)) == pytest.approx(
        a.evaluate(x, y, sample_weight=as_ints.astype(np.float64)), rel=1e-15)


def test_a_used_up_generator_is_refused_not_reported_as_a_zero_loss():
    """A generator can be read once: as validation data its second pass has nothing, which
    must not become val_loss 0.0 (the 'best' epoch for EarlyStopping)."""
    x, y = _data()
    model = _classifier()
    validation = ((x[i:i + 4], y[i:i + 4]) for i in range(0, 12, 4))
    with pytest.raises(ValueError, match="no batch to evaluate"):
        model.fit(x, y, epochs=2, verbose=0, validation_data=validation)
    with pytest.raises(ValueError, match="no batch to evaluate"):
        model.evaluate(iter([]))
    class Batches:              # an iterable (not an iterator): read afresh each epoch
        def __iter__(self):
            return iter([(x[:6], y[:6]), (x[6:], y[6:])])

    history = model.fit(x, y, epochs=2, verbose=0, validation_data=Batches())
    assert len(history.history["val_loss"]) == 2 and min(history.history["val_loss"]) > 0
