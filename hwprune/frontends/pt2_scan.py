"""Checking a ``.pt2`` archive before ``torch.export.load`` sees it: no pickle in it may run code.

``torch.export.load`` unpickles parts of the archive with ``weights_only=False``: a weight
or tensor constant stored with ``use_pickle``, an opaque-object constant (``pickle.loads``),
the sample inputs (``weights_only=True`` first, then a silent fallback to full unpickling),
and the members of the older ``serialized_*.pt`` layout. A pickle calls whatever callables
it names (GLOBAL, STACK_GLOBAL, INST), so each member torch may unpickle is walked opcode by
opcode (``pickletools``, which never executes anything) and every callable it names must be
one that rebuilds a plain tensor (``ALLOWED``). A TorchScript object (``custom_obj_``, or a
nested archive holding TorchScript code) is refused whole. The raw tensor bytes that the
archive's configuration marks ``use_pickle: false`` are read by torch as bytes, never
unpickled, so they are not scanned (random floats would look like garbage opcodes).
"""

from __future__ import annotations

import io
import json
import pickletools
import zipfile
from pathlib import Path

from hwprune.errors import ModelError, TrustError

#: The callables a tensor pickled by ``torch.save`` names: its storage class, the rebuild
#: functions and the OrderedDict of its hooks. Nothing here runs code chosen by the file.
STORAGES = ("Float", "Double", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte", "Bool")
ALLOWED = frozenset({
    "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter",
    "torch._utils._rebuild_parameter_with_state", "collections.OrderedDict", "torch.Size", "torch.device",
    *(f"torch.{kind}Storage" for kind in STORAGES),
})
TRUST_HINT = "pass --trust-model (trust_model=True in Python) only if you trust the file's source"
# torch.load reads at most five consecutive pickles from a legacy (non-zip) torch.save file
LEGACY_PICKLES = 5
_STRINGS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING", "SHORT_BINSTRING"}


def _globals_in(data: bytes) -> list[str]:
    """Every callable the pickle(s) in ``data`` would import, in order, as ``module.name``.

    Walks up to ``LEGACY_PICKLES`` pickles one after the other and stops at the first byte
    that is not a pickle opcode (where ``pickle.loads`` would fail too). A STACK_GLOBAL whose
    names are not plain strings pushed (or memoized) before it is reported as unresolvable.
    """
    found: list[str] = []
    stream = io.BytesIO(data)
    for _ in range(LEGACY_PICKLES):
        start = stream.tell()
        if start >= len(data):
            break
        pushed: list = []  # the values of recent pushes: a str, or None for anything else
        memo: dict = {}
        try:
            for opcode, arg, _pos in pickletools.genops(stream):
                name = opcode.name
                if name in ("GLOBAL", "INST"):
                    module, _, attr = str(arg).partition(" ")
                    found.append(f"{module}.{attr}")
                elif name == "STACK_GLOBAL":
                    module, attr = (pushed[-2], pushed[-1]) if len(pushed) >= 2 else (None, None)
                    found.append(f"{module}.{attr}" if isinstance(module, str) and isinstance(attr, str)
                                 else "an unresolvable global (STACK_GLOBAL)")
                elif name in ("EXT1", "EXT2", "EXT4"):
                    found.append(f"copyreg extension {arg}")
                elif name in _STRINGS:
                    pushed.append(arg if isinstance(arg, str) else arg.decode("latin-1"))
                elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                    memo[arg] = pushed[-1] if pushed else None
                elif name == "MEMOIZE":
                    memo[len(memo)] = pushed[-1] if pushed else None
                elif name in ("GET", "BINGET", "LONG_BINGET"):
                    pushed.append(memo.get(arg))
                else:
                    pushed.append(None)
        except ValueError:  # not (or no longer) a pickle: pickle.loads stops here as well
            break
        if stream.tell() == start:
            break
    return found


def _is_zip(data: bytes) -> bool:
    return data[:4] == b"PK\x03\x04"


def _nested_problem(data: bytes, part: str) -> tuple[str, str] | None:
    """The first (part, callable) that a ``torch.save`` zip inside the archive would run."""
    try:
        inner = zipfile.ZipFile(io.BytesIO(data))
        names = inner.namelist()
        for name in names:
            base = name.rsplit("/", 1)[-1]
            if base == "constants.pkl" or "/code/" in f"/{name}":
                return f"{part}:{name}", "TorchScript code (torch.jit.load)"
            if name.endswith(".pkl"):
                bad = [g for g in _globals_in(inner.read(name)) if g not in ALLOWED]
                if bad:
                    return f"{part}:{name}", bad[0]
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError):
        return None  # torch cannot read it either: its load fails with an error, not a payload
    return None


def _raw_members(archive: zipfile.ZipFile, names: list[str]) -> set[str]:
    """Members that torch reads as raw tensor bytes (``use_pickle: false``), never unpickles."""
    raw: set[str] = set()
    for name in names:
        if not name.endswith("_config.json") or "/data/" not in f"/{name}":
            continue
        folder = name.rsplit("/", 1)[0]
        try:
            config = json.loads(archive.read(name)).get("config", {})
        except (ValueError, AttributeError, OSError, zipfile.BadZipFile):
            continue
        if not isinstance(config, dict):
            continue
        for meta in config.values():
            path = meta.get("path_name") if isinstance(meta, dict) else None
            if isinstance(path, str) and meta.get("use_pickle") is False \
                    and not path.startswith(("custom_obj_", "opaque_obj_")):
                raw.add(f"{folder}/{path}")
    return raw


def _is_json(data: bytes) -> bool:
    try:
        json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return False
    return True


def check_pt2(path: Path) -> None:
    """Refuse a ``.pt2`` archive any of whose pickles names a callable outside ``ALLOWED``.

    A TrustError names the member and the callable; a file that is no zip archive, or an
    empty one, is a ModelError. Call it before ``torch.export.load`` unless the user passed
    ``--trust-model``.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if not n.endswith("/")]
            if not names:
                raise ModelError(f"{path}: not a readable torch.export program (an empty archive)")
            raw = _raw_members(archive, names)
            for name in names:
                if name in raw:
                    continue
                data = archive.read(name)
                base = name.rsplit("/", 1)[-1]
                if base.startswith("custom_obj_"):
                    _refuse(path, name, "a TorchScript object (torch._C._pickle_load_obj)")
                if _is_zip(data):
                    problem = _nested_problem(data, name)
                    if problem:
                        _refuse(path, *problem)
                    continue
                if _is_json(data):
                    continue
                bad = [g for g in _globals_in(data) if g not in ALLOWED]
                if bad:
                    _refuse(path, name, bad[0])
    except (zipfile.BadZipFile, EOFError, OSError, NotImplementedError, ValueError) as exc:
        raise ModelError(f"{path}: not a readable torch.export program "
                         f"({type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''})"
                         ) from None


def _refuse(path: Path, part: str, callable_name: str):
    raise TrustError(f"{path}: archive member {part!r} holds a pickle that calls {callable_name}, outside "
                     f"hwprune's allow-list of tensor types: loading it could run code, so it was not loaded; "
                     f"{TRUST_HINT}")
