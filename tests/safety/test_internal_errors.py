"""hwprune's own failures are exit 1, "this is a bug in hwprune" and a log; a broken
compiler or other bad input stays exit 2.

A compiler that builds an empty program but rejects hwprune's C is the case to tell apart:
``CC="cc -Dstatic=@"`` is a real compiler whose every use of ``static`` (which the generated
C has, the probe program not) is a syntax error.
"""

import re
import shutil
from pathlib import Path

import pytest

from hwprune.errors import InternalError, ToolchainError
from hwprune.harness.cross import find_cross_cc, link_firmware

LOG = re.compile(r"the details are in (\S+hwprune-bug-\S+\.log)")


def _log_of(message: str) -> Path:
    found = LOG.search(message)
    assert found, message
    return Path(found.group(1))


@pytest.mark.skipif(shutil.which("cc") is None, reason="no host cc")
def test_a_compiler_that_rejects_hwprunes_c_is_a_bug_with_a_log(run, mlp_files, tmp_path, monkeypatch):
    model, x = mlp_files
    monkeypatch.setenv("CC", "cc -Dstatic=@")
    code, out, err = run("export", model, "--calibration", x, "--out", tmp_path / "e")
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert "this is a bug in hwprune" in err and "rejected hwprune's generated C" in err
    log = _log_of(err)
    try:
        text = log.read_text()
        assert "-Dstatic=@" in text and "error" in text and "hwprune 0." in text
    finally:
        log.unlink()
    assert not (tmp_path / "e").exists()


def test_a_compiler_that_builds_nothing_stays_exit_2(run, mlp_files, tmp_path, monkeypatch):
    model, x = mlp_files
    monkeypatch.setenv("CC", "false")
    code, _, err = run("export", model, "--calibration", x, "--out", tmp_path / "e")
    assert code == 2 and "the C compiler failed" in err and "bug" not in err, err


def test_generated_c_that_warns_in_the_cross_build_is_an_internal_error(tmp_path):
    try:
        find_cross_cc()
    except ToolchainError as exc:  # pragma: no cover - the default install has ziglang
        pytest.skip(str(exc))
    source = tmp_path / "warns.c"
    source.write_text("int hwprune_warns(void);\nint hwprune_warns(void) { unsigned t; return 0; }\n")
    with pytest.raises(InternalError, match="bug in hwprune") as caught:
        link_firmware([source], [tmp_path], "cortex-m4")
    log = _log_of(str(caught.value))
    try:
        assert "unused variable" in log.read_text()
    finally:
        log.unlink()
    broken = tmp_path / "broken.c"
    broken.write_text("int hwprune_broken = ;\n")
    with pytest.raises(ToolchainError) as third_party:  # strict=False: others' C, not a bug of hwprune
        link_firmware([broken], [tmp_path], "cortex-m4", strict=False)
    assert not isinstance(third_party.value, InternalError)
