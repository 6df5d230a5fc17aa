"""Progress of a long pass: rows done, rate and time left."""
from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class ProgressEvent:
    entity: str
    batch_no: int
    done: int
    total: int
    rows_per_s: float
    eta_s: float | None

    def describe(self) -> str:
        eta = f", ETA {self.eta_s:,.0f} s" if self.eta_s is not None else ""
        share = f" of {self.total:,}" if self.total else ""
        return f"{self.entity}: batch {self.batch_no}, {self.done:,}{share} rows, {self.rows_per_s:,.0f} rows/s{eta}"


class ProgressMeter:
    def __init__(self, entity: str, total: int):
        self.entity = entity
        self.total = total
        self.started = time.monotonic()

    def event(self, batch_no: int, done: int) -> ProgressEvent:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = done / elapsed
        remaining = max(self.total - done, 0)
        eta = remaining / rate if rate > 0 and self.total else None
        return ProgressEvent(self.entity, batch_no, done, self.total, rate, eta)
