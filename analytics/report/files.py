"""Atomic output: write to a temporary file beside the target, then rename over it.

A run that fails or is killed mid-write leaves the previous output intact and no partial file:

- On Linux the data goes to an *unnamed* file (``O_TMPFILE``) in the target's folder, which
  the kernel discards if the process dies (even by ``SIGKILL``); only once it is complete and
  flushed to disk does it get a hidden name (a hard link, or a quick copy where linking is
  refused) and replace the target (``rename`` is atomic). Elsewhere, or on a file system
  without ``O_TMPFILE``, a hidden ``.NAME.XXXX.tmp`` file is written instead and removed on any
  error; only a kill in that window (the copy or the named write) can leave one behind.
- :func:`write_outputs` writes several files this way and renames them only when all are
  written, so a failure never leaves a mix of old and new files.
- Names that come from data (a column, a partition value) are never path components unless
  :func:`output_file` accepts them: one plain name, inside the output folder.
- :func:`check_output_dir` refuses an output folder that is, or is inside, the input data.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from analytics.errors import UsageError

#: Writes the whole content of one output to the path it is given.
Writer = Callable[[Path], None]


class _Staged:
    """A complete temporary file for ``target``, not yet visible under the target's name.

    Unnamed (``O_TMPFILE``, written through ``/proc/self/fd/N``) where the system allows, so
    that a process killed while writing leaves nothing; else a hidden named file.
    """

    def __init__(self, target: Path) -> None:
        self.target = target
        self.fd: int | None = None
        self.named: Path | None = None
        target.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(AttributeError, OSError):
            # Mode 0666 minus the umask: outputs are ordinary files, not 0600 ones.
            self.fd = os.open(target.parent, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o666)
        if self.fd is not None and os.path.exists(f"/proc/self/fd/{self.fd}"):
            self.path = Path(f"/proc/self/fd/{self.fd}")
        else:
            self._close()
            self.named = self.path = _hidden_file(target)

    def write(self, writer: Writer) -> None:
        """Fill the temporary file with ``writer`` and flush it to disk."""
        writer(self.path)
        if self.fd is not None:
            os.fsync(self.fd)  # the same file, whichever descriptor the writer used
        else:
            with open(self.path, "rb+") as f:
                os.fsync(f.fileno())

    def commit(self) -> None:
        """Give the file the target's name, replacing any previous one atomically."""
        if self.named is None:
            assert self.fd is not None
            self.named = _name_unnamed(self.fd, self.target)
        os.replace(self.named, self.target)
        self.named = None
        self._close()

    def discard(self) -> None:
        """Forget the file; the target is untouched."""
        if self.named is not None:
            self.named.unlink(missing_ok=True)
            self.named = None
        self._close()

    def _close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _hidden_file(target: Path) -> Path:
    """A new empty ``.NAME.XXXX.tmp`` beside ``target``, with ordinary permissions."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600
    finally:
        os.close(fd)
    return Path(tmp)


def _name_unnamed(fd: int, target: Path) -> Path:
    """A hidden name beside ``target`` for the complete unnamed file ``fd``: a hard link
    (``linkat``), or where that is refused (some kernels and sandboxes) a flushed copy."""
    with contextlib.suppress(OSError):
        name = target.parent / f".{target.name}.{os.urandom(6).hex()}.tmp"
        os.link(f"/proc/self/fd/{fd}", name, follow_symlinks=True)
        return name
    name = _hidden_file(target)
    try:
        size = os.fstat(fd).st_size
        with open(name, "wb") as out:
            copied = 0
            while copied < size:
                sent = os.sendfile(out.fileno(), fd, copied, size - copied)
                if sent == 0:
                    raise OSError(errno.EIO, "short copy of a temporary file", str(name))
                copied += sent
            os.fsync(out.fileno())
    except BaseException:
        name.unlink(missing_ok=True)
        raise
    return name


def atomic_write(path: str | Path, write: Writer) -> Path:
    """Call ``write(tmp)`` on a temporary path in the target's folder, then rename it to
    ``path``; on any error (or if the process dies) ``path`` is untouched and no file is left
    behind. ``write`` must create the file at ``tmp`` by opening that path (not by renaming
    another file onto it)."""
    return write_outputs({Path(path): write})[0]


def write_outputs(outputs: Mapping[str | Path, Writer]) -> list[Path]:
    """Write every ``path: writer`` of ``outputs`` atomically, as one set: all files are
    written in full first, then renamed into place one after the other. If any writer fails,
    none of the targets changes."""
    staged: list[_Staged] = []
    try:
        for path, writer in outputs.items():
            staged.append(_Staged(Path(path)))
            staged[-1].write(writer)
        for item in staged:
            item.commit()
    finally:
        for item in staged:
            item.discard()
    return [item.target for item in staged]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats as None and numpy scalars as Python numbers, so that
    ``json.dumps`` writes standard JSON whose floats round-trip exactly."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def to_json(document: Any) -> str:
    """Standard JSON text (no NaN/Infinity tokens) of a result document."""
    return json.dumps(json_safe(document), indent=2, ensure_ascii=False, default=str)


def json_writer(document: Any) -> Writer:
    """A :data:`Writer` of ``document`` as standard JSON (UTF-8)."""
    text = to_json(document) + "\n"
    return lambda tmp: tmp.write_text(text, encoding="utf-8")


def parquet_writer(table: pa.Table) -> Writer:
    """A :data:`Writer` of ``table`` as one Parquet file."""
    return lambda tmp: pq.write_table(table, tmp)


def text_writer(text: str) -> Writer:
    """A :data:`Writer` of ``text`` (UTF-8)."""
    return lambda tmp: tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, document: Any) -> Path:
    return atomic_write(path, json_writer(document))


def write_parquet(path: str | Path, table: pa.Table) -> Path:
    return atomic_write(path, parquet_writer(table))


def output_file(out: str | Path, name: Any, suffix: str = "") -> Path:
    """``out / (name + suffix)`` when ``name`` is one plain file name, else a
    :class:`UsageError`: a name taken from the data (a column, a group, a partition value such
    as ``../../etc``) must never choose where a file goes.

    >>> output_file("reports", "dep_delay", ".json").as_posix()
    'reports/dep_delay.json'
    >>> output_file("reports", "../../etc/passwd")
    Traceback (most recent call last):
    ...
    analytics.errors.UsageError: cannot use '../../etc/passwd' as an output file name
    """
    text = str(name) + suffix
    reason = None
    if str(name) in ("", ".", "..") or text in (".", ".."):
        reason = "it is empty or a relative folder"
    elif "/" in text or "\\" in text or (os.altsep and os.altsep in text):
        reason = "it contains a path separator"
    elif "\0" in text or any(ord(c) < 32 for c in text):
        reason = "it contains control characters"
    elif len(text.encode("utf-8", "surrogateescape")) > 255:
        reason = "it is longer than 255 bytes"
    if reason is None:
        folder = Path(out)
        target = folder / text
        if target.parent == folder and target.name == text:
            return target
        reason = "it is not a plain file name"
    raise UsageError(
        f"cannot use {text!r} as an output file name",
        hint=f"{reason}; output files are named by the tool, inside --out",
    )


def check_output_dir(out: str | Path, inputs: Iterable[str | Path]) -> Path:
    """``out`` resolved, or a :class:`UsageError` if it cannot be a folder or if writing there
    could touch the input data.

    Refused: ``out`` or one of its parents is an existing file; ``out`` is an input file, an
    input folder or anything inside one; ``out`` is the folder directly holding an input file
    (a later run over that folder would read our outputs as data, or we would overwrite an
    input named like an output); ``out`` is inside the fixed folder a glob starts from.
    """
    given = Path(out)
    out = given.resolve()
    existing = next((p for p in (out, *out.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        where = "" if existing == out else f" ({existing} is a file)"
        raise UsageError(
            f"--out {given} is not a folder{where}"
            if where
            else f"--out {given} is a file, not a folder",
            hint="--out names a folder; the outputs are written inside it",
        )
    for item in inputs:
        source = Path(item).expanduser()
        if any(c in str(source) for c in "*?[") and not source.exists():
            from analytics.dataset import _glob_root

            root = _glob_root(str(source)).resolve()
            if out == root or root in out.parents:
                _refuse(out, f"the pattern {item} reads from {root}")
            continue
        source = source.resolve()
        if out == source or (source.is_dir() and source in out.parents):
            _refuse(out, f"it is inside the input dataset {source}")
        if source.is_file() and out == source.parent:
            _refuse(out, f"it holds the input file {source}")
    return out


def _refuse(out: Path, reason: str) -> None:
    raise UsageError(
        f"refusing to write into {out}: {reason}",
        hint="choose an --out folder outside the data; inputs are never written to",
    )
