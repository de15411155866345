"""A settled cluster is one fact: the controller stops checking it and the portal's timeline stops polling it."""

from __future__ import annotations

import pytest

from core.clusters.models import Cluster, ClusterStatus
from portal.routers.customer import timeline_done

SETTLED = {ClusterStatus.READY, ClusterStatus.SUSPENDED, ClusterStatus.DELETED, ClusterStatus.FAILED}


@pytest.mark.parametrize("status", list(ClusterStatus))
def test_settled_statuses_are_the_ones_nothing_happens_in(status: ClusterStatus) -> None:
    assert status.settled == (status in SETTLED)


@pytest.mark.parametrize("status", list(ClusterStatus))
def test_the_timeline_polls_exactly_while_the_cluster_is_unsettled(status: ClusterStatus) -> None:
    assert timeline_done(Cluster(status=status.value)) == status.settled


def test_a_deleted_clusters_timeline_stops_polling() -> None:
    assert timeline_done(Cluster(status=ClusterStatus.DELETED))


def test_the_timeline_of_a_subscription_without_a_cluster_does_not_poll() -> None:
    assert timeline_done(None)
