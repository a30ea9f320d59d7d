"""emrun outside its checkout (issue 31): `emrun list` in a folder of one's own lists every
registered name, and the documented install into one's own environment writes nothing into the
checkout."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import emrun

REPOSITORY = Path(__file__).resolve().parent.parent


def test_list_outside_a_checkout_lists_every_registered_name_and_exits_0(tmp_path):
    result = emrun("list", cwd=tmp_path)
    assert result.returncode == 0 and "No configs/ folder here" in result.stdout
    for line in ("model family: bernoulli, gaussian", "algorithm: em, gd", "init scheme: uniform", "claim: never_ends"):
        assert line in result.stdout, result.stdout
    asked = emrun("list", "--configs", "missing", cwd=tmp_path, check=False)  # a folder the user names must exist
    assert asked.returncode == 2 and "no config files in missing/" in asked.stderr


def _state(checkout: Path) -> str:
    return subprocess.run(["git", "status", "--porcelain", "--ignored"], cwd=checkout, capture_output=True, text=True,
                          check=True).stdout


@pytest.mark.slow
def test_the_documented_install_writes_nothing_into_the_checkout(tmp_path):
    checkout = tmp_path / "emrun"  # a clone of this commit, as a user's checkout
    subprocess.run(["git", "clone", "--quiet", str(REPOSITORY), str(checkout)], check=True)
    before = _state(checkout)
    site = tmp_path / "site"
    # README, "Into an environment of your own" (--no-deps --target: this test's environment has the dependencies).
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site),
                    f"emrun @ git+file://{checkout}"], check=True, timeout=600)
    assert _state(checkout) == before  # no build/, no emrun.egg-info in the checkout
    own = tmp_path / "mine"
    own.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    where = subprocess.run([sys.executable, "-c", "import emrun; print(emrun.__file__)"], cwd=own, env=env,
                           capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(site))
    listed = subprocess.run([sys.executable, "-m", "emrun.cli", "list"], cwd=own, env=env, capture_output=True, text=True)
    assert listed.returncode == 0 and "model family: bernoulli" in listed.stdout
