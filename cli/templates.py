"""`controlplane templates`: check the ARM templates offline, regenerate mainTemplate.json, build the package."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from core.arm_templates.checker import check_deployment_templates, check_repository_templates
from core.arm_templates.composer import write_main_template
from core.arm_templates.findings import format_findings
from core.arm_templates.package import PackageError, write_package
from core.settings import DEFAULT_ARM_TEMPLATES_PATH

templates_app = typer.Typer(help="ARM templates and the managed application package.", no_args_is_help=True)
RootOption = Annotated[
    Path,
    typer.Option(
        help="Folder holding arm_templates/ (and, in a checkout, deploy/); defaults to the installed package's."
    ),
]
# The folder the shipped arm_templates package lies in: site-packages when installed, the checkout when editable.
TEMPLATES_ROOT = DEFAULT_ARM_TEMPLATES_PATH.parent


@templates_app.command("check")
def check(root: RootOption = TEMPLATES_ROOT) -> None:
    """Apply our offline ARM template rules to arm_templates/ and deploy/ (when present); exits 1 on any finding."""
    findings = check_repository_templates(root) + check_deployment_templates(root)
    if findings:
        typer.echo(format_findings(findings))
        raise typer.Exit(code=1)
    typer.echo("templates: no findings")


@templates_app.command("build")
def build(root: RootOption = TEMPLATES_ROOT) -> None:
    """Regenerate arm_templates/managed-app/mainTemplate.json from the step templates."""
    typer.echo(f"wrote {write_main_template(root)}")


@templates_app.command("package")
def package(
    destination: Annotated[Path, typer.Argument(help="Zip file to write.")] = Path("dist/managed-app.zip"),
    root: RootOption = TEMPLATES_ROOT,
) -> None:
    """Validate, then build the zip Partner Center takes (deterministic bytes)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        path = write_package(root, destination)
    except PackageError as error:
        typer.secho(str(error), fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1) from None
    typer.echo(f"wrote {path} ({path.stat().st_size} bytes)")
