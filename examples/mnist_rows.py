"""Classify MNIST digits with an LSTM that reads each image row by row.

Each 28x28 image is a sequence of 28 timesteps (its rows) of 28 features (the pixels of a row,
scaled to [0, 1]); an LSTM reads the rows and a softmax layer names the digit. The data comes
from ``numlstm.datasets.mnist()``, which downloads the four MNIST files (11.6 MB) once into
``$NUMLSTM_HOME/datasets/mnist`` or ``~/.numlstm/datasets/mnist`` (without network, place them
there by hand: the error message lists them). The script prints the test accuracy.

    python examples/mnist_rows.py [--epochs 5] [--units 128] [--train-samples 60000]
"""

import argparse
import time

import numlstm
from numlstm import datasets, optimizers, utils
from numlstm.layers import LSTM, Dense, Input


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--train-samples", type=int, default=None,
                        help="use only the first N training images (default: all 60,000)")
    parser.add_argument("--backend", default=None,
                        help="numpy, numba, cuda or cupy (default: the default backend)")
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2))
    args = parser.parse_args()

    start = time.perf_counter()
    (x_train, y_train), (x_test, y_test) = datasets.mnist()
    if args.train_samples is not None:
        x_train, y_train = x_train[:args.train_samples], y_train[:args.train_samples]
    # uint8 pixels -> float32 in [0, 1]; (n, 28, 28) is already (samples, timesteps, features).
    x_train = x_train.astype("float32") / 255.0
    x_test = x_test.astype("float32") / 255.0
    # One-hot targets with Keras's to_categorical (sparse labels would work as well, with
    # loss="sparse_categorical_crossentropy").
    y_train_onehot = utils.to_categorical(y_train, num_classes=10)
    print(f"MNIST: {len(x_train)} training and {len(x_test)} test images as sequences of shape "
          f"{x_train.shape[1:]} (rows, pixels)")

    model = numlstm.Sequential([Input((28, 28)), LSTM(args.units),
                                Dense(10, activation="softmax")],
                               backend=args.backend, seed=0)
    model.compile(optimizer=optimizers.Adam(learning_rate=0.001),
                  loss="categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train_onehot, batch_size=args.batch_size, epochs=args.epochs,
              validation_split=0.1, verbose=args.verbose)

    loss, accuracy = model.evaluate(x_test, utils.to_categorical(y_test, 10),
                                    batch_size=args.batch_size, verbose=0)
    print(f"backend: {model.backend_name}")
    print(f"test accuracy: {accuracy:.4f} (loss {loss:.4f}) on {len(x_test)} test images")
    print(f"total time: {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
