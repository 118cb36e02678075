"""A small Prometheus text exporter: counters and gauges in process, plus gauges handed in at
render time (bookings by status, counted in the database by the caller)."""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any

HELP = {
    "tutorbook_webhook_events_total": "Stripe webhook events handled, by outcome",
    "tutorbook_jobs_runs_total": "Job runs, by job and result",
    "tutorbook_jobs_items_total": "Bookings (and refunds) handled by jobs, by job and outcome",
    "tutorbook_jobs_last_success_timestamp_seconds": "Last error-free run of each job (Unix time)",
}


class Metrics:
    def __init__(self) -> None:
        self._counters: dict[str, dict[tuple[Any, ...], float]] = defaultdict(lambda: defaultdict(float))
        self._gauges: dict[str, dict[tuple[Any, ...], float]] = defaultdict(dict)
        self._lock = threading.Lock()

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            self._counters[name][key] += amount

    def set(self, name: str, value: float, **labels: str) -> None:
        """Set a gauge."""
        with self._lock:
            self._gauges[name][tuple(sorted(labels.items()))] = value

    def value(self, name: str, **labels: str) -> float:
        key = tuple(sorted(labels.items()))
        return self._counters.get(name, {}).get(key, self._gauges.get(name, {}).get(key, 0))

    def render(self, bookings_by_status: dict[str, int]) -> str:
        """The exposition text; `bookings_by_status` (status name -> count) counted just now."""
        lines = ["# HELP tutorbook_bookings Bookings by status", "# TYPE tutorbook_bookings gauge"]
        for name, count in bookings_by_status.items():
            lines.append(f'tutorbook_bookings{{status="{name}"}} {count}')
        with self._lock:
            for kind, family in (("counter", self._counters), ("gauge", self._gauges)):
                for name, series in sorted(family.items()):
                    lines += [f"# HELP {name} {HELP.get(name, name)}", f"# TYPE {name} {kind}"]
                    for labels, v in sorted(series.items()):
                        label = ",".join(f'{k}="{val}"' for k, val in labels)
                        lines.append(f"{name}{{{label}}} {v:.17g}")
        return "\n".join(lines) + "\n"


METRICS = Metrics()
