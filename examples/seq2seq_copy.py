"""An encoder-decoder (sequence-to-sequence) LSTM built with the functional API, trained on a
toy task -- copy a sequence of tokens -- and then decoded one token at a time, the way
Keras's character-level seq2seq tutorial does it.

Training uses teacher forcing: the decoder reads a start symbol followed by the target
shifted by one, and starts from the encoder's final states (``initial_state=[h, c]``).
Decoding reuses the same layers in two inference models: the encoder alone (its states), and
the decoder one step at a time from given states, fed its own previous prediction.

    python examples/seq2seq_copy.py                 # vocabulary 8, length 6, 30 epochs
    python examples/seq2seq_copy.py --epochs 3 --samples 256
"""

from __future__ import annotations

import argparse

import numpy as np

import numlstm
from numlstm import LSTM, Dense, Input, Model


def copy_task(samples: int, vocabulary: int, length: int, seed: int):
    """One-hot sources (samples, length, vocabulary), the decoder's teacher-forced inputs
    (samples, length, vocabulary + 1: a start symbol, then the source shifted by one) and the
    target token ids (samples, length): the source itself."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, vocabulary, (samples, length))
    source = np.eye(vocabulary, dtype=np.float32)[tokens]
    decoder_in = np.zeros((samples, length, vocabulary + 1), np.float32)
    decoder_in[:, 0, vocabulary] = 1.0
    decoder_in[:, 1:, :vocabulary] = source[:, :-1]
    return source, decoder_in, tokens


def build(vocabulary: int, units: int):
    """The training model and the two inference models, over the same layers."""
    encoder_inputs = Input((None, vocabulary), name="source")
    _, state_h, state_c = LSTM(units, return_state=True, seed=1, name="encoder")(encoder_inputs)
    decoder_inputs = Input((None, vocabulary + 1), name="decoder_inputs")
    decoder = LSTM(units, return_sequences=True, return_state=True, seed=2, name="decoder")
    sequence, _, _ = decoder(decoder_inputs, initial_state=[state_h, state_c])
    readout = Dense(vocabulary, activation="softmax", seed=3, name="readout")
    model = Model([encoder_inputs, decoder_inputs], readout(sequence), name="seq2seq", seed=0)

    encoder_model = Model(encoder_inputs, [state_h, state_c], name="encoder_model")
    h_in, c_in = Input((units,), name="h"), Input((units,), name="c")
    step_sequence, h_out, c_out = decoder(decoder_inputs, initial_state=[h_in, c_in])
    decoder_model = Model([decoder_inputs, h_in, c_in], [readout(step_sequence), h_out, c_out],
                          name="decoder_model")
    return model, encoder_model, decoder_model


def decode(encoder_model, decoder_model, source, vocabulary: int, length: int):
    """Greedy decoding: the encoder's states, then one token at a time."""
    states = encoder_model.predict(source, batch_size=len(source))
    step = np.zeros((len(source), 1, vocabulary + 1), np.float32)
    step[:, 0, vocabulary] = 1.0                                # the start symbol
    decoded = []
    for _ in range(length):
        probabilities, h, c = decoder_model.predict([step] + states, batch_size=len(source))
        token = probabilities[:, -1].argmax(-1)
        decoded.append(token)
        step = np.zeros_like(step)
        step[np.arange(len(token)), 0, token] = 1.0
        states = [h, c]
    return np.stack(decoded, axis=1)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--vocabulary", type=int, default=8)
    parser.add_argument("--length", type=int, default=6)
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--verbose", type=int, default=2)
    args = parser.parse_args(argv)

    source, decoder_in, tokens = copy_task(args.samples, args.vocabulary, args.length, 0)
    test_source, test_decoder_in, test_tokens = copy_task(500, args.vocabulary, args.length, 1)
    model, encoder_model, decoder_model = build(args.vocabulary, args.units)
    model.compile(optimizer=numlstm.optimizers.Adam(learning_rate=0.01),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.summary()
    model.fit([source, decoder_in], tokens, batch_size=32, epochs=args.epochs,
              verbose=args.verbose)
    _, forced = model.evaluate([test_source, test_decoder_in], test_tokens)
    decoded = decode(encoder_model, decoder_model, test_source, args.vocabulary, args.length)
    print(f"teacher-forced token accuracy: {forced:.4f}")
    print(f"greedy-decoded token accuracy: {(decoded == test_tokens).mean():.4f}")
    print(f"sequences copied exactly: {(decoded == test_tokens).all(axis=1).mean():.4f}")


if __name__ == "__main__":
    main()
