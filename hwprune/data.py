"""Datasets: the small ones scikit-learn ships, and ``.npz`` files given on the command line.

Nothing downloads at run time. The shipped sets are split 80/20, stratified, with a fixed
seed, so two runs with the same seed see the same examples.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
import zipfile
import zlib

import numpy as np

from hwprune.errors import DataError, OptionError

DATASETS = ("digits", "breast_cancer", "wine")


@dataclass(frozen=True)
class Dataset:
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int

    @property
    def n_features(self) -> int:
        return int(np.prod(self.x_train.shape[1:]))


def load_dataset(name: str, seed: int = 0, test_size: float = 0.2) -> Dataset:
    """One of ``DATASETS``, split into train and test sets.

    digits is scaled to [0, 1] (its pixels are 0..16); the others are standardized with
    the training set's mean and standard deviation, so no test statistic leaks in.
    """
    from sklearn import datasets
    from sklearn.model_selection import train_test_split

    loaders = {
        "digits": datasets.load_digits,
        "breast_cancer": datasets.load_breast_cancer,
        "wine": datasets.load_wine,
    }
    if name not in loaders:
        raise OptionError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    bunch = loaders[name]()
    x = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target, dtype=np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_size, stratify=y, random_state=seed
    )
    if name == "digits":
        x_train, x_test = x_train / 16.0, x_test / 16.0
    else:
        mean = x_train.mean(axis=0)
        std = x_train.std(axis=0)
        std[std == 0] = 1.0  # a constant feature stays 0 instead of becoming NaN
        x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    return Dataset(
        name=name,
        x_train=x_train.astype(np.float32),
        y_train=y_train,
        x_test=x_test.astype(np.float32),
        y_test=y_test,
        n_classes=int(y.max()) + 1,
    )


def check_labels(y, where: str = "labels") -> np.ndarray:
    """``y`` as int64 class indices, or a DataError saying what is wrong with it."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise DataError(f"{where}: expected a 1-D array of class indices, got shape {y.shape}")
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)):
            raise DataError(f"{where}: has NaN or Inf at index {int(np.flatnonzero(~np.isfinite(y))[0])}")
        if not np.all(y == np.round(y)):
            index = int(np.flatnonzero(y != np.round(y))[0])
            raise DataError(f"{where}: class indices must be integers; index {index} holds {y[index]!r}")
    elif y.dtype.kind not in "iub":
        raise DataError(f"{where}: class indices must be integers, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if y.size and y.min() < 0:
        raise DataError(f"{where}: class indices must be >= 0; index {int(np.argmin(y))} holds {int(y.min())}")
    return y


def _reason(exc: BaseException) -> str:
    """An exception as a short reason; an empty file raises EOFError without words."""
    if isinstance(exc, EOFError):
        return "the file is empty or cut short"
    return str(exc) or type(exc).__name__


def load_npz(path) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` from an ``.npz`` file holding arrays ``x`` (features) and ``y`` (class indices)."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a folder; give an .npz file holding arrays x and y")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable .npz file ({_reason(exc)})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{path}: a single array, not an .npz archive; save with np.savez(path, x=features, y=labels)")
    with archive:
        missing = [key for key in ("x", "y") if key not in archive.files]
        if missing:
            raise DataError(
                f"{path}: missing array(s) {', '.join(missing)}; it holds {', '.join(archive.files) or 'nothing'}. "
                "Save with np.savez(path, x=features, y=labels)"
            )
        try:
            x, y = archive["x"], archive["y"]
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise DataError(f"{path}: arrays x and y cannot be read ({_reason(exc)})") from None
    if x.dtype.kind not in "fiub":
        raise DataError(f"{path}: x must be numeric, got dtype {x.dtype}")
    if x.ndim < 2:
        raise DataError(f"{path}: x must have shape (N, features...), got {x.shape}")
    x = x.astype(np.float32)
    if not np.all(np.isfinite(x)):
        index = tuple(int(i) for i in np.argwhere(~np.isfinite(x))[0])
        raise DataError(f"{path}: x has NaN or Inf at index {index}")
    y = check_labels(y, f"{path}: y")
    if len(x) != len(y):
        raise DataError(f"{path}: x has {len(x)} rows but y has {len(y)}; they must match")
    if len(x) == 0:
        raise DataError(f"{path}: x and y are empty")
    return x, y
