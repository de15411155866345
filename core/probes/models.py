"""One row per probe check of one cluster: the samples availability and latency objectives are computed from."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.clock import utc_now
from core.columns import UTCDateTime


class BlobProbeSample(SQLModel, table=True):
    __tablename__ = "blob_probe_samples"
    __table_args__ = (sa.Index("ix_blob_probe_samples_cluster_time", "cluster_id", "probed_at"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(max_length=36, index=True, description="All checks of one probe run share it.")
    cluster_id: str = Field(foreign_key="clusters.id", max_length=36)
    tenant_id: str = Field(foreign_key="tenants.id", index=True, max_length=36)
    check_name: str = Field(max_length=64)
    authentication: str = Field(max_length=16, description="entra, shared_key or sas")
    succeeded: bool
    latency_ms: float
    error_code: str | None = Field(default=None, max_length=128)
    error_message: str | None = Field(default=None, max_length=2048)
    probed_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
