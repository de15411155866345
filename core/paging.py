"""Bounded pages of long lists for people: a page number, a fixed size, a total that stops counting at a cap.

Operator lists hold tens of thousands of rows (subscriptions) to millions (audit events); a page is one
LIMIT/OFFSET query on an indexed order, and the total is counted only up to `COUNT_CAP` so counting a million
rows never decides how fast a page answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlmodel import Session

Row = TypeVar("Row")

PAGE_SIZE = 50
# Past this many pages nobody reads on; the search narrows instead (and OFFSET stays cheap).
MAX_PAGE = 400
# Totals above this are shown as "more than"; an exact count of a million rows costs more than the page.
COUNT_CAP = 10_000


class SortDirection(StrEnum):
    ASCENDING = "asc"
    DESCENDING = "desc"

    @property
    def opposite(self) -> SortDirection:
        return SortDirection.DESCENDING if self is SortDirection.ASCENDING else SortDirection.ASCENDING


@dataclass(frozen=True)
class PageRequest:
    """Which page of a list, validated: numbers outside the bounds are clamped, never refused."""

    number: int = 1
    size: int = PAGE_SIZE

    @classmethod
    def of(cls, number: int, size: int = PAGE_SIZE) -> PageRequest:
        return cls(min(max(number, 1), MAX_PAGE), min(max(size, 1), 200))

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size


@dataclass(frozen=True)
class Page(Generic[Row]):
    """One page of rows with the total (exact up to COUNT_CAP) and whether more pages follow."""

    rows: list[Row]
    request: PageRequest
    total: int
    total_is_capped: bool

    @property
    def first_index(self) -> int:
        return self.request.offset + 1 if self.rows else 0

    @property
    def last_index(self) -> int:
        return self.request.offset + len(self.rows)

    @property
    def has_previous(self) -> bool:
        return self.request.number > 1

    @property
    def has_next(self) -> bool:
        return self.last_index < self.total and self.request.number < MAX_PAGE

    @property
    def page_count(self) -> int:
        return min(max(1, -(-self.total // self.request.size)), MAX_PAGE)


def capped_count(session: Session, statement: sa.Select[Any]) -> tuple[int, bool]:
    """How many rows `statement` yields, counting at most COUNT_CAP + 1 (then True: the total is capped)."""
    bounded = statement.order_by(None).limit(COUNT_CAP + 1).subquery()
    count = int(session.execute(sa.select(sa.func.count()).select_from(bounded)).scalar_one())
    return min(count, COUNT_CAP), count > COUNT_CAP
