"""Atomic file writes, and the removal of what interrupted writes left behind."""

from __future__ import annotations

import os
import re
import stat
import tempfile
import time
from pathlib import Path

# A save writes ``.<name>.<pid>.<random>.tmp`` next to its target and renames it over the
# target; a kill -9 between the two leaves the temporary file. The writer's pid in the name
# tells a leftover (its process is gone) from a save in progress (its process still runs).
_OLD_STYLE_AGE_S = 3600.0  # temp files of edgemine <= 0.1.0 had no pid: removed when this old


def _temp_pattern(name: str) -> re.Pattern:
    return re.compile(rf"\.{re.escape(name)}\.(?:(\d+)\.)?[a-z0-9_]{{8}}\.tmp")


def _process_exists(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):  # another user's, or not a pid: keep
        return True
    return True


def remove_leftover_temp_files(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary files that interrupted saves of ``path`` left in its folder (only
    regular files named as ``atomic_write_bytes`` names them, whose writer is gone); returns
    the removed paths.

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / ".m.edgemine.999999999.abcd1234.tmp").write_bytes(b"half a save")
    >>> [p.name for p in remove_leftover_temp_files(folder / "m.edgemine")]
    ['.m.edgemine.999999999.abcd1234.tmp']
    """
    path = Path(path)
    pattern = _temp_pattern(path.name)
    removed = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:  # no folder yet, or unreadable: nothing to clean
        return removed
    now = time.time()
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None:
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        pid = match.group(1)
        stale = not _process_exists(int(pid)) if pid else now - st.st_mtime > _OLD_STYLE_AGE_S
        if stale:
            try:
                os.unlink(entry.path)
            except OSError:
                continue
            removed.append(Path(entry.path))
    return removed


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a mix;
    first remove what interrupted writes of ``path`` left behind.

    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "a.bin"
    >>> atomic_write_bytes(target, b"new"); target.read_bytes()
    b'new'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_leftover_temp_files(path)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent
    )
    try:
        # mkstemp makes the file private (0600); give it the mode a plain open() would
        if path.exists():
            mode = path.stat().st_mode & 0o7777
        else:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
