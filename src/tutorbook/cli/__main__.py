"""`python -m tutorbook.cli`."""

from tutorbook.cli import app

app()
