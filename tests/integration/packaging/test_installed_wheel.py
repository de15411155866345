"""The control plane as a publisher installs it: the built wheel in a clean virtualenv, run outside the checkout.

The wheel carries its catalog and ARM templates as package data; from that install the catalog loads, every step
template reads and the managed application's main template composes, the schema migrates, and api, worker and
scheduler take a purchase to a ready cluster against the emulators (which come from the development environment).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import warnings
import zipfile
from collections.abc import Iterator
from importlib.metadata import distributions
from pathlib import Path

import pytest
from sqlmodel import select

from core.clusters.models import Cluster, ClusterStatus
from core.db import Database
from core.settings import Settings
from emulators.suite import EmulatorSuite
from harness.checkout import REPOSITORY_ROOT, shipped_packages
from harness.processes import ProcessGroup, free_port, wait_until_listening
from tests.integration.lifecycle.conftest import delete_test_rows
from tests.integration.lifecycle.marketplace_driver import Browser, Emulators
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(600)

INSTALL_TIMEOUT_SECONDS = 420


RUNTIME_PACKAGES = shipped_packages()


def package_sources() -> list[str]:
    """uv's index options for the package sources the development environment's pip is configured with.

    So the clean install reads the same local index (and wheel folder) the dev venv was installed from.
    """
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=60, check=True
    )
    options: dict[str, str] = {}  # value -> option (pip lists a setting once per place it is set)
    for line in listed.stdout.splitlines():
        key, _, quoted = line.partition("=")
        option = {"index-url": "--index", "extra-index-url": "--index", "find-links": "--find-links"}.get(
            key.rsplit(".", 1)[-1]
        )
        if option:
            options.update(dict.fromkeys(quoted.strip().strip("'\"").split(), option))
    return [part for value, option in options.items() for part in (option, value)]


def dev_versions_as_constraints(folder: Path) -> Path:
    """The dev venv's versions of every distribution: the install resolves to what the suite tests and uv has."""
    pins = sorted({f"{dist.metadata['Name']}=={dist.version}" for dist in distributions() if dist.metadata["Name"]})
    constraints = folder / "constraints.txt"
    constraints.write_text("\n".join(pin for pin in pins if not pin.startswith("vast-azure-controlplane==")))
    return constraints


def uv_offline_then_online(command: list[str]) -> None:
    """Offline first (local indexes and uv's cache: seconds); a machine whose cache lacks a release goes online."""
    offline = subprocess.run([*command, "--offline"], capture_output=True, text=True, timeout=INSTALL_TIMEOUT_SECONDS)
    if offline.returncode != 0:
        warnings.warn(f"offline install failed, installing online: {offline.stderr[-500:]}", stacklevel=2)
        subprocess.run(command, check=True, timeout=INSTALL_TIMEOUT_SECONDS)


@pytest.fixture(scope="module")
def installed_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The interpreter of a fresh virtualenv holding only the wheel and its runtime dependencies (no dev extras)."""
    root = tmp_path_factory.mktemp("installed")
    uv = str(Path(sys.executable).with_name("uv"))
    sources = [*package_sources(), "--index-strategy", "unsafe-best-match"]
    dist = root / "dist"
    leaves_build_folder = not (REPOSITORY_ROOT / "build").exists()
    uv_offline_then_online([uv, "build", "--quiet", "--wheel", "--out-dir", str(dist), *sources, str(REPOSITORY_ROOT)])
    if leaves_build_folder:  # setuptools builds in the source tree; leave the checkout as it was
        shutil.rmtree(REPOSITORY_ROOT / "build", ignore_errors=True)
    (wheel,) = dist.glob("*.whl")
    shipped = {name.split("/", 1)[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert {name for name in shipped if not name.endswith(".dist-info")} == RUNTIME_PACKAGES
    environment = root / "venv"
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(environment)], check=True, timeout=120)
    python = environment / "bin" / "python"
    constraints = dev_versions_as_constraints(root)
    uv_offline_then_online(
        [
            uv,
            "pip",
            "install",
            "--quiet",
            "--python",
            str(python),
            *sources,
            "--constraint",
            str(constraints),
            str(wheel),
        ]
    )
    return python


def outside_checkout(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A working folder away from the checkout and an environment that does not point imports back at it."""
    folder = tmp_path_factory.mktemp("elsewhere")
    environment = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    return folder, environment


def test_the_installed_package_finds_its_catalog_and_templates(
    installed_python: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder, environment = outside_checkout(tmp_path_factory)
    check = textwrap.dedent(
        """
        import pathlib, sys
        import core
        from core.arm_templates.composer import compose_main_template
        from core.arm_templates.steps import FACADE_CLUSTER_STEPS, read_step_template
        from core.catalog.loader import load_catalog
        from core.settings import Settings

        settings = Settings(_env_file=None, publisher_tenant_id="t", publisher_client_id="c",
                            publisher_client_secret="s")
        installed = pathlib.Path(core.__file__).resolve().parent.parent
        assert installed.name == "site-packages", installed
        assert settings.catalog_path.is_relative_to(installed), settings.catalog_path
        assert settings.arm_templates_path.is_relative_to(installed), settings.arm_templates_path
        offers = load_catalog(settings.catalog_path)
        steps = [read_step_template(settings.arm_templates_path, step) for step in FACADE_CLUSTER_STEPS]
        main = compose_main_template(settings.arm_templates_path.parent)
        print(len(offers.offers), len(steps), len(main["resources"]))
        """
    )
    result = subprocess.run(
        [str(installed_python), "-c", check],
        cwd=folder,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    offers, steps, nested = (int(value) for value in result.stdout.split())
    assert offers >= 1
    assert steps == nested == 5


def test_the_installed_control_plane_migrates_and_takes_a_purchase_to_ready(
    installed_python: Path,
    tmp_path_factory: pytest.TempPathFactory,
    app_settings: Settings,
    emulator_suite: EmulatorSuite,
    database: Database,
) -> None:
    folder, environment = outside_checkout(tmp_path_factory)
    migrated = subprocess.run(
        [str(installed_python), "-m", "cli.main", "migrate"],
        cwd=folder,
        env={**environment, **app_settings.as_environment()},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    settings = app_settings.model_copy(update={"api_port": port, "public_base_url": base_url})
    group = ProcessGroup(
        tmp_path_factory.mktemp("installed-logs"),
        {**environment, **settings.as_environment()},
        python=str(installed_python),
        cwd=folder,
    )
    for name, *arguments in (("api", "api"), ("worker", "worker", "--concurrency=2"), ("beat", "beat")):
        group.add(name, *arguments)
    emulators = Emulators(emulator_suite)
    browser = Browser(emulators)
    group.start_all()
    try:
        wait_until_listening(base_url, timeout_seconds=90, group=group)
        emulators.set_webhook(f"{base_url}/marketplace/webhook")
        emulators.marketplace_control("PUT", "/landing-page", json={"url": f"{base_url}/marketplace/landing"})
        purchase = emulators.purchase(plan_id="standard", quantity=1)
        confirmed = browser.confirm(browser.open_landing(purchase["landing_page_url"]))
        assert confirmed.status_code == 200, confirmed.text[:500]

        def ready_cluster() -> Cluster | None:
            with database.session() as session:
                statement = select(Cluster).where(Cluster.subscription_id == purchase["subscription_id"])
                cluster = session.exec(statement).first()
                return cluster if cluster is not None and cluster.status == ClusterStatus.READY else None

        cluster = wait_for(ready_cluster, timeout_seconds=240, what="the installed release's cluster to be ready")
        assert cluster.pls_alias
        wait_for(
            lambda: (
                emulators.marketplace_subscription(purchase["subscription_id"])["saasSubscriptionStatus"]
                == "Subscribed"
            ),
            timeout_seconds=60,
            what="Marketplace to hold the subscription activated",
        )
    finally:
        emulators.set_webhook(None)
        browser.close()
        emulators.close()
        group.stop_all()
        delete_test_rows(database)


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.dispose()
