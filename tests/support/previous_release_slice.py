"""Run by the expand/contract test with the PREVIOUS release's code on the path (never imported by the suite).

`write <url>`: the previous release migrates an empty database with its own migrations and loads its catalog (what
its `controlplane migrate` does), then records a purchase (tenant, subscription, operation, cluster) and commits.
`read-write <url> <tables JSON> <ids JSON>`: on the schema the new release migrated, it passes its own start-up
schema gate, reads back what it wrote before the upgrade, reads every row of the tables the latest migration
touched through its own models (every column it knows must still be there with a type it can load), and records
another purchase.

It uses only what every release has had: core.db.make_engine, core.models, core.migrator, the catalog loader, the
test factories and SQLModel. Prints one JSON line.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, SQLModel, select

import core
import core.models
from core.db import make_engine
from tests.support import factories


def record_purchase(session: Session) -> dict[str, str]:
    tenant = factories.create_tenant(session)
    subscription = factories.create_subscription(session, tenant)
    operation = factories.create_operation(session, subscription)
    cluster = factories.create_cluster(session, tenant, subscription=subscription)
    session.commit()
    return {
        "tenant": str(tenant.id),
        "subscription": subscription.id,
        "operation": operation.id,
        "cluster": str(cluster.id),
    }


def models_of(tables: set[str]) -> list[type[SQLModel]]:
    found: list[type[SQLModel]] = []
    pending: list[type[SQLModel]] = list(SQLModel.__subclasses__())
    while pending:
        model = pending.pop()
        pending.extend(model.__subclasses__())
        table = getattr(model, "__table__", None)
        if table is not None and table.name in tables and model not in found:
            found.append(model)
    return found


def read_write(url: str, touched: list[str], earlier: dict[str, str]) -> dict[str, Any]:
    engine = make_engine(url)
    # The gate an old replica passes when it restarts during the upgrade (`api`, `worker`, `beat` and /readyz):
    # a schema a newer release migrated is ahead, not behind, and must not stop it.
    from core.migrator import require_schema_at_head

    require_schema_at_head(engine)
    known = [name for name in touched if name in core.models.metadata.tables]
    rows: dict[str, int] = {}
    with Session(engine) as session:
        from core.subscriptions.models import MarketplaceSubscription

        before = session.get(MarketplaceSubscription, earlier["subscription"])
        if before is None:
            raise SystemExit("the purchase recorded before the upgrade is gone")
        for name in known:  # Core: every column this release declares
            table = core.models.metadata.tables[name]
            rows[name] = len(session.connection().execute(sa.select(*table.columns)).all())
        for model in models_of(set(known)):  # ORM: every value loads into this release's types
            session.exec(select(model)).all()
        after = record_purchase(session)
    engine.dispose()
    return {
        "code": core.__file__,
        "read": rows,
        "models": [model.__name__ for model in models_of(set(known))],
        "wrote": after,
    }


def main(arguments: list[str]) -> None:
    command, url = arguments[0], arguments[1]
    if command == "write":
        from core import migrator
        from core.catalog.loader import load_catalog, sync_catalog
        from core.settings import DEFAULT_CATALOG_PATH

        migrator.upgrade(url)
        engine = make_engine(url)
        with Session(engine) as session:
            sync_catalog(session, load_catalog(DEFAULT_CATALOG_PATH))
            session.commit()
            result: dict[str, Any] = {"code": core.__file__, "wrote": record_purchase(session)}
        engine.dispose()
    else:
        result = read_write(url, json.loads(arguments[2]), json.loads(arguments[3]))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
