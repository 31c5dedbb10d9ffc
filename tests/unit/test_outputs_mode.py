"""Outputs renamed into place get the permissions of any file the user creates (the umask),
not the private mode of a temporary file: an export folder is read by build tools and CI."""

import os
import stat

import pytest

from hwprune.outputs import output_dir, output_file


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_output_file_and_folder_follow_the_umask(tmp_path, umask_022):
    with output_file(tmp_path / "y.npy") as tmp:
        tmp.write_bytes(b"x")
    with output_dir(tmp_path / "export") as tmp:
        (tmp / "model.c").write_text("int x;\n")
    assert stat.S_IMODE((tmp_path / "y.npy").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "export").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "export" / "model.c").stat().st_mode) == 0o644
