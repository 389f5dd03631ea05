"""A Keras-style progress bar that reads well in a terminal and in a log file.

On a terminal it redraws one line (at most ~20 times a second). In a file or a pipe it writes
no carriage returns: one finished line per epoch, so logs stay readable.
"""

from __future__ import annotations

import sys
import time


def _fmt_time(seconds: float) -> str:
    if seconds >= 3600:
        return f"{int(seconds // 3600)}:{int(seconds % 3600 // 60):02d}:{int(seconds % 60):02d}"
    if seconds >= 60:
        return f"{int(seconds // 60)}:{int(seconds % 60):02d}"
    return f"{seconds:.0f}s"


def format_logs(logs: dict) -> str:
    return " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())


class ProgressBar:
    """``ProgressBar(total_steps, verbose)``; call ``update(step, logs)`` and ``finish(logs)``.
    ``total_steps`` None: unknown (a generator's first epoch); the steps seen stand in for it."""

    def __init__(self, total: int, verbose: int = 1, width: int = 30, stream=None):
        self.total = total
        self.verbose = verbose
        self.width = width
        self.stream = stream or sys.stdout
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = time.perf_counter()
        self._last_draw = 0.0
        self._step = 0

    def _line(self, step: int, logs: dict, done: bool) -> str:
        elapsed = time.perf_counter() - self.start
        total = self.total if self.total is not None else max(step, 1)
        n = len(str(total))
        filled = int(self.width * step / max(total, 1))
        bar = "=" * max(filled - 1, 0) + (">" if filled < self.width else "=") if filled else ""
        bar = bar.ljust(self.width, ".")
        per_step = elapsed / max(step, 1)
        if done:
            timing = f"{_fmt_time(elapsed)} {per_step * 1e3:.0f}ms/step"
        else:
            timing = f"ETA: {_fmt_time(per_step * (total - step))}"
        tail = format_logs(logs)
        shown = total if self.total is not None or done else "Unknown"
        return f"{step:>{n}}/{shown} [{bar}] - {timing}" + (f" - {tail}" if tail else "")

    def update(self, step: int, logs: dict) -> None:
        self._step = step
        if self.verbose != 1 or not self.interactive:
            return
        now = time.perf_counter()
        if now - self._last_draw < 0.05 and (self.total is None or step < self.total):
            return
        self._last_draw = now
        self.stream.write("\r" + self._line(step, logs, False) + "\033[K")
        self.stream.flush()

    def finish(self, logs: dict) -> None:
        if self.verbose == 0:
            return
        total = self.total if self.total is not None else self._step
        if self.verbose == 2:
            elapsed = time.perf_counter() - self.start
            line = f"{total}/{total} - {_fmt_time(elapsed)} - {format_logs(logs)}"
        else:
            line = self._line(total, logs, True)
        prefix = "\r" if self.interactive else ""
        self.stream.write(prefix + line + ("\033[K" if self.interactive else "") + "\n")
        self.stream.flush()
