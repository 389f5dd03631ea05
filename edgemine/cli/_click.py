"""The click classes every edgemine command uses (usage errors print as one line, without
click's usage block) and the check that an output can be written before any work starts."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click


class OneLineUsage:
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as e:
            e.ctx = None  # no "Usage: ..." / "Try --help" lines
            raise


class Command(OneLineUsage, click.Command):
    """A command whose usage errors are one line."""


def check_writable(path: str | os.PathLike, what: str) -> Path:
    """Refuse, before any training or export, an output file that cannot be written.

    A probe file is created and removed in the target's folder: permission bits alone do not
    tell (root ignores them; a read-only mount does not show in them).

    >>> import tempfile
    >>> check_writable(Path(tempfile.gettempdir()) / "model.edgemine", "-o").name
    'model.edgemine'
    """
    p = Path(path)
    if p.is_dir():
        raise click.UsageError(f"{what} {p} is a folder: give a file name")
    parent = p.parent
    if not parent.exists():
        raise click.UsageError(f"{what} {p}: the folder {parent} does not exist")
    if not parent.is_dir():
        raise click.UsageError(f"{what} {p}: {parent} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=parent, prefix=".edgemine-probe-")
    except OSError as e:
        raise click.UsageError(f"{what} {p}: cannot write in {parent} ({e.strerror})") from None
    os.close(fd)
    os.unlink(probe)
    if p.exists() and not os.access(p, os.W_OK):
        raise click.UsageError(f"{what} {p}: the file exists and is not writable")
    return p
