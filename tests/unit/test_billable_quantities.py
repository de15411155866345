"""Inclusion, precision and rounding of billable quantities, in Python and in the SQL the ledger runs."""

from __future__ import annotations

import random

import pytest
import sqlalchemy as sa

from billing.quantities import billable_quantity, billable_quantity_sql, included_quantity
from core.catalog.models import Rounding


@pytest.mark.parametrize(
    ("measured", "included", "precision", "rounding", "expected"),
    [
        (12.5, 5.0, 3, Rounding.UP, 7.5),
        (5.0, 5.0, 3, Rounding.UP, 0.0),
        (4.0, 5.0, 2, Rounding.UP, 0.0),
        (50.001, 50.0, 2, Rounding.UP, 0.01),
        (50.001, 50.0, 2, Rounding.DOWN, 0.0),
        (50.005, 50.0, 2, Rounding.NEAREST, 0.01),
        (50.004, 50.0, 2, Rounding.NEAREST, 0.0),
        # 1.005 * 100 is 100.49999999999999 in binary: still exactly 1.005 on the bill at 3 decimals.
        (2.005, 1.0, 3, Rounding.UP, 1.005),
        (2.345, 0.0, 2, Rounding.NEAREST, 2.35),
        (80.000004, 50.0, 2, Rounding.UP, 30.01),
        (1234567.891, 0.0, 0, Rounding.UP, 1234568.0),
    ],
)
def test_billable_quantity(
    measured: float, included: float, precision: int, rounding: Rounding, expected: float
) -> None:
    assert billable_quantity(measured, included, precision, rounding) == pytest.approx(expected, abs=1e-12)


def test_included_quantity_scales_with_the_plan_quantity() -> None:
    assert included_quantity(5.0, 3) == 15.0
    assert billable_quantity(40.0, included_quantity(5.0, 3), 3, Rounding.UP) == 25.0


def test_sql_expression_agrees_with_python_on_random_values() -> None:
    generator = random.Random(20261126)
    cases = [
        (
            round(generator.uniform(0, 500), generator.randint(0, 7)),
            round(generator.uniform(0, 300), generator.randint(0, 3)),
            generator.randint(0, 6),
            generator.choice(list(Rounding)),
        )
        for _ in range(400)
    ]
    engine = sa.create_engine("sqlite://")
    measured = sa.bindparam("measured", type_=sa.Float)
    included = sa.bindparam("included", type_=sa.Float)
    precision = sa.bindparam("precision", type_=sa.Integer)
    rounding = sa.bindparam("rounding", type_=sa.String)
    statement = sa.select(billable_quantity_sql(measured, included, precision, rounding))
    with engine.connect() as connection:
        for case_measured, case_included, case_precision, case_rounding in cases:
            from_sql = connection.execute(
                statement,
                {
                    "measured": case_measured,
                    "included": case_included,
                    "precision": case_precision,
                    "rounding": case_rounding.value,
                },
            ).scalar_one()
            expected = billable_quantity(case_measured, case_included, case_precision, case_rounding)
            assert from_sql == pytest.approx(expected, abs=10.0 ** -(case_precision + 3)), (
                case_measured,
                case_included,
                case_precision,
                case_rounding,
            )
    engine.dispose()
