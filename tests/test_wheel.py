"""The built wheel carries the prebuilt sidebar: installed where there is no node, it shows.

The wheel is built from this checkout (the JupyterLab extension compiled by the build hook),
installed with ``--no-deps`` into a new venv that borrows the test venv's dependencies
through a ``.pth`` line (so nothing is downloaded), and served by ``jupyter lab`` run from
that venv with a PATH on which there is no node.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from conftest import REPO
from labserver import (
    HOSTILE,
    launch_chromium,
    open_runs,
    open_sidebar,
    running_lab,
    runs_area,
    seed_demo_runs,
)

from mlops_nb._version import __version__

EXTENSION = "share/jupyter/labextensions/mlops-nb"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # the build hook runs jlpm and `jupyter builder` from this venv
    path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--quiet", "-w", str(out), str(REPO)],
        check=True, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PATH": path},
    )  # fmt: skip
    (found,) = out.glob("mlops_nb-*.whl")
    return found


@pytest.fixture(scope="module")
def venv_without_node(wheel, tmp_path_factory) -> Path:
    venv = tmp_path_factory.mktemp("venv") / "v"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
         "--quiet", str(wheel)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    where = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site = subprocess.run([str(python), "-c", where], check=True, capture_output=True,
                          text=True).stdout.strip()  # fmt: skip
    Path(site, "borrowed_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return venv


def in_venv(venv: Path, *args: str) -> str:
    """Run the venv's python with a PATH of the venv alone: no node, no npm."""
    result = subprocess.run(
        [str(venv / "bin" / "python"), *args], capture_output=True, text=True, check=True,
        env={"PATH": str(venv / "bin"), "HOME": str(venv.parent)}, timeout=120,
    )  # fmt: skip
    return result.stdout + result.stderr


def test_the_wheel_holds_the_prebuilt_extension_and_enables_the_server_extension(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    data = f"mlops_nb-{__version__}.data/data/"
    assert f"{data}{EXTENSION}/package.json" in names
    assert f"{data}{EXTENSION}/install.json" in names
    assert any(n.startswith(f"{data}{EXTENSION}/static/remoteEntry.") for n in names)
    assert f"{data}etc/jupyter/jupyter_server_config.d/mlops_nb.json" in names
    assert not any(n.startswith("mlops_nb/labextension/") for n in names)  # not twice
    assert not any("node_modules" in n for n in names)


def test_the_installed_wheel_shows_the_sidebar_without_node(venv_without_node, tmp_path):
    venv = venv_without_node
    assert shutil.which("node", path=str(venv / "bin")) is None
    where = in_venv(venv, "-c", "import mlops_nb; print(mlops_nb.__file__)")
    assert where.startswith(str(venv))  # the wheel's copy, not the checkout
    plain = re.compile(r"\x1b\[[0-9;]*m")  # colour codes
    listed = plain.sub("", in_venv(venv, "-m", "jupyterlab.labextensions", "list"))
    assert f"{venv}/share/jupyter/labextensions" in listed
    assert f"mlops-nb v{__version__} enabled OK (python, mlops-nb)" in listed
    listed = plain.sub("", in_venv(venv, "-m", "jupyter_server.extension.serverextension", "list"))
    assert "mlops_nb enabled" in listed and f"mlops_nb {__version__} OK" in listed

    root = tmp_path / "root"
    root.mkdir()
    log = root / ".mlops" / "log.duckdb"
    seed_demo_runs(log, tmp_path)
    lab_assets = Path(sys.prefix) / "share" / "jupyter" / "lab"  # JupyterLab's own build
    from playwright.sync_api import sync_playwright

    with (
        running_lab(root, log, python=str(venv / "bin" / "python"),
                    extra_args=(f"--LabApp.app_dir={lab_assets}",),
                    extra_env={"PATH": str(venv / "bin")}) as lab,
        sync_playwright() as playwright,
    ):  # fmt: skip
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page()
            page.goto(lab.page_url())
            open_sidebar(page)
            open_runs(page)
            names = page.locator(f"{runs_area()} .mlops-runs-table td.mlops-name")
            assert sorted(names.all_inner_texts()) == sorted([HOSTILE, "baseline", "tuned"])
        finally:
            browser.close()
