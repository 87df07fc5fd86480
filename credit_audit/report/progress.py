"""Progress of a sweep: checkpoints done / total, the rate and the time left.

Pure bookkeeping: the plugin feeds it each checkpoint record as it is reported and prints the
line it returns on a terminal (never into the log of a run whose output is not a TTY).
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["SweepProgress"]


class SweepProgress:
    """Counts checkpoints whose every check has been reported.

    Example:
        >>> ticks = iter([0.0, 10.0, 20.0])
        >>> p = SweepProgress(total=4, checks=2, clock=lambda: next(ticks))
        >>> p.reported("a"), p.reported("a")
        (None, 'credit_audit: 1/4 checkpoints audited, 0.10/s, about 30 s left')
    """

    def __init__(self, total: int, checks: int, clock: Callable[[], float] = time.monotonic):
        self.total = total
        self.checks = checks
        self.clock = clock
        self.start = clock()
        self.seen: dict[str, int] = {}
        self.done = 0

    def reported(self, subject: str) -> str | None:
        """One check of ``subject`` was reported; the progress line when that completes it."""
        self.seen[subject] = self.seen.get(subject, 0) + 1
        if self.seen[subject] != self.checks:
            return None
        self.done += 1
        elapsed = max(self.clock() - self.start, 1e-9)
        rate = self.done / elapsed
        left = (self.total - self.done) / rate
        return (
            f"credit_audit: {self.done}/{self.total} checkpoints audited, {rate:.2f}/s, "
            f"about {_duration(left)} left"
        )


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
