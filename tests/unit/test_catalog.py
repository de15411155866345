"""The catalog file loads, and a malformed one is refused with a message naming the bad field."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from core.catalog.loader import load_catalog
from core.errors import ConfigurationError
from core.settings import DEFAULT_CATALOG_PATH


def _write_catalog(tmp_path: Path, mutate: Any) -> Path:
    raw = tomllib.loads(DEFAULT_CATALOG_PATH.read_text(encoding="utf-8"))
    mutate(raw)
    path = tmp_path / "catalog.toml"
    path.write_text(_to_toml(raw), encoding="utf-8")
    return path


def _to_toml(raw: dict[str, Any]) -> str:
    # The catalog's shape is small: scalars, one inline table (included) and arrays of tables.
    lines = [f"catalog_version = {_value(raw['catalog_version'])}"]
    for offer in raw["offers"]:
        lines.append("[[offers]]")
        lines += [f"{key} = {_value(value)}" for key, value in offer.items() if not isinstance(value, list)]
        for collection in ("dimensions", "plans"):
            for item in offer.get(collection, []):
                lines.append(f"[[offers.{collection}]]")
                lines += [f"{key} = {_value(value)}" for key, value in item.items()]
    return "\n".join(lines) + "\n"


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{key} = {_value(item)}" for key, item in value.items()) + " }"
    return repr(value)


def test_the_repository_catalog_loads() -> None:
    catalog = load_catalog(DEFAULT_CATALOG_PATH)
    offer = catalog.offers[0]
    assert {plan.id for plan in offer.plans} >= {"standard", "performance"}
    assert any(plan.private for plan in offer.plans)
    assert {dimension.id for dimension in offer.dimensions} == {"capacity_tib", "data_transfer_gib", "api_requests_10k"}


def test_round_trip_of_the_test_writer_is_faithful(tmp_path: Path) -> None:
    path = _write_catalog(tmp_path, lambda raw: None)
    assert load_catalog(path) == load_catalog(DEFAULT_CATALOG_PATH)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda raw: raw["offers"][0]["plans"][1].update(vm_size="L16s"), "offers[0].plans[1].vm_size"),
        (lambda raw: raw["offers"][0]["plans"][0].pop("nodes_per_unit"), "offers[0].plans[0].nodes_per_unit"),
        (lambda raw: raw["offers"][0]["dimensions"][2].update(rounding="sideways"), "offers[0].dimensions[2].rounding"),
        (lambda raw: raw["offers"][0].update(activation="later"), "offers[0].activation"),
        (lambda raw: raw["offers"][0]["plans"][0].update(colour="blue"), "offers[0].plans[0].colour"),
        (
            lambda raw: raw["offers"][0]["plans"][0]["included"].update(bogus_dimension=1.0),
            "plans[0].included: unknown dimension(s) bogus_dimension",
        ),
        (lambda raw: raw["offers"][0]["plans"][0].update(min_quantity=5, max_quantity=2), "offers[0].plans[0]"),
        (lambda raw: raw.update(catalog_version="latest"), "catalog_version"),
    ],
)
def test_malformed_catalog_names_the_bad_field(tmp_path: Path, mutate: Any, expected: str) -> None:
    path = _write_catalog(tmp_path, mutate)
    with pytest.raises(ConfigurationError) as raised:
        load_catalog(path)
    assert expected in str(raised.value)
    assert str(path) in str(raised.value)


def test_catalog_that_is_not_toml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("offers = [", encoding="utf-8")
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        load_catalog(path)
