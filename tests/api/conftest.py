"""A small organisation for the API tests, and clients signed in as each role.

company
|-- East (managed by ``manager``): ``rep`` and ``peer``
|   `-- East sub-team: ``sub_rep``
`-- West: ``outsider``
plus ``executive`` and ``revops`` (no team).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.core.cache import cache

from apps.crm.models import Stage
from apps.org.models import Team, User
from tests.factories import (
    CompanyFactory,
    ExecutiveFactory,
    ManagerFactory,
    RepFactory,
    RevOpsAdminFactory,
    StageFactory,
    TeamFactory,
)


@dataclass
class Org:
    company: Team
    east: Team
    east_sub: Team
    west: Team
    executive: User
    revops: User
    manager: User
    rep: User
    peer: User
    sub_rep: User
    outsider: User
    open_stage: Stage
    won_stage: Stage
    lost_stage: Stage


@pytest.fixture(autouse=True)
def _fresh_cache():
    # Throttle counters live in the cache; each test starts with a clean slate.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def org(db) -> Org:
    company = CompanyFactory()
    manager = ManagerFactory(team=TeamFactory(name="East", parent=company))
    east = manager.team
    east_sub = TeamFactory(name="East sub-team", parent=east)
    west = TeamFactory(name="West", parent=company)
    return Org(
        company=company,
        east=east,
        east_sub=east_sub,
        west=west,
        executive=ExecutiveFactory(),
        revops=RevOpsAdminFactory(),
        manager=manager,
        rep=RepFactory(team=east),
        peer=RepFactory(team=east),
        sub_rep=RepFactory(team=east_sub),
        outsider=RepFactory(team=west),
        open_stage=StageFactory(name="Discovery", order=1, probability="20.00"),
        won_stage=StageFactory(name="Won", order=8, won=True),
        lost_stage=StageFactory(name="Lost", order=9, lost=True),
    )
