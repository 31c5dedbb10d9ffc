"""Training in torch: a plain cross-entropy minibatch loop, evaluation, and small models.

``fit`` is deterministic for a seed: ``torch.manual_seed`` fixes the initial state of
anything random inside the model, and a separate ``torch.Generator`` orders the
minibatches, so pruning code that draws random numbers between steps does not change
which examples a step sees. ``fit`` trains on one CPU thread by default (``threads=1``),
as ``hwprune prune`` and the demo do: the small matrices of microcontroller models train
many times faster on one thread than on torch's default of one per core, which fight
over the cores; pass ``threads=None`` to keep torch's own setting, or a number.
"""

from __future__ import annotations

import math
import sys
from typing import Callable

import numpy as np

from hwprune.data import check_labels
from hwprune.errors import DataError, OptionError, ShapeError, WeightError
from hwprune.prune import lr as lr_schedules
from hwprune.prune.lr import LR_SCHEDULES  # noqa: F401  (re-exported)

OPTIMIZERS = ("adam", "sgd")


def _torch():
    import torch  # deferred: importing torch costs about a second

    return torch


def as_tensors(x, y=None):
    """``x`` as float32 and ``y`` as int64 tensors (numpy arrays or tensors accepted)."""
    torch = _torch()
    x_t = torch.as_tensor(np.asarray(x, dtype=np.float32) if not isinstance(x, torch.Tensor) else x).float()
    if y is None:
        return x_t
    y_np = y.cpu().numpy() if isinstance(y, torch.Tensor) else y
    y_t = torch.as_tensor(check_labels(y_np))
    if len(x_t) != len(y_t):
        raise DataError(f"x has {len(x_t)} rows but y has {len(y_t)}; they must match")
    return x_t, y_t


def output_width(model, x) -> int:
    """How many outputs (classes) ``model`` produces for inputs shaped like ``x``."""
    torch = _torch()
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(x[:1])
    except RuntimeError as exc:
        raise ShapeError(
            f"the model cannot run on inputs of shape {tuple(x.shape[1:])} ({str(exc).splitlines()[0]})"
        ) from None
    finally:
        model.train(was_training)
    if out.ndim != 2:
        raise ShapeError(f"the model returns shape {tuple(out.shape)} per batch; a classifier returns (N, classes)")
    return int(out.shape[1])


def check_fits(model, x, y) -> None:
    """DataError unless every label indexes one of the model's outputs."""
    width = output_width(model, x)
    top = int(y.max()) if len(y) else -1
    if top >= width:
        raise DataError(
            f"labels go up to {top} ({top + 1} classes) but the model has {width} outputs; "
            "give the last layer one output per class"
        )


def lr_factor(schedule, step: int, total_steps: int, warmup: int = 0) -> float:
    """The learning-rate multiplier at ``step`` of ``total_steps`` for a named or callable schedule
    (``hwprune.prune.lr``)."""
    return lr_schedules.factor(schedule, step, total_steps, warmup)


def make_optimizer(model, optimizer: str, lr: float, weight_decay: float):
    torch = _torch()
    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    raise OptionError(f"unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")


def steps_per_epoch(n_examples: int, batch_size: int) -> int:
    return -(-n_examples // batch_size)


def fit(
    model,
    x,
    y,
    epochs: int,
    lr: float = 1e-3,
    batch_size: int = 64,
    seed: int = 0,
    optimizer: str = "adam",
    weight_decay: float = 0.0,
    lr_schedule: str | Callable[[int, int], float] | None = None,
    progress: bool = False,
    callback: Callable[[int, object], None] | None = None,
    start_step: int = 0,
    threads: int | None = 1,
    warmup: int = 0,
) -> float:
    """Train ``model`` in place with cross-entropy on ``(x, y)``; return the training accuracy.

    ``callback(step, model)`` runs before every optimizer step (``step`` counts from 0,
    so at ``step == k`` exactly ``k`` updates have been made); gradual pruning uses it to
    update masks, lottery tickets to record the weights at iteration ``k``.

    ``start_step`` resumes a run part-way: the first ``start_step`` steps are skipped,
    and the rest see the same minibatches and learning rates as in a run from step 0
    (weight rewinding to iteration ``k`` then retrains for the remaining steps only).

    ``threads``: torch CPU threads while training (default 1, which suits small models;
    ``None`` leaves torch's setting alone); the previous setting is restored afterwards.

    ``lr_schedule`` (``hwprune.prune.lr``: constant, step, cosine, onecycle, or a function
    ``(step, total_steps) -> factor``) and ``warmup`` (steps) set the rate of each step as
    ``lr * factor(step)`` over the whole run, so a resumed run replays the original rates:
    that is LR rewinding when the weights are not reset.
    """
    torch = _torch()
    if threads is None:
        return _fit(model, x, y, epochs, lr, batch_size, seed, optimizer, weight_decay, lr_schedule, progress,
                    callback, start_step, warmup)
    if not isinstance(threads, int) or threads < 1:
        raise OptionError(f"threads must be an integer >= 1 or None, got {threads!r}")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _fit(model, x, y, epochs, lr, batch_size, seed, optimizer, weight_decay, lr_schedule, progress,
                    callback, start_step, warmup)
    finally:
        torch.set_num_threads(before)


def _fit(model, x, y, epochs, lr, batch_size, seed, optimizer, weight_decay, lr_schedule, progress, callback,
         start_step, warmup) -> float:
    torch = _torch()
    from tqdm import tqdm

    if not isinstance(epochs, int) or epochs < 0:
        raise OptionError(f"epochs must be an integer >= 0, got {epochs!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise OptionError(f"batch size must be an integer >= 1, got {batch_size!r}")
    if not (lr > 0 and math.isfinite(lr)):
        raise OptionError(f"learning rate must be a finite number > 0, got {lr!r}")
    lr_schedules.check_schedule(lr_schedule, warmup)
    x_t, y_t = as_tensors(x, y)
    if len(x_t) == 0:
        raise DataError("the training data is empty")
    check_fits(model, x_t, y_t)

    torch.manual_seed(seed)
    order = torch.Generator().manual_seed(seed)
    opt = make_optimizer(model, optimizer, lr, weight_decay)
    loss_fn = torch.nn.CrossEntropyLoss()
    per_epoch = steps_per_epoch(len(x_t), batch_size)
    total = epochs * per_epoch
    if not isinstance(start_step, int) or not 0 <= start_step <= total:
        raise OptionError(f"start step must be an integer from 0 to {total} (the run's steps), got {start_step!r}")
    model.train()
    step = 0
    # disable=None: a bar on a terminal, nothing in a pipe or a CI log.
    with tqdm(total=total - start_step, desc="train", unit="step", file=sys.stderr, disable=None if progress else True, leave=False) as bar:
        for _ in range(epochs):
            perm = torch.randperm(len(x_t), generator=order)
            for start in range(0, len(x_t), batch_size):
                if step < start_step:
                    step += 1
                    continue
                if callback is not None:
                    callback(step, model)
                for group in opt.param_groups:
                    group["lr"] = lr * lr_factor(lr_schedule, step, total, warmup)
                idx = perm[start:start + batch_size]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(x_t[idx]), y_t[idx])
                if not torch.isfinite(loss):
                    raise _diverged(f"the loss is {loss.item()} at step {step + 1}", lr)
                loss.backward()
                opt.step()
                step += 1
                bar.update(1)
                if progress and step % 20 == 0:
                    bar.set_postfix(loss=f"{loss.item():.3f}")
    check_finite(model, lr)  # the last step's update is checked by no later loss
    return evaluate(model, x_t, y_t)


def check_finite(model, lr=None) -> None:
    """WeightError naming the first parameter of ``model`` that holds a NaN or an infinity
    (``lr``: the training run's rate, to say the run diverged): such a model must never be
    saved or exported."""
    torch = _torch()
    for name, param in model.named_parameters():
        if not bool(torch.isfinite(param).all()):
            if lr is None:
                raise WeightError(f"parameter {name} holds NaN or infinite values")
            raise _diverged(f"parameter {name} holds NaN or infinite values", lr)


def _diverged(what: str, lr) -> WeightError:
    return WeightError(f"training diverged: {what} (learning rate {lr}); lower the learning rate or check the "
                       "data's scale")


def predict_classes(model, x, batch_size: int = 4096) -> np.ndarray:
    torch = _torch()
    x_t = as_tensors(x)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = [model(x_t[i:i + batch_size]).argmax(dim=1) for i in range(0, len(x_t), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.int64)


def evaluate(model, x, y) -> float:
    """Accuracy of ``model`` (in eval mode) on ``(x, y)``, from 0 to 1."""
    x_t, y_t = as_tensors(x, y)
    if len(x_t) == 0:
        raise DataError("the evaluation data is empty")
    return float((predict_classes(model, x_t) == y_t.numpy()).mean())


def make_mlp(sizes, seed: int = 0):
    """``Linear, ReLU, ..., Linear`` through ``sizes`` (e.g. ``(64, 128, 64, 10)``), seeded."""
    torch = _torch()
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2 or min(sizes) < 1:
        raise OptionError(f"an MLP needs at least two positive layer sizes, got {sizes}")
    nn = torch.nn
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layers = []
        for index, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(n_in, n_out))
            if index < len(sizes) - 2:
                layers.append(nn.ReLU())
        return nn.Sequential(*layers)


def make_cnn(
    n_classes: int = 10,
    image_size: int = 8,
    in_channels: int = 1,
    channels: tuple[int, int] = (8, 16),
    kernel_size: int = 3,
    seed: int = 0,
):
    """A small CNN for 8x8 digits: two valid 3x3 convolutions with ReLU, Flatten, Linear.

    It takes images shaped ``(N, in_channels, image_size, image_size)``.
    """
    torch = _torch()
    nn = torch.nn
    side = image_size - 2 * (kernel_size - 1)
    if side < 1:
        raise OptionError(f"a {image_size}x{image_size} image is too small for two {kernel_size}x{kernel_size} convolutions")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(
            nn.Conv2d(in_channels, channels[0], kernel_size),
            nn.ReLU(),
            nn.Conv2d(channels[0], channels[1], kernel_size),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(channels[1] * side * side, n_classes),
        )
