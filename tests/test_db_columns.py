"""db.columns.read_columns: a SELECT of columns as Core on the session's connection, answering
what session.execute answered for it, after the same autoflush."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from tutorbook.db.columns import read_columns


class _Base(DeclarativeBase):
    pass


class Pupil(_Base):
    __tablename__ = "pupils"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]


NAMES = sa.select(Pupil.id, Pupil.name).where(Pupil.id >= sa.bindparam("from_id")).order_by(Pupil.id)


def session() -> Session:
    engine = sa.create_engine("sqlite://")
    _Base.metadata.create_all(engine)
    return Session(engine)


def test_read_columns_answers_the_rows_session_execute_answers():
    with session() as s:
        s.add_all([Pupil(id=1, name="Ann"), Pupil(id=2, name="Bo"), Pupil(id=3, name="Cy")])
        s.flush()
        core = read_columns(s, NAMES, {"from_id": 2}).all()
        orm = s.execute(NAMES, {"from_id": 2}).all()
        assert core == orm == [(2, "Bo"), (3, "Cy")]
        assert [r._mapping["name"] for r in core] == ["Bo", "Cy"]


def test_read_columns_flushes_what_is_pending_first_as_the_autoflush_does():
    with session() as s:
        s.add(Pupil(id=1, name="Ann"))
        assert read_columns(s, NAMES, {"from_id": 1}).all() == [(1, "Ann")]
        assert not s.new  # flushed, in the session's transaction
        s.rollback()
        assert read_columns(s, NAMES, {"from_id": 1}).all() == []


def test_read_columns_does_not_flush_where_the_session_would_not():
    with session() as s:
        with s.no_autoflush:
            s.add(Pupil(id=1, name="Ann"))
            assert read_columns(s, NAMES, {"from_id": 1}).all() == s.execute(NAMES, {"from_id": 1}).all() == []
            assert s.new
