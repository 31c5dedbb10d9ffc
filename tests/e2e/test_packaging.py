"""A plain (non-editable) install carries templates/ and targets/ and works from any folder."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        pytest.fail(f"pip wheel failed:\n{proc.stderr}")
    return next(out.glob("hwprune-*.whl"))


def test_wheel_ships_templates_and_targets(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for template in (ROOT / "templates").rglob("*"):
        if template.is_file():
            assert f"hwprune/templates/{template.relative_to(ROOT / 'templates').as_posix()}" in names
    for target in (ROOT / "targets").glob("*.toml"):
        assert f"hwprune/targets/{target.name}" in names
    for table in (ROOT / "costs").glob("*.toml"):
        assert f"hwprune/costs/{table.name}" in names


def test_installed_package_exports_from_another_folder(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    work = tmp_path / "elsewhere"
    work.mkdir()
    script = (
        "import numpy as np, torch, hwprune, json\n"
        "from hwprune.pipeline import export_model\n"
        "from hwprune.frontends.torch import from_torch\n"
        "assert hwprune.__file__.startswith(%r), hwprune.__file__\n"
        "torch.manual_seed(0)\n"
        "g = from_torch(torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2)), name='tiny')\n"
        "out = export_model(g, 'exp', np.random.default_rng(0).normal(size=(20, 5)))\n"
        "r = json.load(open(out / 'report.json'))\n"
        "assert r['bit_exact'] and r['engines']['host']['available'], r['engines']\n"
        "print('ok')\n"
    ) % str(site)
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin:/usr/local/bin"}
    import os

    env.update({k: v for k, v in os.environ.items() if k in ("HOME", "LANG", "CC", "TMPDIR")})
    proc = subprocess.run([sys.executable, "-c", script], cwd=work, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
