"""A tiny trainer for the integration tests (standard library only).

Prints `epoch=N loss=... accuracy=...` for each epoch, the way the StdOut collector reads them.
The loss falls with the epoch and is smallest at x = 0.3.
"""

import argparse

parser = argparse.ArgumentParser()
parser.add_argument("--x", type=float, required=True)
parser.add_argument("--epochs", type=int, default=3)
args = parser.parse_args()

for epoch in range(1, args.epochs + 1):
    loss = (args.x - 0.3) ** 2 + 0.1 / epoch
    accuracy = 1.0 - loss
    print(f"epoch={epoch} loss={loss:.6f} accuracy={accuracy:.6f}", flush=True)
