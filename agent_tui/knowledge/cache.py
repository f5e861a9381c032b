"""Cache files of the knowledge models: data that can never run code.

A cache file is a sequence of NumPy `.npy` records (`np.save` called once per array on one file),
read back with `allow_pickle=False`, so a crafted file can at worst fail to load: no pickle, no
object arrays. Text and tables travel as one JSON record (UTF-8 bytes in a uint8 array) next to
the numeric arrays. One file per model keeps a write atomic (temporary file, then os.replace);
sequential records load faster than an `.npz` (no zip directory, no CRC pass over 12 MB of
classifier weights).

The cache directory may be shared or writable by others (a store on a shared disk): a file is
read only when this user owns it and nobody else may write it; files are created 0600 in a
directory created 0700. Anything unreadable, foreign or corrupt reads as None and is rebuilt.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def write_records(path: Path, arrays: Sequence[Any]) -> None:
    """Write the arrays to `path` atomically, private to this user. A cache is an optimisation:
    a failed write (read-only or full disk) is ignored."""
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor, temp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(descriptor, "wb") as handle:     # mkstemp creates it 0600
                for array in arrays:
                    np.save(handle, np.asarray(array), allow_pickle=False)
            os.replace(temp, path)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(temp)


def read_records(path: Path) -> list[Any] | None:
    """The arrays of a file `write_records` wrote, or None when the file is missing, not ours,
    writable by others, truncated or not a sequence of plain arrays."""
    try:
        with path.open("rb") as handle:
            status = os.fstat(handle.fileno())
            if status.st_uid != os.getuid() or status.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                return None
            records = []
            while handle.tell() < status.st_size:
                records.append(np.load(handle, allow_pickle=False))
            return records
    except Exception:       # any unreadable cache (OSError, ValueError, EOFError...) is rebuilt
        return None


def json_record(value: object) -> Any:
    """A JSON-serialisable value as a uint8 array, for write_records."""
    return np.frombuffer(json.dumps(value, ensure_ascii=False).encode(), dtype=np.uint8)


def from_json_record(record: Any) -> Any:
    """The value json_record stored; ValueError when the record is not JSON text."""
    if not isinstance(record, np.ndarray) or record.dtype != np.uint8 or record.ndim != 1:
        raise ValueError("not a JSON record")
    return json.loads(record.tobytes())
