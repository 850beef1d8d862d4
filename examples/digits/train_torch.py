#!/usr/bin/env python3
"""Trains a one-hidden-layer MLP on the 8x8 digits data set, with PyTorch (CUDA when available).

The same model, flags, data split and output as train.py, plus `--device`. Prints one line per
epoch, flushed at once, with the validation loss and accuracy:

    epoch=3 loss=0.3102 accuracy=0.9214

Example:
    python3 train_torch.py --lr=0.01 --hidden-units=64 --batch-size=32 --optimizer=adam \
        --epochs=10 --device=auto
"""

import os

# Several trials may share a machine's CPU: one intra-op thread each unless told otherwise.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import math  # noqa: E402
import sys  # noqa: E402

sys.dont_write_bytecode = True  # trials run in this directory: leave no __pycache__ behind
import digits_common as common  # noqa: E402

try:
    import torch  # noqa: E402
    import torch.nn.functional as F  # noqa: E402
    from torch import nn  # noqa: E402
except ImportError:
    sys.exit(
        "train_torch.py: PyTorch is not installed; install it with "
        "`pip install -r requirements-torch.txt` (in examples/digits)"
    )


def pick_device(parser, wanted):
    if wanted == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if wanted == "cuda" and not torch.cuda.is_available():
        parser.error("argument --device: cuda was asked for, but PyTorch sees no CUDA device")
    return torch.device(wanted)


def build_model(hidden_units):
    # nn.Linear's default initialisation is the one train.py copies.
    return nn.Sequential(
        nn.Linear(common.N_PIXELS, hidden_units),
        nn.ReLU(),
        nn.Linear(hidden_units, common.N_CLASSES),
    )


def build_optimizer(kind, lr, params):
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr)
    if kind == "momentum":
        return torch.optim.SGD(params, lr=lr, momentum=common.MOMENTUM)
    return torch.optim.Adam(params, lr=lr, betas=common.ADAM_BETAS, eps=common.ADAM_EPS)


@torch.no_grad()
def evaluate(model, x, y):
    """Mean cross-entropy and accuracy on (x, y)."""
    model.eval()
    logits = model(x)
    loss = F.cross_entropy(logits, y).item()
    accuracy = (logits.argmax(dim=1) == y).float().mean().item()
    model.train()
    return loss, accuracy


def main(argv=None):
    parser = common.arg_parser(
        "Train a one-hidden-layer MLP on the 8x8 digits data set (PyTorch)."
    )
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="auto (CUDA when available, else CPU), cpu or cuda (default auto)",
    )
    args = parser.parse_args(argv)
    device = pick_device(parser, args.device)
    try:
        pixels, labels = common.load(args.data)
    except common.DataError as e:
        sys.exit(f"train_torch.py: {e}")

    torch.manual_seed(args.seed)
    x = torch.tensor(pixels, dtype=torch.float32)
    y = torch.tensor(labels, dtype=torch.long)
    train_idx, val_idx = common.split_indices(len(labels))
    train_idx = torch.tensor(train_idx, dtype=torch.long)
    val_idx = torch.tensor(val_idx, dtype=torch.long)
    # The whole data set is 1,797 x 64 floats: keep it on the device, no DataLoader needed.
    x_train, y_train = x[train_idx].to(device), y[train_idx].to(device)
    x_val, y_val = x[val_idx].to(device), y[val_idx].to(device)

    model = build_model(args.hidden_units).to(device)
    opt = build_optimizer(args.optimizer, args.lr, model.parameters())
    shuffle = torch.Generator().manual_seed(args.seed)

    print(
        f"{common.describe(args, len(y_train), len(y_val))}, device {device}",
        file=sys.stderr,
        flush=True,
    )
    n = len(y_train)
    model.train()
    for epoch in range(1, args.epochs + 1):
        order = torch.randperm(n, generator=shuffle).to(device)
        try:
            for start in range(0, n, args.batch_size):
                batch = order[start : start + args.batch_size]
                loss = F.cross_entropy(model(x_train[batch]), y_train[batch])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        except RuntimeError as e:
            # e.g. a learning rate too large for float32 ("value cannot be converted ...").
            print(f"train_torch.py: training failed in epoch {epoch}: {e}", file=sys.stderr)
            return 1
        val_loss, val_accuracy = evaluate(model, x_val, y_val)
        if not math.isfinite(val_loss):
            print(
                f"train_torch.py: training diverged in epoch {epoch} "
                f"(validation loss is {val_loss}); try a smaller --lr than {args.lr:g}",
                file=sys.stderr,
                flush=True,
            )
            return 1
        print(common.metric_line(epoch, val_loss, val_accuracy), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
