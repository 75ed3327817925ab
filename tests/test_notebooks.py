"""The notebooks run from top to bottom on the real flights data, so they never rot.

Each notebook runs in a fresh kernel of *this* interpreter: the kernelspec is written to a
temporary folder (nothing to install, nothing to register: a fresh ``pip install -e .[test]``
venv is enough, whatever ``python`` means on PATH). ``ANALYTICS_FLIGHTS_DATA`` points the
notebooks at the session's flights data and the kernel's working directory is a temporary
folder, so the executed notebooks and anything they write stay out of the repository.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import pytest
from _data import flights_dir

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
kernelspec = pytest.importorskip("jupyter_client.kernelspec")
manager = pytest.importorskip("jupyter_client.manager")

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
KERNEL = "analytics-tests"
#: Seconds one cell may take (Spark's start-up on a busy 2-core runner included).
CELL_TIMEOUT = 600

NOTEBOOK_PARAMS = [
    pytest.param("01_explore_flights.ipynb", id="01_explore_flights"),
    pytest.param(
        "02_engines.ipynb",
        id="02_engines",
        marks=[pytest.mark.dask, pytest.mark.spark, pytest.mark.slow],
    ),
]


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding one kernelspec: ipykernel on ``sys.executable``."""
    root = tmp_path_factory.mktemp("kernels")
    spec = root / KERNEL
    spec.mkdir()
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "analytics (tests)",
                "language": "python",
            }
        )
    )
    return root


def execute(notebook: Path, kernel_dir: Path, data: Path, workdir: Path) -> nbformat.NotebookNode:
    """Run every cell of ``notebook`` in ``workdir``; raise on the first failing cell."""
    nb = nbformat.read(notebook, as_version=4)
    specs = kernelspec.KernelSpecManager(kernel_dirs=[str(kernel_dir)])
    km = manager.AsyncKernelManager(kernel_name=KERNEL, kernel_spec_manager=specs)
    env = {**os.environ, "ANALYTICS_FLIGHTS_DATA": str(data), "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    env.pop("MPLBACKEND", None)  # the kernel's inline backend, whatever the caller uses
    client = nbclient.NotebookClient(
        nb, km=km, timeout=CELL_TIMEOUT, resources={"metadata": {"path": str(workdir)}}
    )
    try:
        client.execute(cleanup_kc=True, env=env)
    finally:
        nbformat.write(nb, workdir / notebook.name)  # kept beside the run for a post-mortem
    return nb


@pytest.mark.notebook
@pytest.mark.timeout(1500)
@pytest.mark.parametrize("name", NOTEBOOK_PARAMS)
def test_notebook_runs(name, kernel_dir, tmp_path_factory, tmp_path):
    data = flights_dir(tmp_path_factory)
    before = sorted(p.name for p in NOTEBOOKS.iterdir())
    started = time.perf_counter()
    nb = execute(NOTEBOOKS / name, kernel_dir, data, tmp_path)
    seconds = time.perf_counter() - started
    print(f"{name}: {seconds:.1f} s")

    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.execution_count for c in code), "a cell did not run"
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    images = [o for c in code for o in c.outputs if "image/png" in o.get("data", {})]
    assert images, "the notebook draws its plots"
    assert sorted(p.name for p in NOTEBOOKS.iterdir()) == before, "wrote into notebooks/"


def test_notebooks_are_stored_without_outputs():
    """The stored notebooks (no kernel needed): valid, no outputs, data found through
    ``ANALYTICS_FLIGHTS_DATA``."""
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, (
                    f"{path.name}: stored with outputs (clear them before committing)"
                )
        source = "\n".join(c.source for c in nb.cells)
        assert 'os.environ.get("ANALYTICS_FLIGHTS_DATA", "../data")' in source, path.name


def test_mpi_page_links_resolve():
    """notebooks/03_mpi.md: every relative link points at a file of the project."""
    page = NOTEBOOKS / "03_mpi.md"
    text = page.read_text()
    links = re.findall(r"\]\((\.\./[^)#]+)\)", text)
    assert links, "the page links the job scripts"
    for link in links:
        assert (page.parent / link).resolve().is_file(), link
    assert "mpiexec -n 4 python -m analytics profile data/flights --engine mpi" in text
