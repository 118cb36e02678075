"""The `tutorbook` command: serve, worker, db, demo-data, create-admin, stripe-sandbox, reports, jobs,
mail. Each module adds its commands to the one Typer `app` (the console entry point)."""

from tutorbook.cli import serving  # noqa: I001 (the commands are listed in the order they are added)
from tutorbook.cli import data, operations
from tutorbook.cli.common import app
from tutorbook.cli.serving import _job_names

__all__ = ["_job_names", "app", "data", "operations", "serving"]
