"""Writing a file under a name of its own in a directory: the name made safe, nothing ever
overwritten, whoever else writes there at the same time (DESIGN.md invariant 4)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from agent_tui.sanitize import COPY_NUMBER_ROOM, safe_filename, split_extension

# As many copies as safe_filename leaves room for: " (9999)" is the last; a directory that full
# is a mistake.
MAX_COPIES = 10 ** (COPY_NUMBER_ROOM - len(" ()"))


def candidate_names(name: str) -> Iterator[str]:
    """`name` made safe, then `name (1).ext`, `name (2).ext`... ("a.tar.gz" becomes
    "a (1).tar.gz")."""
    safe = safe_filename(name)
    stem, extension = split_extension(safe)
    yield safe
    for n in range(1, MAX_COPIES):
        yield f"{stem} ({n}){extension}"


def write_new(directory: Path, name: str, data: bytes) -> Path:
    """Write `data` to a file in `directory` that did not exist before, and return its path.

    O_EXCL makes creating the file and checking that it is new one step, so neither another
    writer nor a symlink planted in the directory can make this overwrite anything. A write that
    fails (a full disk) leaves no half-written file behind."""
    for candidate in candidate_names(name):
        path = directory / candidate
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path
    raise FileExistsError(f"{directory}: {MAX_COPIES} files named like {name!r} already")
