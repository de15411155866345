"""`controlplane billing`: the billing team's commands over the same jobs the scheduler runs."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cli.process_settings import settings_or_exit
from core.errors import ControlPlaneError

billing_app = typer.Typer(help="Usage collection, the hourly ledger, metering submission and reconciliation.")


class OutputFormat(StrEnum):
    JSON = "json"
    CSV = "csv"


FromOption = Annotated[
    datetime | None, typer.Option("--from", help="First hour (UTC), e.g. 2026-11-26T00:00; default 24 hours ago.")
]
ToOption = Annotated[datetime | None, typer.Option("--to", help="End (UTC, exclusive); default now.")]
FormatOption = Annotated[OutputFormat, typer.Option("--format", help="Output format.")]


def _period(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    """The period in UTC; naive values on the command line are UTC."""
    end_utc = (end.replace(tzinfo=UTC) if end and end.tzinfo is None else end) or datetime.now(UTC)
    start_utc = (start.replace(tzinfo=UTC) if start and start.tzinfo is None else start) or end_utc - timedelta(
        hours=24
    )
    if end_utc <= start_utc:
        typer.secho("--to must be after --from", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2)
    return start_utc, end_utc


def _emit(rows: list[dict[str, Any]], output: OutputFormat) -> None:
    if output is OutputFormat.JSON:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    typer.echo(buffer.getvalue(), nl=False)


def _fail(error: ControlPlaneError) -> typer.Exit:
    typer.secho(f"{error.code}: {error.message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=1)


@billing_app.command("status")
def status(start: FromOption = None, end: ToOption = None, output: FormatOption = OutputFormat.JSON) -> None:
    """Ledger entries and billable quantity by status for hours in the period."""
    settings_or_exit()
    import core.models  # noqa: F401  # registers every table before the first flush
    from billing.reports import status_counts
    from core.db import get_database

    period_start, period_end = _period(start, end)
    with get_database().session() as session:
        counts = status_counts(session, period_start, period_end)
    rows = [{"status": name, **bucket} for name, bucket in sorted(counts["statuses"].items())]
    _emit(rows, output)
    if output is OutputFormat.JSON and counts["adjustments"]:
        typer.secho(f"{counts['adjustments']} adjustment(s) wait for an operator", fg=typer.colors.YELLOW, err=True)


@billing_app.command("collect")
def collect() -> None:
    """Read usage from every running cluster now."""
    settings = settings_or_exit()
    import core.models  # noqa: F401  # registers every table before the first flush
    from billing.jobs import run_collection
    from core.db import get_database

    summary = run_collection(settings, get_database())
    typer.echo(json.dumps(vars(summary)))


@billing_app.command("close-hour")
def close_hour(
    start: Annotated[
        datetime | None, typer.Option("--from", help="Oldest hour to close (UTC); default the close lookback.")
    ] = None,
    end: Annotated[datetime | None, typer.Option("--to", help="Close hours starting before this (UTC).")] = None,
) -> None:
    """Close every hour past its grace period into ledger entries (idempotent)."""
    settings = settings_or_exit()
    import core.models  # noqa: F401  # registers every table before the first flush
    from billing.jobs import run_close
    from core.db import get_database

    since = start.replace(tzinfo=UTC) if start and start.tzinfo is None else start
    until = end.replace(tzinfo=UTC) if end and end.tzinfo is None else end
    # "Before --to": the newest hour start that may close is just under it.
    result = run_close(
        settings, get_database(), since=since, until=until - timedelta(microseconds=1) if until else None
    )
    typer.echo(
        json.dumps(
            {
                "closed_through": result.cutoff.isoformat(),
                "entries_created": result.entries_created,
                "adjustments_recorded": result.adjustments_recorded,
            }
        )
    )


@billing_app.command("submit")
def submit() -> None:
    """Send every closed, in-window pending entry to Marketplace metering, then settle unknown ones."""
    settings = settings_or_exit()
    import core.models  # noqa: F401  # registers every table before the first flush
    from billing.jobs import run_settlement, run_submission
    from billing.reports import status_counts
    from core.db import get_database

    database = get_database()
    with database.session() as session:
        pending = status_counts(session)["statuses"].get("pending", {}).get("entries", 0)
    with Progress(
        TextColumn("submitting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=True
    ) as progress:
        task = progress.add_task("submit", total=pending or None)
        try:
            summary = run_submission(settings, database, on_round=lambda sent: progress.advance(task, sent))
            settled = run_settlement(settings, database)
        except ControlPlaneError as error:
            raise _fail(error) from None
    typer.echo(json.dumps({"batches": summary.batches, "entries": summary.counts, "settled": settled.counts}))


@billing_app.command("reconcile")
def reconcile(
    start: FromOption = None,
    end: ToOption = None,
    output: FormatOption = OutputFormat.JSON,
) -> None:
    """Compare the ledger with Marketplace's usage retrieval for whole UTC days and store the report."""
    settings = settings_or_exit()
    import core.models  # noqa: F401  # registers every table before the first flush
    from billing.jobs import run_reconciliation
    from billing.reconciliation import report_with_differences
    from billing.schemas import DifferenceView
    from core.db import get_database

    period_start, period_end = _period(start, end)
    database = get_database()
    try:
        report = run_reconciliation(settings, database, start=period_start, end=period_end, requested_by="cli")
    except ControlPlaneError as error:
        raise _fail(error) from None
    assert report.id is not None
    with database.session() as session:
        _, differences = report_with_differences(session, report.id)
    typer.secho(
        f"report {report.id}: {report.compared_groups} group(s) compared, {report.difference_count} difference(s)",
        err=True,
    )
    _emit([DifferenceView.of(difference).model_dump(mode="json") for difference in differences], output)


@billing_app.command("report")
def report(start: FromOption = None, end: ToOption = None, output: FormatOption = OutputFormat.CSV) -> None:
    """Ledger entries of hours in the period, with status, quantities and Marketplace event ids."""
    settings_or_exit()
    import core.models  # noqa: F401  # registers every table before the first flush
    from billing.reports import ledger_entries
    from core.db import get_database

    period_start, period_end = _period(start, end)
    with get_database().session() as session:
        rows = ledger_entries(session, period_start, period_end)
    _emit(rows, output)
