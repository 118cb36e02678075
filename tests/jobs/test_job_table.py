"""The one table of the jobs: each has a function and an interval setting that Settings has,
documented in the README; no interval setting is left without its job."""

from pathlib import Path

import pytest

from tutorbook import jobs
from tutorbook.config import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
INTERVALS = {name for name in Settings.model_fields if name.startswith("job_") and name.endswith("_interval_s")}


@pytest.mark.parametrize("name", list(jobs.JOBS))
def test_every_job_has_a_function_and_an_interval_setting_that_exists(name):
    job = jobs.JOBS[name]
    assert callable(job.run)
    assert job.interval_setting in Settings.model_fields
    assert f"TUTORBOOK_{job.interval_setting.upper()}" in README


def test_every_interval_setting_belongs_to_one_job():
    settings = [job.interval_setting for job in jobs.JOBS.values()]
    assert sorted(settings) == sorted(set(settings))
    assert set(settings) == INTERVALS


def test_a_jobs_interval_is_read_from_its_setting():
    settings = Settings(job_purge_interval_s=123, job_mail_interval_s=0)
    assert jobs.interval(settings, "purge") == 123
    assert jobs.interval(settings, "mail") == 0
