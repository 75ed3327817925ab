"""Routines under real mpiexec: the CLI with --engine mpi and the SPMD analytics.mpi API give
the serial engine's results bit for bit, whatever the number of ranks."""

from __future__ import annotations

import json
import sys

import pytest
from _data import flights_dir
from test_engine_mpi import run_mpi

from analytics.report.files import json_safe
from analytics.routines.corr import corr
from analytics.routines.histogram2d import histogram2d
from analytics.routines.ols import ols
from analytics.routines.profile import profile

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent / "mpi_scripts"))
import spmd_profile

VOLATILE = ("engine", "workers", "passes", "seconds")

pytestmark = pytest.mark.mpi


def comparable(document: dict) -> dict:
    return {k: v for k, v in json_safe(document).items() if k not in VOLATILE}


@pytest.mark.parametrize("ranks", [1, 3])
def test_spmd_routines_of_rank_local_slices_equal_serial(ranks, venv_bin, tmp_path):
    out = tmp_path / "profile.json"
    done, _ = run_mpi(venv_bin, ranks, "spmd_profile.py", str(out))
    assert done.returncode == 0, done.stderr
    table = spmd_profile.make_table()
    written = json.loads(out.read_text())
    assert written["profile"]["engine"] == "mpi" and written["profile"]["workers"] == ranks
    exact = {
        "profile": profile(table, engine="serial"),
        "corr": corr(table, ["x", "k"], engine="serial"),
        "histogram2d": histogram2d(table, "x", "k", bins=(7, 3), engine="serial"),
    }
    for name, expected in exact.items():
        assert comparable(written[name]) == comparable(expected.to_dict()), name
    fit = ols(table, "x", ["k", "s"], engine="serial").to_dict()
    ours = [c["coef"] for c in written["ols"]["coefficients"]]
    assert ours == pytest.approx([c["coef"] for c in fit["coefficients"]], rel=1e-12)
    assert written["ols"]["n"] == fit["n"]


@pytest.mark.parametrize("ranks", [2, 4])
def test_cli_profile_of_flights_under_mpiexec_equals_serial(ranks, venv_bin, tmp_path_factory):
    flights = flights_dir(tmp_path_factory) / "flights"
    out = tmp_path_factory.mktemp("mpi-cli")
    columns = "dep_delay,arr_delay,carrier,distance,time_hour,month"
    done, _ = run_mpi(
        venv_bin, ranks, "spmd_profile.py",
        "cli", "profile", str(flights), "--columns", columns, "--engine", "mpi", "--out", str(out),
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    written = json.loads((out / "profile.json").read_text())
    expected = profile(flights, columns.split(","), engine="serial").to_dict()
    assert written["workers"] == ranks
    assert comparable(written) == comparable(expected)


def test_cli_error_under_mpiexec_is_printed_once_and_fast(venv_bin, tmp_path):
    done, seconds = run_mpi(
        venv_bin, 3, "spmd_profile.py", "cli", "profile", str(tmp_path / "missing"), "--engine", "mpi",
    )
    assert done.returncode == 1
    assert done.stderr.count("path does not exist") == 1, done.stderr
    assert seconds < 30
