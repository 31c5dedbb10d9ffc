"""Reading Keras HDF5 weights as data only: nothing outside the file, nothing larger than declared.

HDF5 can make a dataset read other files: external storage (``dataset.external``, raw bytes of
any local file), external links (an object in another HDF5 file), virtual datasets (mapped
from other files). A weights file that uses them would copy a local file into the export, so
``open_h5`` walks every link and dataset of the file once and refuses them, as well as soft
links that do not resolve to an object of this file. ``read_array`` then checks a dataset's
declared dtype and size against the memory budget (``hwprune.limits``) and that the file
really stores its bytes (a dataset whose chunks were never written reads as its fill value:
a few bytes could declare gigabytes) before reading it.
"""

from __future__ import annotations

import numpy as np

from hwprune.errors import ModelError, WeightError
from hwprune.limits import check_declared, declared_bytes

MAX_OBJECTS = 100_000  # a weights file has a few per layer; a deeper walk is a crafted file
NUMERIC_KINDS = "fiub"


def _h5py():
    import h5py

    return h5py


def open_h5(source, where: str, kind: str = "not a readable HDF5 file"):
    """An h5py File of ``source`` (a path or a binary file object), checked by ``check_tree``;
    ``kind`` says what the file failed to be when HDF5 cannot open it."""
    h5py = _h5py()
    try:
        h5file = h5py.File(source, "r")
    except (OSError, ValueError) as exc:
        raise ModelError(f"{where}: {kind} ({exc})") from None
    try:
        check_tree(h5file, where)
    except BaseException:
        h5file.close()
        raise
    return h5file


def check_tree(h5file, where: str) -> None:
    """Refuse external links, soft links leaving the file, external storage and virtual datasets,
    and a file whose datasets declare more than the memory budget in all."""
    h5py = _h5py()
    seen: set[int] = set()
    stack = [h5file]
    total = 0
    while stack:
        group = stack.pop()
        for name in group:
            where_obj = f"{where}: {group.name.rstrip('/')}/{name}"
            link = group.get(name, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                raise ModelError(f"{where_obj} is an external link to {link.filename}:{link.path}; hwprune reads "
                                 "weights from the file itself only")
            try:
                obj = group.get(name)
            except (KeyError, OSError, RuntimeError, ValueError):
                obj = None
            if isinstance(link, h5py.SoftLink):
                if obj is None or obj.file.id != h5file.id:
                    raise ModelError(f"{where_obj} is a soft link to {link.path!r}, which is not an object of this "
                                     "file")
                continue  # its target is reached through its hard link
            if obj is None:
                raise ModelError(f"{where_obj}: an object hwprune cannot open")
            address = h5py.h5o.get_info(obj.id).addr
            if address in seen:
                continue
            seen.add(address)
            if len(seen) > MAX_OBJECTS:
                raise ModelError(f"{where}: more than {MAX_OBJECTS} objects; not a Keras weights file")
            if isinstance(obj, h5py.Group):
                stack.append(obj)
            elif isinstance(obj, h5py.Dataset):
                _check_storage(obj, where_obj)
                total += declared_bytes(obj.shape or (), obj.dtype.itemsize)
    check_declared(total, f"{where}: the file's datasets")


def _check_storage(dataset, where_obj: str) -> None:
    if dataset.is_virtual:
        raise ModelError(f"{where_obj} is a virtual dataset (mapped from other files); hwprune reads weights "
                         "stored in the file itself only")
    external = dataset.external
    if external:
        raise ModelError(f"{where_obj} keeps its data in external storage ({external[0][0]!r}); hwprune reads "
                         "weights stored in the file itself only")


def read_array(dataset, where_obj: str) -> np.ndarray:
    """The float64 values of a checked dataset (``open_h5``), after checking what it declares."""
    _check_storage(dataset, where_obj)
    dtype = dataset.dtype
    if dtype.kind not in NUMERIC_KINDS or dtype.itemsize > 8 or dtype.fields is not None:
        raise WeightError(f"{where_obj} is not numeric (dtype {dtype}); weights are numbers")
    shape = dataset.shape
    if shape is None:
        raise WeightError(f"{where_obj} is an empty (null) dataspace, not an array")
    nbytes = declared_bytes(shape, dtype.itemsize)
    check_declared(declared_bytes(shape, 8), where_obj)  # read as float64
    if not dataset.compression and dataset.id.get_storage_size() < nbytes:
        raise WeightError(f"{where_obj} declares shape {shape} ({nbytes} bytes) but the file stores only "
                          f"{dataset.id.get_storage_size()} bytes of it")
    try:
        return np.asarray(dataset[()], dtype=np.float64)
    except (TypeError, ValueError, OSError) as exc:
        raise WeightError(f"{where_obj} is not numeric (dtype {dtype}; {exc})") from None
