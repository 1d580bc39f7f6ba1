"""Atomic file writes and content hashing shared by every pipeline stage (no torch here)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> Path:
    """Call `write(handle)` on a temporary file beside `path`, fsync, then rename it over `path`.

    A reader (or a crash, SIGKILL included) never sees a half-written file: rename is atomic on
    POSIX file systems, and the temporary file is removed if `write` raises.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # One fixed temporary name per file: a leftover of a killed process is replaced by the next write
    # of the same file, so running a killed command again leaves no stray temporary files.
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.fchmod(fd, 0o644)  # outputs are meant to be shared, whatever the umask
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Atomically write `data` to `path` (see `atomic_write`)."""

    def write(handle: BinaryIO) -> None:
        handle.write(data)

    return atomic_write(path, write)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Atomically write UTF-8 text (see `atomic_write_bytes`)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Atomically write `obj` as indented, key-sorted JSON."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | Path, *, fix: str = "re-create it with the command that wrote it") -> Any:
    """The parsed JSON file at `path`; a missing or damaged file raises an error naming it and the fix."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; {fix}.")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:  # json.JSONDecodeError is a ValueError
        raise ValueError(f"{path} is not valid JSON ({exc}); {fix}.") from exc


def portable_name(path: str | Path, *, parts: int = 2) -> str:
    """The last `parts` components of `path` (e.g. 'demo-run/model'): a name for files meant to be shared.

    Never the absolute path: that can carry the operator's user name and folder layout. Components
    at or above the home folder are dropped, so '~/model' becomes 'model'.
    """
    resolved = Path(path).expanduser().resolve()
    home = Path.home().resolve()
    names = resolved.relative_to(home).parts if resolved.is_relative_to(home) else resolved.parts[1:]
    return "/".join(names[-parts:]) if names else resolved.name


def sha256_file(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_bytes), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fsync_path(path: str | Path) -> None:
    """fsync a file (its data reaches the disk) or a folder (renames inside it survive a crash)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish_folder(folder: str | Path, write: Callable[[Path], object]) -> Path:
    """Call `write(tmp)` on a fresh temp folder beside `folder`, then swap it in place of `folder`.

    Readers see the old folder or the new one, never a partial one; `write` failing leaves the old one.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.partial")  # fixed name: a killed run's leftover is replaced
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        write(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return swap_folder(tmp, folder)


def swap_folder(new: str | Path, folder: str | Path) -> Path:
    """Rename the finished folder `new` to `folder`; an existing `folder` is moved aside first, then deleted.

    Two renames in one parent folder: a crash leaves the old folder, the new one, or the old one under
    `.NAME.old` beside the new one, never a mix of the two.
    """
    new, folder = Path(new), Path(folder)
    old = folder.with_name(f".{folder.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if folder.exists():
        os.replace(folder, old)
    os.replace(new, folder)
    fsync_path(folder.parent)
    shutil.rmtree(old, ignore_errors=True)
    return folder
