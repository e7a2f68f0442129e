from __future__ import annotations

import pytest

from accounts.models import Membership, Team
from accounts.services import membership_add, team_create, team_create_personal, user_create
from accounts.tests.factories import user_make
from common.errors import ApplicationError

pytestmark = pytest.mark.django_db


def test_user_create_makes_personal_team_owned_by_the_user():
    user = user_create(email="Ada@Example.com", password="x" * 12)

    team = Team.objects.get(created_by=user, is_personal=True)
    membership = Membership.objects.get(team=team)
    assert membership.user == user
    assert membership.role == Membership.Role.OWNER
    assert user.check_password("x" * 12)


def test_user_create_refuses_a_taken_email_whatever_its_case():
    user_create(email="grace@example.com")

    with pytest.raises(ApplicationError) as error:
        user_create(email="GRACE@example.com")

    assert error.value.status == 409
    assert "already exists" in error.value.message


def test_user_create_requires_an_email():
    with pytest.raises(ApplicationError, match="email address is required"):
        user_create(email="  ")


def test_team_create_personal_is_idempotent():
    user = user_make()

    again = team_create_personal(user=user)

    assert Team.objects.filter(created_by=user, is_personal=True).count() == 1
    assert again.memberships.count() == 1


def test_team_create_and_membership_roles():
    owner, member = user_make(), user_make()
    team = team_create(name="Support desk", owner=owner)

    membership_add(team=team, user=member, role=Membership.Role.ADMIN)
    membership_add(team=team, user=member, role=Membership.Role.MEMBER)

    roles = dict(team.memberships.values_list("user__email", "role"))
    assert roles == {owner.email: "owner", member.email: "member"}


def test_membership_add_refuses_an_unknown_role():
    owner = user_make()
    team = team_create(name="Ops", owner=owner)

    with pytest.raises(ApplicationError, match="Unknown role"):
        membership_add(team=team, user=user_make(), role="emperor")
