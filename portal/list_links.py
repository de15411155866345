"""Links of a sortable, paged, searchable list page: each keeps the page's other query values."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from core.paging import SortDirection


@dataclass(frozen=True)
class ListLinks:
    """The list's path and current query values (sort, direction, page and its filters)."""

    path: str
    values: dict[str, str]
    sort: str
    direction: SortDirection

    def to(self, **changes: str | int) -> str:
        """This list with some query values changed (empty values are left out of the address)."""
        changed = {name: str(value) for name, value in changes.items()}
        merged = {**self.values, "sort": self.sort, "dir": self.direction.value, **changed}
        query = urlencode({name: value for name, value in merged.items() if value})
        return f"{self.path}?{query}" if query else self.path

    def page(self, number: int) -> str:
        return self.to(page=number)

    def sorted_by(self, column: str) -> str:
        """Sort by `column`: the other way round when it already sorts the list; back to the first page."""
        direction = self.direction.opposite if column == self.sort else SortDirection.ASCENDING
        return self.to(sort=column, dir=direction.value, page=1)

    def aria_sort(self, column: str) -> str:
        """The column header's aria-sort value."""
        if column != self.sort:
            return "none"
        return "ascending" if self.direction is SortDirection.ASCENDING else "descending"
