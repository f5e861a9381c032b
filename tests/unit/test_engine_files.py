"""One way to write a new file (attachments, contact export): safe names that fit the file
system, copy numbers, never an overwrite, not even by a writer racing for the same name."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
from pathlib import Path

from agent_tui.engine.files import MAX_COPIES, candidate_names, write_new
from agent_tui.sanitize import NAME_MAX_BYTES


def test_copy_names_keep_the_extension() -> None:
    def names(name: str) -> list[str]:
        return list(itertools.islice(candidate_names(name), 3))

    assert names("a.pdf") == ["a.pdf", "a (1).pdf", "a (2).pdf"]
    assert names("backup.tar.gz") == ["backup.tar.gz", "backup (1).tar.gz", "backup (2).tar.gz"]
    assert names("README") == ["README", "README (1)", "README (2)"]
    assert names("v1.2 notes") == ["v1.2 notes", "v1.2 notes (1)", "v1.2 notes (2)"]


def test_the_last_copy_of_the_longest_name_fits_the_file_system(tmp_path: Path) -> None:
    for name, extension in (("ä" * 300 + ".tar.gz", ".tar.gz"), ("😀" * 300 + ".pdf", ".pdf"),
                            ("x" * 400, ""), ("€" * 90 + ".jpeg", ".jpeg")):
        *_, last = candidate_names(name)
        assert last.endswith(f" ({MAX_COPIES - 1}){extension}"), last
        assert len(last.encode()) <= NAME_MAX_BYTES
        (tmp_path / last).write_bytes(b"")           # the file system takes it


def test_a_planted_symlink_is_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(victim, out / "a.txt")
    os.symlink(tmp_path / "dangling", out / "a (1).txt")
    path = write_new(out, "a.txt", b"attachment")
    assert path == out / "a (2).txt" and path.read_bytes() == b"attachment"
    assert victim.read_bytes() == b"precious" and not (tmp_path / "dangling").exists()


def test_writers_racing_for_one_name_never_overwrite_each_other(tmp_path: Path) -> None:
    writers, rounds = 6, 20
    written: list[tuple[Path, bytes]] = []
    lock = threading.Lock()
    start = threading.Barrier(writers)

    def save(writer: int) -> None:
        for n in range(rounds):
            data = f"writer {writer} round {n}".encode()
            start.wait()                # all of them go for the same next free name at once
            path = write_new(tmp_path, "Rechnung.pdf", data)
            with lock:
                written.append((path, data))

    threads = [threading.Thread(target=save, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(written) == writers * rounds
    assert len({path for path, _ in written}) == writers * rounds
    for path, data in written:
        assert path.read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        itertools.islice(candidate_names("Rechnung.pdf"), writers * rounds))


def test_a_failed_write_leaves_no_half_file(tmp_path: Path) -> None:
    """The file size limit (as a full disk would) stops the write: the new file goes again."""
    code = (
        "import resource, signal, sys\n"
        "from pathlib import Path\n"
        "from agent_tui.engine.files import write_new\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n"
        "try:\n"
        "    write_new(Path(sys.argv[1]), 'big.bin', b'x' * 100_000)\n"
        "except OSError as exc:\n"
        "    print(exc.errno)\n")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                            text=True, check=True)
    assert result.stdout.strip() == "27"         # EFBIG
    assert list(tmp_path.iterdir()) == []
