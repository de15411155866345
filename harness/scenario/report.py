"""The full scenario's summary: a table on the terminal and the same facts as JSON in the run's data dir."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from harness.scenario.invariants import InvariantResult

SUMMARY_FILE = "summary.json"


def build_summary(
    *,
    options: dict[str, Any],
    counts: dict[str, dict[str, int]],
    workload: dict[str, Any],
    faults: dict[str, int],
    invariants: list[InvariantResult],
    error: str | None,
) -> dict[str, Any]:
    """Everything the table shows, as one JSON-serialisable document."""
    return {
        "options": options,
        "passed": error is None and all(item.passed for item in invariants),
        "error": error,
        **counts,
        "workload": workload,
        "reconciliation": {
            "marketplace": workload.get("marketplace_reconciliation", {}),
            "usage": workload.get("usage_reconciliation", {}),
        },
        "faults_injected": dict(sorted(faults.items())),
        "invariants": [item.as_json() for item in invariants],
    }


def write_summary(data_dir: Path, summary: dict[str, Any]) -> Path:
    """Write summary.json; returns its path."""
    path = data_dir / SUMMARY_FILE
    path.write_text(json.dumps(summary, indent=2, sort_keys=True, default=str))
    return path


def print_summary(summary: dict[str, Any]) -> None:
    """The summary table."""
    typer.echo("")
    typer.secho("Full scenario summary", bold=True)
    options = summary["options"]
    typer.echo(
        f"  run            seed {options['seed']}, {options['subscriptions']} subscriptions, "
        f"backend {options['backend']}, chaos {'on' if options['chaos'] else 'off'}"
    )
    _section("subscriptions by final state", summary.get("subscriptions", {}))
    _section("clusters by status", summary.get("clusters", {}))
    _section("operations by action, state and result", summary.get("operations", {}))
    _section("ledger entries by status", summary.get("ledger", {}))
    reconciliation = summary["reconciliation"]
    marketplace = reconciliation.get("marketplace") or {}
    usage = reconciliation.get("usage") or {}
    typer.echo("  reconciliation differences")
    typer.echo(f"    {'Marketplace (changes made)':<40} {marketplace.get('changes', '-')!s:>6}")
    typer.echo(f"    {'usage (ledger vs Marketplace)':<40} {usage.get('differences', '-')!s:>6}")
    _section("faults injected by kind", summary.get("faults_injected", {}), empty="none")
    timings = summary["workload"].get("phase_seconds", {})
    _section("phase durations (s)", timings)
    typer.echo("  invariants")
    for item in summary["invariants"]:
        mark = (
            typer.style("PASS", fg=typer.colors.GREEN) if item["passed"] else typer.style("FAIL", fg=typer.colors.RED)
        )
        typer.echo(f"    {mark}  {item['name']:<52} checked {item['checked']}")
        for problem in item["problems"]:
            typer.echo(f"          - {problem}")
        hidden = item["problem_count"] - len(item["problems"])
        if hidden > 0:
            typer.echo(f"          ... and {hidden} more")
    if summary["error"]:
        typer.secho(f"  the scenario stopped early: {summary['error']}", fg=typer.colors.RED)
    verdict = "PASSED" if summary["passed"] else "FAILED"
    typer.secho(
        f"  result         {verdict}", fg=typer.colors.GREEN if summary["passed"] else typer.colors.RED, bold=True
    )


def _section(title: str, counts: dict[str, Any], empty: str = "(none)") -> None:
    typer.echo(f"  {title}")
    if not counts:
        typer.echo(f"    {empty}")
    for key, value in counts.items():
        typer.echo(f"    {key:<40} {value!s:>6}")
