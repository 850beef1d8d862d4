#!/usr/bin/env python3
"""Trains a one-hidden-layer MLP on the 8x8 digits data set, with numpy only.

Prints one line per epoch, flushed at once, with the validation loss and accuracy:

    epoch=3 loss=0.3102 accuracy=0.9214

which Katib's default stdout metrics collector (and Sextant's) read as the metrics `loss` and
`accuracy` at step 3. Everything else goes to stderr.

Example:
    python3 train.py --lr=0.01 --hidden-units=64 --batch-size=32 --optimizer=adam --epochs=10

train_torch.py is the same model, flags and output in PyTorch.
"""

import os

# Several trials run side by side: keep each one to a single BLAS thread, set before numpy loads.
for _var in (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
):
    os.environ.setdefault(_var, "1")

import math  # noqa: E402
import sys  # noqa: E402

sys.dont_write_bytecode = True  # trials run in this directory: leave no __pycache__ behind
import digits_common as common  # noqa: E402

try:
    import numpy as np  # noqa: E402
except ImportError:
    sys.exit(
        "train.py: numpy is not installed; install it with "
        "`pip install -r requirements.txt` (in examples/digits)"
    )


def init_linear(rng, fan_in, fan_out):
    """PyTorch's nn.Linear default: weights and biases uniform in +-1/sqrt(fan_in)."""
    bound = 1.0 / math.sqrt(fan_in)
    w = rng.uniform(-bound, bound, size=(fan_in, fan_out))
    b = rng.uniform(-bound, bound, size=fan_out)
    return w, b


def forward(params, x):
    w1, b1, w2, b2 = params
    h_pre = x @ w1 + b1
    h = np.maximum(h_pre, 0.0)
    logits = h @ w2 + b2
    return h_pre, h, logits


def log_softmax(logits):
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def evaluate(params, x, y):
    """Mean cross-entropy and accuracy on (x, y)."""
    _, _, logits = forward(params, x)
    logp = log_softmax(logits)
    loss = -logp[np.arange(len(y)), y].mean()
    accuracy = (logits.argmax(axis=1) == y).mean()
    return float(loss), float(accuracy)


def gradients(params, x, y):
    """Gradients of the mean softmax cross-entropy over one mini-batch."""
    w2 = params[2]
    h_pre, h, logits = forward(params, x)
    d_logits = np.exp(log_softmax(logits))
    d_logits[np.arange(len(y)), y] -= 1.0
    d_logits /= len(y)
    g_w2 = h.T @ d_logits
    g_b2 = d_logits.sum(axis=0)
    d_h = (d_logits @ w2.T) * (h_pre > 0)
    g_w1 = x.T @ d_h
    g_b1 = d_h.sum(axis=0)
    return [g_w1, g_b1, g_w2, g_b2]


class Optimizer:
    """sgd, momentum and adam, updating the parameter arrays in place (same rules as torch.optim)."""

    def __init__(self, kind, lr, params):
        self.kind = kind
        self.lr = lr
        self.t = 0
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]

    def step(self, params, grads):
        self.t += 1
        if self.kind == "sgd":
            for p, g in zip(params, grads):
                p -= self.lr * g
        elif self.kind == "momentum":
            # torch.optim.SGD(momentum=0.9): v = mu*v + g; p -= lr*v.
            for p, g, v in zip(params, grads, self.m):
                v *= common.MOMENTUM
                v += g
                p -= self.lr * v
        else:
            b1, b2 = common.ADAM_BETAS
            c1 = 1.0 - b1**self.t
            c2 = 1.0 - b2**self.t
            for p, g, m, v in zip(params, grads, self.m, self.v):
                m *= b1
                m += (1.0 - b1) * g
                v *= b2
                v += (1.0 - b2) * g * g
                p -= self.lr * (m / c1) / (np.sqrt(v / c2) + common.ADAM_EPS)


def main(argv=None):
    args = common.arg_parser(
        "Train a one-hidden-layer MLP on the 8x8 digits data set (numpy)."
    ).parse_args(argv)
    try:
        pixels, labels = common.load(args.data)
    except common.DataError as e:
        sys.exit(f"train.py: {e}")
    x = np.asarray(pixels, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    train_idx, val_idx = common.split_indices(len(y))
    x_train, y_train = x[train_idx], y[train_idx]
    x_val, y_val = x[val_idx], y[val_idx]

    # Divergence is reported after the epoch (below), not as numpy overflow warnings.
    np.seterr(over="ignore", invalid="ignore")
    rng = np.random.default_rng(args.seed)
    w1, b1 = init_linear(rng, common.N_PIXELS, args.hidden_units)
    w2, b2 = init_linear(rng, args.hidden_units, common.N_CLASSES)
    params = [w1, b1, w2, b2]
    opt = Optimizer(args.optimizer, args.lr, params)

    print(common.describe(args, len(y_train), len(y_val)), file=sys.stderr, flush=True)
    n = len(y_train)
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(n)
        for start in range(0, n, args.batch_size):
            batch = order[start : start + args.batch_size]
            opt.step(params, gradients(params, x_train[batch], y_train[batch]))
        loss, accuracy = evaluate(params, x_val, y_val)
        if not math.isfinite(loss):
            print(
                f"train.py: training diverged in epoch {epoch} (validation loss is {loss}); "
                f"try a smaller --lr than {args.lr:g}",
                file=sys.stderr,
                flush=True,
            )
            return 1
        print(common.metric_line(epoch, loss, accuracy), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
