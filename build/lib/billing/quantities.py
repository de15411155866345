"""Billable quantity math shared by the SQL aggregation and Python callers: inclusion, precision, rounding.

billable = round_to_precision(max(0, measured - included_per_hour_per_unit * plan_quantity)).
Floating-point values like 1.005 * 100 land a hair off the true value, so rounding up or down first
moves by a millionth of the billing step: far below anything billable, far above float noise.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from core.catalog.models import Rounding

# A fraction of one billing step (10^-precision).
STEP_TOLERANCE = 1e-6

_DECIMAL_ROUNDING = {Rounding.UP: ROUND_CEILING, Rounding.DOWN: ROUND_FLOOR, Rounding.NEAREST: ROUND_HALF_UP}


def included_quantity(included_per_hour_per_unit: float, plan_quantity: int) -> float:
    """What the plan includes in one hour: the per-unit allowance times the purchased quantity."""
    return included_per_hour_per_unit * plan_quantity


def billable_quantity(measured: float, included: float, precision: int, rounding: Rounding) -> float:
    """The quantity to bill for an hour: usage above the included quantity, rounded as the catalog says."""
    above = Decimal(repr(measured)) - Decimal(repr(included))
    if above <= 0:
        return 0.0
    step = Decimal(1).scaleb(-precision)
    tolerance = step * Decimal(repr(STEP_TOLERANCE))
    nudged = above
    if rounding is Rounding.UP:
        nudged = above - tolerance
    elif rounding is Rounding.DOWN:
        nudged = above + tolerance
    return float(max(nudged, Decimal(0)).quantize(step, rounding=_DECIMAL_ROUNDING[rounding]))


def billable_quantity_sql(
    measured: ColumnElement[float],
    included: ColumnElement[float],
    precision: ColumnElement[int],
    rounding: ColumnElement[str],
) -> ColumnElement[float]:
    """The same rule as `billable_quantity`, as one SQL expression (SQLite with math functions, PostgreSQL)."""
    scale = sa.func.power(10.0, precision)
    scaled = (measured - included) * scale
    rounded = sa.case(
        (rounding == Rounding.UP.value, sa.func.ceil(scaled - STEP_TOLERANCE)),
        (rounding == Rounding.DOWN.value, sa.func.floor(scaled + STEP_TOLERANCE)),
        else_=sa.func.floor(scaled + 0.5 + STEP_TOLERANCE),
    )
    return sa.case((measured - included <= 0, 0.0), else_=rounded / scale)
