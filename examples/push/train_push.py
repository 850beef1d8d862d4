"""A toy trial that reports its metrics with sextant_report (no numpy, runs in well under a second).

It "trains" one weight by gradient descent on a noisy quadratic, so the learning rate matters:
too small and the loss falls slowly, too large and it diverges. Each epoch it reports
``loss`` and ``accuracy`` (1 / (1 + loss)) at ``step=epoch``.

    python examples/push/train_push.py --lr 0.1 --epochs 10

Under Sextant (SEXTANT_ENDPOINT and friends set) the metrics are pushed to the server; without
them they are printed as ``step=1 loss=... accuracy=...`` lines for a StdOut collector.
"""

import argparse
import math
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sextant_report import report  # noqa: E402

TARGET = 3.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lr", type=float, default=0.1, help="learning rate")
    parser.add_argument("--epochs", type=int, default=10, help="epochs to train")
    parser.add_argument("--seed", type=int, default=0, help="seed of the gradient noise")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    weight = 0.0
    for epoch in range(1, args.epochs + 1):
        gradient = 2.0 * (weight - TARGET) + rng.gauss(0.0, 0.1)
        weight -= args.lr * gradient
        loss = (weight - TARGET) ** 2
        if not math.isfinite(loss) or loss > 1e12:
            # Diverged: report a large finite loss (inf would be refused) and stop; the trial
            # still succeeds, so the search learns that this learning rate is bad.
            report(step=epoch, loss=1e12, accuracy=0.0)
            break
        report(step=epoch, loss=loss, accuracy=1.0 / (1.0 + loss))
    return 0


if __name__ == "__main__":
    sys.exit(main())
