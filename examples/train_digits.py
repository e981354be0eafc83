"""Train an LSTM classifier on handwritten digits, read row by row as sequences.

scikit-learn's bundled 8x8 digits (1797 images, nothing downloaded): each image is a sequence
of 8 timesteps (its rows) of 8 features (the pixels of a row). An LSTM(64) reads the rows and a
softmax layer names the digit. 20% of the images (stratified) are held out; the script prints
the held-out accuracy and saves the trained model -- by default to ``digits_lstm.npz`` in the
system's temporary folder (so that a run leaves nothing in the checkout), and it prints where.

    pip install "numlstm[datasets]"
    python examples/train_digits.py [--epochs 20] [--backend numba] [--out digits_lstm.npz]
"""

import argparse
import tempfile
import time
from pathlib import Path

import numlstm
from numlstm import datasets, optimizers
from numlstm.layers import LSTM, Dense, Input


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--backend", default=None,
                        help="numpy, numba, cuda or cupy (default: the default backend)")
    parser.add_argument("--out", "--output", dest="output",
                        default=str(Path(tempfile.gettempdir()) / "digits_lstm.npz"),
                        help="where to save the model (default: %(default)s)")
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2))
    args = parser.parse_args()

    start = time.perf_counter()
    (x_train, y_train), (x_test, y_test) = datasets.digits(test_fraction=0.2, seed=0)
    print(f"digits: {len(x_train)} training and {len(x_test)} test sequences of shape "
          f"{x_train.shape[1:]} (timesteps, features)")

    model = numlstm.Sequential([Input((8, 8)), LSTM(64), Dense(10, activation="softmax")],
                               backend=args.backend, seed=0)
    model.compile(optimizer=optimizers.Adam(learning_rate=0.01),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.summary()
    model.fit(x_train, y_train, batch_size=32, epochs=args.epochs, validation_split=0.1,
              verbose=args.verbose)

    loss, accuracy = model.evaluate(x_test, y_test)
    saved = Path(model.save(args.output)).resolve()
    print(f"backend: {model.backend_name}")
    print(f"test accuracy: {accuracy:.4f} (loss {loss:.4f}) on {len(x_test)} held-out digits")
    print(f"model saved to: {saved}  (reload with numlstm.load_model)")
    print(f"total time: {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
