"""Tenant lookups and creation."""

from __future__ import annotations

from sqlmodel import Session, select

from core.db import insert_unless_conflicting
from core.tenants.models import Tenant


def get_or_create_tenant(session: Session, entra_tenant_id: str, display_name: str = "") -> Tenant:
    """The tenant row for an Entra tenant id, created on first sight (flushed, not committed).

    Two first sign-ins of one tenant at once (two landing pages, two API processes) must both succeed:
    the unique key decides which insert wins, and the other reads the winner's row.
    """
    lookup = select(Tenant).where(Tenant.entra_tenant_id == entra_tenant_id)
    tenant = session.exec(lookup).first()
    if tenant is None:
        row = Tenant(entra_tenant_id=entra_tenant_id, display_name=display_name).model_dump()
        session.execute(insert_unless_conflicting(session, Tenant, ("entra_tenant_id",)), row)
        tenant = session.exec(lookup).one()
    return tenant
