"""What train.py (numpy) and train_torch.py (PyTorch) share: the command-line flags, the data
loader and the fixed train/validation split.

Pure Python (argparse, gzip, csv, random), so that both trainers see the same flags and the very
same split without either one depending on the other's libraries.

The data file is `data/digits.csv.gz`: 1,797 rows, each 64 pixel values (0..16, row-major 8x8
image) followed by the label (0..9). See data/README.md for where it comes from.
"""

import argparse
import csv
import gzip
import math
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = os.path.join(HERE, "data", "digits.csv.gz")

N_PIXELS = 64
N_CLASSES = 10
PIXEL_MAX = 16.0

# The split does not depend on --seed: every trial of an experiment is scored on the same
# validation images, so that their accuracies can be compared.
SPLIT_SEED = 20240601
VALIDATION_FRACTION = 0.2

OPTIMIZERS = ("sgd", "momentum", "adam")
MOMENTUM = 0.9
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


# ---------------------------------------------------------------------------------------------
# Flags


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text!r}")
    return value


def non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text!r}")
    return value


def arg_parser(description):
    """The flags both trainers take. Bad values exit with status 2 and a message naming the flag."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--lr", type=positive_float, default=0.01, help="learning rate (default 0.01)")
    p.add_argument(
        "--hidden-units", type=positive_int, default=64, help="hidden layer width (default 64)"
    )
    p.add_argument(
        "--batch-size", type=positive_int, default=32, help="mini-batch size (default 32)"
    )
    p.add_argument(
        "--optimizer",
        choices=OPTIMIZERS,
        default="adam",
        help="sgd, momentum (SGD with momentum 0.9) or adam (default adam)",
    )
    p.add_argument(
        "--epochs", type=positive_int, default=10, help="passes over the data (default 10)"
    )
    p.add_argument(
        "--seed",
        type=non_negative_int,
        default=0,
        help="initialisation and shuffling seed (default 0)",
    )
    p.add_argument(
        "--data",
        default=DEFAULT_DATA,
        help="path to digits.csv.gz (default: data/digits.csv.gz next to this script)",
    )
    return p


def describe(args, n_train, n_val):
    """A one-line summary for stderr.

    It holds no name=value pairs: a collector that also reads stderr must not take them for metrics.
    """
    return (
        f"training on {n_train} images, validating on {n_val}: "
        f"lr {args.lr:g}, hidden units {args.hidden_units}, batch size {args.batch_size}, "
        f"optimizer {args.optimizer}, epochs {args.epochs}, seed {args.seed}"
    )


def metric_line(epoch, loss, accuracy):
    """The line a collector reads: `epoch=3 loss=0.3102 accuracy=0.9214`."""
    return f"epoch={epoch} loss={loss:.4f} accuracy={accuracy:.4f}"


# ---------------------------------------------------------------------------------------------
# Data


class DataError(Exception):
    """The data file is missing or malformed."""


def load(path=DEFAULT_DATA):
    """Returns (pixels, labels): lists of 64-float lists scaled to [0, 1], and ints 0..9."""
    if not os.path.isfile(path):
        raise DataError(f"data file not found: {path}")
    pixels, labels = [], []
    try:
        with gzip.open(path, "rt", newline="") as f:
            for lineno, row in enumerate(csv.reader(f), start=1):
                if not row:
                    continue
                if len(row) != N_PIXELS + 1:
                    raise DataError(
                        f"{path}:{lineno}: expected {N_PIXELS + 1} columns, found {len(row)}"
                    )
                values = [float(v) for v in row]
                label = int(values[-1])
                if label != values[-1] or not 0 <= label < N_CLASSES:
                    raise DataError(f"{path}:{lineno}: label {row[-1]!r} is not a digit 0..9")
                pixels.append([v / PIXEL_MAX for v in values[:-1]])
                labels.append(label)
    except (OSError, EOFError, ValueError) as e:
        raise DataError(f"cannot read {path}: {e}") from e
    if not labels:
        raise DataError(f"{path} holds no rows")
    return pixels, labels


def split_indices(n, fraction=VALIDATION_FRACTION, seed=SPLIT_SEED):
    """Returns (train, validation) index lists: a fixed, seeded shuffle of range(n)."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    n_val = int(round(n * fraction))
    return sorted(order[n_val:]), sorted(order[:n_val])
