"""Status columns hold their enum's plain string in the database and come back as the enum."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import StatementError

from core.clusters.models import ClusterStatus
from core.columns import StrEnumColumn

metadata = sa.MetaData()
things = sa.Table(
    "things",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("status", StrEnumColumn(ClusterStatus, 16)),
)


@pytest.fixture
def engine() -> sa.Engine:
    engine = sa.create_engine("sqlite://")
    metadata.create_all(engine)
    return engine


def test_the_value_is_stored_as_plain_text_and_read_back_as_the_enum(engine: sa.Engine) -> None:
    with engine.begin() as connection:
        connection.execute(things.insert().values(id=1, status=ClusterStatus.READY))
        connection.execute(things.insert().values(id=2, status="failed"))  # a plain string of a member is accepted
        stored = connection.execute(sa.text("SELECT status FROM things ORDER BY id")).scalars().all()
        read = connection.execute(sa.select(things.c.status).order_by(things.c.id)).scalars().all()
        matching = connection.execute(sa.select(things.c.id).where(things.c.status == ClusterStatus.READY)).scalars()
        assert list(matching) == [1]
    assert stored == ["ready", "failed"]
    assert read == [ClusterStatus.READY, ClusterStatus.FAILED]
    assert all(type(value) is ClusterStatus for value in read)


def test_a_value_the_enum_does_not_define_is_refused_on_write_and_on_read(engine: sa.Engine) -> None:
    with engine.begin() as connection, pytest.raises(StatementError, match="'sleeping' is not a valid ClusterStatus"):
        connection.execute(things.insert().values(id=1, status="sleeping"))
    with engine.begin() as connection:
        connection.execute(sa.text("INSERT INTO things (id, status) VALUES (2, 'sleeping')"))  # a newer release's
        with pytest.raises(ValueError, match="'sleeping' is not a valid ClusterStatus"):
            connection.execute(sa.select(things.c.status)).scalars().all()


def test_a_filter_on_a_value_the_enum_does_not_define_matches_nothing(engine: sa.Engine) -> None:
    with engine.begin() as connection:
        connection.execute(things.insert().values(id=1, status=ClusterStatus.READY))
        for unknown in ("sleeping", "<b>x</b>", "READY"):
            assert connection.execute(sa.select(things.c.id).where(things.c.status == unknown)).all() == []
            assert connection.execute(sa.select(things.c.id).where(things.c.status.in_([unknown]))).all() == []
        assert connection.execute(sa.select(things.c.id).where(things.c.status.in_(["ready", "failed"]))).all() == [
            (1,)
        ]
