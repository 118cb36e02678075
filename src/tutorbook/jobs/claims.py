"""Once per interval across the cluster: before a periodic sweep runs, its process claims the
interval in `job_schedule` (PostgreSQL). The claim is one UPDATE that moves `next_run_at` forward
only if it is due; PostgreSQL's row lock makes every racer but the first see it not due any more,
so exactly one process runs the sweep each interval, whichever it is. The times are the
database's clock, so hosts whose clocks differ still agree.

On SQLite there is one process (the database is a file on one host): it always wins, as before.

`mail` is not claimed: it is a queue whose rows each worker claims itself (SKIP LOCKED), so
several mail workers share the outbox instead of taking turns.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from tutorbook.db import Database

UNCLAIMED = frozenset({"mail"})

_SEED = sa.text(
    "INSERT INTO job_schedule (job, next_run_at) VALUES (:job, clock_timestamp()) ON CONFLICT (job) DO NOTHING"
)
_CLAIM = sa.text(
    "UPDATE job_schedule SET next_run_at = clock_timestamp() + make_interval(secs => :every) "
    "WHERE job = :job AND next_run_at <= clock_timestamp() RETURNING job"
)
_WAIT = sa.text(
    "SELECT GREATEST(EXTRACT(EPOCH FROM next_run_at - clock_timestamp()), 0) FROM job_schedule WHERE job = :job"
)


@dataclass(frozen=True)
class Turn:
    """Whether this process runs the sweep now, and the seconds until the next one is due."""

    won: bool
    wait_s: float


def claim(db: Database, *, job: str, every: float) -> Turn:
    """Claim this interval of `job` (every `every` seconds); on SQLite always won."""
    if db.is_sqlite or job in UNCLAIMED:
        return Turn(True, every)
    with db.engine.begin() as conn:
        conn.execute(_SEED, {"job": job})
    with db.engine.begin() as conn:
        if conn.execute(_CLAIM, {"job": job, "every": every}).first() is not None:
            return Turn(True, every)
        wait = conn.execute(_WAIT, {"job": job}).scalar_one()
    return Turn(False, float(wait))
