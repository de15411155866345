"""Tenant lookups and creation."""

from __future__ import annotations

from sqlmodel import Session, select

from core.tenants.models import Tenant


def get_or_create_tenant(session: Session, entra_tenant_id: str, display_name: str = "") -> Tenant:
    """The tenant row for an Entra tenant id, created on first sight (flushed, not committed)."""
    tenant = session.exec(select(Tenant).where(Tenant.entra_tenant_id == entra_tenant_id)).first()
    if tenant is None:
        tenant = Tenant(entra_tenant_id=entra_tenant_id, display_name=display_name)
        session.add(tenant)
        session.flush()
    return tenant
