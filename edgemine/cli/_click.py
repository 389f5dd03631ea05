"""The click classes every edgemine command uses: usage errors (an unknown option, a bad value)
print as one line, without click's usage block."""

from __future__ import annotations

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
