"""The tooling's command line: start the emulators, run the sandbox demo or the full scenario.

The operator's `controlplane` command runs a deployed control plane; these commands only make sense in a checkout
with the development extras installed (`./dev sandbox` runs the sandbox through here).
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="Development tooling: the local emulators, the sandbox demo and the full scenario.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.command()
def emulators(
    state_dir: Annotated[Path, typer.Option(help="Where the CA and emulators.json are written.")] = Path(
        "var/emulators"
    ),
    seed: Annotated[int, typer.Option(help="Seed for generated ids and injected faults.")] = 0,
    webhook_url: Annotated[str | None, typer.Option(help="Publisher webhook URL Marketplace calls.")] = None,
    options_file: Annotated[
        Path | None,
        typer.Option(
            "--options",
            help="JSON object of emulator options, e.g. initial fault rules: "
            '{"marketplace_faults": [{"kind": "status", "status": 429, "count": 3}], "arm_deployment_seconds": 5}.',
        ),
    ] = None,
) -> None:
    """Start the Entra ID, Marketplace, ARM (with Key Vault) and other emulators on loopback ports."""
    import json

    from emulators.suite import EmulatorSuiteConfig, build_default_suite

    options = json.loads(options_file.read_text()) if options_file else {}
    if not isinstance(options, dict):
        typer.secho("--options must hold a JSON object", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2)
    deployment_seconds = float(options.pop("arm_deployment_seconds", 1.0))
    suite = build_default_suite(
        EmulatorSuiteConfig(
            state_dir=state_dir.resolve(),
            seed=seed,
            publisher_webhook_url=webhook_url,
            arm_deployment_seconds=deployment_seconds,
            options=options,
        )
    )
    state = suite.start()
    typer.echo(json.dumps(state, indent=2))
    typer.echo(f"state written to {state_dir / 'emulators.json'}; Ctrl-C stops")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        suite.stop()


@app.command()
def sandbox(
    serve: Annotated[bool, typer.Option(help="Keep everything running after the demo until Ctrl-C.")] = False,
    data_dir: Annotated[Path | None, typer.Option(help="Working folder; wiped at start.")] = None,
    scenario: Annotated[
        str, typer.Option(help="demo: the guided demo; full: the end-to-end run with invariants (exit 1 if one fails).")
    ] = "demo",
    seed: Annotated[int, typer.Option(help="full: seed of the workload and the chaos.")] = 20261128,
    subscriptions: Annotated[int, typer.Option(min=1, max=5000, help="full: purchases.")] = 50,
    events: Annotated[
        int | None, typer.Option(min=0, help="full: customer actions after provisioning (default 3 per purchase).")
    ] = None,
    hours: Annotated[float, typer.Option(min=1, max=20, help="full: simulated hours of usage metered.")] = 4.0,
    chaos: Annotated[bool, typer.Option(help="full: inject seeded faults while the workload runs.")] = True,
    chaos_intensity: Annotated[float, typer.Option(min=0.1, max=10, help="full: scales the faults injected.")] = 1.0,
    backend: Annotated[
        str, typer.Option(help="full: auto (PostgreSQL + a private Redis when there), embedded or scaled.")
    ] = "auto",
    postgres_url: Annotated[
        str, typer.Option(help="full: PostgreSQL server of the scaled backend (a schema is made per run).")
    ] = "postgresql+psycopg://postgres@127.0.0.1:5432/test",
) -> None:
    """Run the end-to-end demo, or with --scenario full the whole system under load (and chaos) with invariants."""
    if scenario == "full":
        from harness.scenario.full import ScenarioOptions, run_full_scenario

        if backend not in ("auto", "embedded", "scaled"):
            typer.secho("--backend must be auto, embedded or scaled", fg=typer.colors.RED, err=True)
            raise typer.Exit(code=2)
        options = ScenarioOptions(
            data_dir=(data_dir or Path("var/scenario")).resolve(),
            seed=seed,
            subscriptions=subscriptions,
            events=events,
            hours=hours,
            chaos=chaos,
            chaos_intensity=chaos_intensity,
            backend=backend,  # type: ignore[arg-type]  # checked above
            postgres_url=postgres_url,
        )
        raise typer.Exit(code=run_full_scenario(options))
    if scenario != "demo":
        typer.secho("--scenario must be demo or full", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2)
    from harness.sandbox import run_sandbox

    raise typer.Exit(code=run_sandbox((data_dir or Path("var/sandbox")).resolve(), serve=serve))
