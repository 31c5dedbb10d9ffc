"""Run a sweep's trials on Ray, keep every finished trial on disk, resume after a kill.

Layout of a sweep folder::

    DIR/sweep-spec.json             what the sweep is (written first; a resume checks it)
    DIR/trials/<id>/export/         each trial's export folder, kept
    DIR/trials/<id>/result.json     its record, written last: a trial is finished iff it exists
    DIR/sweep.json, sweep.md, sweep.png, DIR/best/   written at the end

Ray: by default a local instance started in this process (nothing to set up); with an
address, the running cluster there. Each trial is a Ray task of one CPU that receives the
model and data by value and returns its record and export archive, so workers need no
shared file system.
"""

from __future__ import annotations

import contextlib
import importlib.util
import ipaddress
import json
import os
import shutil
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

from hwprune.errors import HwpruneError, OptionError, OutputExistsError, ToolchainError
from hwprune.manifest import foreign_content as export_foreign
from hwprune.sweep.spec import SweepSpec, Trial
from hwprune.sweep.trial import UNPACK_PREFIX, Inputs, run_trial, unpack_export

SPEC_FILE = "sweep-spec.json"
TRIALS_DIR = "trials"
RESULT_FILE = "result.json"
CONNECT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class SweepRun:
    records: list[dict]  # every trial of the grid, finished now or before
    ran: tuple[str, ...]  # ids of the trials this run computed
    wall_seconds: float
    workers: int


def prepare_folder(out: Path, spec: SweepSpec, resume: bool, force: bool) -> bool:
    """Create the sweep folder, or check that a resumed one belongs to the same sweep.
    True when ``--force`` is to replace an existing folder: nothing is written then, and
    the caller builds the new sweep beside it and swaps it into place at the end
    (``outputs.output_dir`` judges what it may replace)."""
    marker = out / SPEC_FILE
    if resume and not out.exists():  # a mistyped folder must not start hours of new trials
        raise OptionError(f"--resume: {out} does not exist, so there is no sweep to finish; "
                          "run without --resume to start one")
    if out.exists() and resume:
        if not marker.is_file():
            raise OptionError(f"--resume: {out} holds no {SPEC_FILE}; it is not a sweep folder")
        stored = json.loads(marker.read_text())
        if stored.get("fingerprint") != spec.fingerprint:
            differ = sorted(k for k, v in spec.to_dict().items()
                            if k not in spec.JUDGING and stored.get("spec", {}).get(k) != v)
            raise OptionError(f"--resume: {out} is a different sweep (it differs in {', '.join(differ) or 'its inputs'}); "
                              "give the same options or another --out")
        return False
    if out.exists() or out.is_symlink():
        if not force:
            raise OutputExistsError(f"{out} exists already; pass --resume to finish that sweep or --force to replace it")
        return True
    start_folder(out, spec)
    return False


def start_folder(out: Path, spec: SweepSpec) -> None:
    """The sweep's first files in ``out`` (which may exist, empty): its trials folder and its spec."""
    (out / TRIALS_DIR).mkdir(parents=True)
    (out / SPEC_FILE).write_text(json.dumps({"fingerprint": spec.fingerprint, "spec": spec.to_dict()}, indent=1) + "\n")


def trial_foreign(folder: Path) -> Optional[str]:
    """Why ``folder`` (DIR/trials) holds something a sweep did not write, or None."""
    for trial in sorted(folder.iterdir()):
        here = f"{TRIALS_DIR}/{trial.name}"
        if trial.is_symlink() or not trial.is_dir():
            return f"it holds {here}, which hwprune did not write"
        for entry in sorted(trial.iterdir()):
            if entry.is_symlink():
                return f"it holds {here}/{entry.name}, which hwprune did not write"
            if entry.name in (RESULT_FILE, f".{RESULT_FILE}.tmp") and entry.is_file():
                continue
            if entry.name.startswith(UNPACK_PREFIX) and entry.is_dir():  # left by a kill while unpacking
                continue
            if entry.name == "export" and entry.is_dir():
                why = export_foreign(entry)
                if why is None:
                    continue
                return f"{here}/export is not an export hwprune wrote ({why})"
            return f"it holds {here}/{entry.name}, which hwprune did not write"
    return None


def finished(out: Path, trial: Trial) -> Optional[dict]:
    path = out / TRIALS_DIR / trial.id / RESULT_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:  # cut short by a kill between write and rename cannot happen; a hand edit can
        return None


def _store(out: Path, record: dict, archive: Optional[bytes]) -> None:
    folder = out / TRIALS_DIR / record["id"]
    if folder.exists():
        shutil.rmtree(folder)  # a trial a kill interrupted: its leftovers go
    folder.mkdir(parents=True)
    if archive is not None:
        unpack_export(archive, folder / "export")
    tmp = folder / f".{RESULT_FILE}.tmp"
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    tmp.replace(folder / RESULT_FILE)


def _check_address(address: str) -> None:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise OptionError(f"--address {address!r} must be HOST:PORT (the head node's GCS address, e.g. 127.0.0.1:6379)")
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        raise OptionError(f"--address {address}: no Ray cluster answers there ({exc.strerror or exc}); "
                          "start one with 'ray start --head' or drop --address for a local one") from None


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def check_engine(address: Optional[str]) -> None:
    """Fail before anything is written: Ray missing, or no cluster at ``address``."""
    if importlib.util.find_spec("ray") is None:
        raise ToolchainError("hwprune sweep runs on Ray, which is not installed: pip install 'hwprune[sweep]'")
    if address:
        _check_address(address)


# Ray's own switch for a cluster confined to this machine (its default on macOS and
# Windows): the node address stays 127.0.0.1 instead of being rewritten to the machine's
# address, and Ray's servers then listen on loopback only.
LOCAL_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
LOOPBACK = "127.0.0.1"


def ray_token_path() -> Path:
    return Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")


def _private_token() -> None:
    """Ray writes its token with the umask's permissions; only its owner may read it."""
    token = ray_token_path()
    if token.is_file() and not token.is_symlink() and token.stat().st_uid == os.getuid():
        os.chmod(token, 0o600)


@contextlib.contextmanager
def _local_only() -> Iterator[None]:
    """While a local Ray starts: its node on loopback, its files private to the user.
    ``umask`` 077 makes the token file (and Ray's session folder) 0600/0700 from the
    start; the environment variable is read when ray is imported, the constant later."""
    saved_env = os.environ.get(LOCAL_ONLY_ENV)
    os.environ[LOCAL_ONLY_ENV] = "0"
    constants = sys.modules.get("ray._private.ray_constants")
    saved_constant = getattr(constants, "ENABLE_RAY_CLUSTER", None)
    if constants is not None:
        constants.ENABLE_RAY_CLUSTER = False
    mask = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(mask)
        if constants is not None:
            constants.ENABLE_RAY_CLUSTER = saved_constant
        if saved_env is None:
            os.environ.pop(LOCAL_ONLY_ENV, None)
        else:
            os.environ[LOCAL_ONLY_ENV] = saved_env


@contextlib.contextmanager
def _sigterm_held(ray) -> Iterator[None]:
    """While Ray starts: a SIGTERM is recorded, then delivered to the previous handler
    once ``ray.init`` returned. ``ray.init`` would install a handler that calls sys.exit
    wherever the interpreter is, even where the exception is dropped (a logging lock's
    release), and keep it for the whole sweep; hwprune's handler unwinds instead, so the
    sweep shuts Ray down and says why it stopped."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread gets signals
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, _frame: caught.append(signum))
    utils = ray._private.utils
    install = utils.set_sigterm_handler
    utils.set_sigterm_handler = lambda handler: None
    try:
        yield
    finally:
        utils.set_sigterm_handler = install
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
    if caught:
        signal.raise_signal(signal.SIGTERM)


def _init_ray(address: Optional[str], workers: Optional[int]):
    if address:
        token = ray_token_path()
        if "RAY_AUTH_MODE" not in os.environ and (token.is_file() or os.environ.get("RAY_AUTH_TOKEN")):
            # 'ray start' enables token authentication; Ray reads the mode when it is imported.
            os.environ["RAY_AUTH_MODE"] = "token"
    with contextlib.ExitStack() as local:
        if not address:
            local.enter_context(_local_only())
        # Ray reads both when it is imported (ray._private.ray_constants), so before the import.
        # Ray's C++ core installs a crash handler for SIGTERM in the driver that aborts the
        # process (exit -6) when the signal lands on it; hwprune's own handler must get every
        # SIGTERM so that the sweep shuts Ray down and exits 143.
        os.environ.setdefault("RAY_DEDUP_LOGS", "0")
        os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")
        try:
            import ray
        except ImportError:
            raise ToolchainError("hwprune sweep runs on Ray, which is not installed: pip install 'hwprune[sweep]'") from None
        if address:
            _check_address(address)
        kwargs = dict(log_to_driver=False, include_dashboard=False, logging_level="ERROR")
        try:
            with _sigterm_held(ray):
                if address:
                    _join(ray, address, kwargs)
                else:
                    ray.init(address="local", num_cpus=workers or os.cpu_count() or 1, _node_ip_address=LOOPBACK,
                             **kwargs)
                    _private_token()
        except BaseException:  # interrupted or failed half-way: no Ray process outlives the sweep
            ray.shutdown()
            raise
    return ray


def _join(ray, address: str, kwargs: dict) -> None:
    kwargs.pop("include_dashboard")
    host = address.rpartition(":")[0]
    if _is_loopback(host):
        # A cluster on this machine's loopback: the driver joins it as a local node.
        kwargs["_node_ip_address"] = host
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError) as exc:
        raise OptionError(f"--address {address}: cannot join the Ray cluster there "
                          f"({str(exc).strip().splitlines()[-1]})") from None


def _trial_task(spec: SweepSpec, trial: Trial, inputs: Inputs):
    """Runs in a Ray worker: a bad trial becomes a record with its error, not a lost sweep."""
    try:
        return run_trial(spec, trial, inputs)
    except HwpruneError as exc:
        return {**trial.to_dict(), "id": trial.id, "config": trial.config, "error": str(exc)}, None
    except Exception as exc:  # a bug: named here, since Ray's wrapper's first line only names the task
        message = (f"{type(exc).__name__}: {exc}".splitlines() or [""])[0]
        return {**trial.to_dict(), "id": trial.id, "config": trial.config, "error": message}, None


def run_trials(spec: SweepSpec, inputs: Inputs, out: Path, address: Optional[str] = None,
               workers: Optional[int] = None, progress: bool = True) -> SweepRun:
    from tqdm import tqdm

    started = time.perf_counter()
    trials = spec.trials()
    done = {t.id: r for t in trials if (r := finished(out, t)) is not None}
    todo = [t for t in trials if t.id not in done]
    ran: list[str] = []
    cpus = 0
    if todo:
        ray = _init_ray(address, workers)
        try:
            cpus = int(ray.cluster_resources().get("CPU", 1))
            task = ray.remote(num_cpus=1, max_retries=0)(_trial_task)
            inputs_ref = ray.put(inputs)
            pending = {task.remote(spec, t, inputs_ref): t for t in todo}
            with tqdm(total=len(trials), initial=len(done), desc="sweep", unit="trial", file=sys.stderr,
                      disable=None if progress else True) as bar:
                while pending:
                    ready, _ = ray.wait(list(pending), num_returns=1)
                    trial = pending.pop(ready[0])
                    try:
                        record, archive = ray.get(ready[0])
                    except Exception as exc:  # a worker that died or raised something unexpected
                        record, archive = {**trial.to_dict(), "id": trial.id, "config": trial.config,
                                           "error": f"{type(exc).__name__}: {exc}".splitlines()[0]}, None
                    _store(out, record, archive)
                    done[trial.id] = record
                    ran.append(trial.id)
                    bar.update(1)
        finally:
            ray.shutdown()
    records = [done[t.id] for t in trials]
    return SweepRun(records, tuple(ran), time.perf_counter() - started, cpus)
