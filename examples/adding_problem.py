"""The adding problem (Hochreiter & Schmidhuber, 1997): a long-range memory task.

Each sequence has 100 timesteps of two channels: random values in [0, 1] and a marker channel
that is 1 at exactly two steps (one in each half). The target is the sum of the two marked
values. Predicting the mean gives a test MSE of about 0.17; an LSTM that has learned to
remember the marked values goes below 0.01. The loss stays on that plateau for several epochs
before it drops.

    python examples/adding_problem.py [--timesteps 100] [--epochs 15] [--samples 10000]
"""

import argparse
import time

import numlstm
from numlstm import datasets, optimizers
from numlstm.layers import LSTM, Dense, Input


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=100)
    parser.add_argument("--samples", type=int, default=10000)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--units", type=int, default=32)
    parser.add_argument("--backend", default=None)
    parser.add_argument("--verbose", type=int, default=2, choices=(0, 1, 2))
    args = parser.parse_args()

    start = time.perf_counter()
    x_train, y_train = datasets.adding_problem(args.samples, timesteps=args.timesteps, seed=0)
    x_test, y_test = datasets.adding_problem(1000, timesteps=args.timesteps, seed=1)
    model = numlstm.Sequential([Input((args.timesteps, 2)), LSTM(args.units), Dense(1)],
                               backend=args.backend, seed=0)
    model.compile(optimizer=optimizers.Adam(learning_rate=0.005, clipnorm=1.0), loss="mse")
    model.fit(x_train, y_train, batch_size=64, epochs=args.epochs,
              validation_data=(x_test, y_test), verbose=args.verbose)
    mse = model.evaluate(x_test, y_test)
    baseline = float(((y_test - y_train.mean()) ** 2).mean())
    print(f"backend: {model.backend_name}")
    print(f"test MSE: {mse:.5f} (predicting the mean: {baseline:.3f}) after {args.epochs} "
          f"epochs, {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
