"""Team pages and their rules: create, rename, roles, removal, leaving, usage; owner, admin, member, outsider."""

from __future__ import annotations

import pytest

from accounts.models import Membership
from accounts.services import membership_add, membership_remove, membership_role_set, team_leave, team_rename
from accounts.tests.factories import user_make
from common.errors import ApplicationError
from inference.services import usage_record_create
from knowledge.tests.factories import collection_make, team_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    owner, admin, member, outsider = (user_make(email=f"{who}@example.com") for who in
                                      ("owner", "admin", "member", "outsider"))
    team = team_make(owner=owner, name="Core")
    membership_add(team=team, user=admin, role="admin")
    membership_add(team=team, user=member)
    return {"owner": owner, "admin": admin, "member": member, "outsider": outsider, "team": team}


def code_of(call, **kwargs) -> tuple[str, int]:
    with pytest.raises(ApplicationError) as caught:
        call(**kwargs)
    return caught.value.code, caught.value.status


def role(team, user) -> str | None:
    return Membership.objects.filter(team=team, user=user).values_list("role", flat=True).first()


def test_create_a_team_from_the_page(client, world):
    client.force_login(world["member"])

    response = client.post("/app/teams/", {"name": "  Night shift "})

    membership = Membership.objects.get(user=world["member"], team__name="Night shift")
    assert membership.role == "owner" and response["Location"] == f"/app/teams/{membership.team_id}/"


def test_owners_and_admins_rename_members_do_not(world):
    team = world["team"]
    team_rename(team=team, by=world["admin"], name="Core  team")
    assert team.name == "Core team"
    assert code_of(team_rename, team=team, by=world["member"], name="Mine") == ("permission_denied", 403)
    assert code_of(team_rename, team=team, by=world["owner"], name="   ") == ("name_required", 400)


def test_roles_change_by_the_rules(world):
    team, owner, admin, member = world["team"], world["owner"], world["admin"], world["member"]

    membership_role_set(team=team, by=admin, user_id=member.pk, role="admin")
    assert role(team, member) == "admin"
    assert code_of(membership_role_set, team=team, by=admin, user_id=member.pk, role="owner")[0] == \
        "permission_denied"
    assert code_of(membership_role_set, team=team, by=admin, user_id=owner.pk, role="member")[0] == \
        "permission_denied"
    membership_role_set(team=team, by=admin, user_id=member.pk, role="member")
    assert code_of(membership_role_set, team=team, by=member, user_id=admin.pk, role="member")[0] == \
        "permission_denied"
    assert code_of(membership_role_set, team=team, by=owner, user_id=owner.pk, role="admin") == ("last_owner", 409)
    membership_role_set(team=team, by=owner, user_id=admin.pk, role="owner")
    membership_role_set(team=team, by=owner, user_id=owner.pk, role="admin")  # another owner exists now
    assert role(team, owner) == "admin"
    assert code_of(membership_role_set, team=team, by=admin, user_id=member.pk, role="boss")[0] == "invalid_role"


def test_a_member_removing_the_owner_is_refused(world):
    team = world["team"]

    code, status = code_of(membership_remove, team=team, by=world["member"], user_id=world["owner"].pk)

    assert (code, status) == ("permission_denied", 403)
    assert role(team, world["owner"]) == "owner"


def test_an_admin_cannot_remove_an_owner_but_removes_members(world):
    team = world["team"]
    assert code_of(membership_remove, team=team, by=world["admin"], user_id=world["owner"].pk)[0] == \
        "permission_denied"

    membership_remove(team=team, by=world["admin"], user_id=world["member"].pk)

    assert role(team, world["member"]) is None


def test_the_last_owner_can_neither_leave_nor_be_removed(world, client):
    team, owner = world["team"], world["owner"]
    assert code_of(team_leave, team=team, user=owner) == ("last_owner", 409)
    assert code_of(membership_remove, team=team, by=owner, user_id=owner.pk) == ("last_owner", 409)
    client.force_login(owner)

    response = client.post(f"/app/teams/{team.pk}/leave/", follow=True)

    assert "last owner" in response.content.decode() and role(team, owner) == "owner"


def test_members_leave(world):
    team_leave(team=world["team"], user=world["member"])

    assert role(world["team"], world["member"]) is None


def test_role_and_removal_through_the_page(client, world):
    team = world["team"]
    client.force_login(world["owner"])

    client.post(f"/app/teams/{team.pk}/members/{world['member'].pk}/role/", {"role": "admin"})
    client.post(f"/app/teams/{team.pk}/members/{world['admin'].pk}/remove/")

    assert role(team, world["member"]) == "admin" and role(team, world["admin"]) is None


def test_the_team_page_shows_members_with_roles(client, world):
    client.force_login(world["member"])

    body = client.get(f"/app/teams/{world['team'].pk}/").content.decode()

    for who in ("owner", "admin", "member"):
        assert f'data-member="{who}@example.com"' in body
    assert 'id="invite-form"' not in body  # members don't invite


def test_outsiders_get_404_everywhere(client, world):
    team = world["team"]
    client.force_login(world["outsider"])

    for method, path in (("get", f"/app/teams/{team.pk}/"), ("post", f"/app/teams/{team.pk}/"),
                         ("get", f"/app/teams/{team.pk}/usage/"), ("post", f"/app/teams/{team.pk}/leave/"),
                         ("post", f"/app/teams/{team.pk}/members/{world['member'].pk}/remove/"),
                         ("post", f"/app/teams/{team.pk}/members/{world['member'].pk}/role/")):
        assert getattr(client, method)(path).status_code == 404, path
    assert role(team, world["member"]) == "member"


def test_usage_sums_the_members_for_owners_and_admins_only(client, world):
    team = world["team"]
    for user, tokens in ((world["owner"], (10, 5)), (world["member"], (100, 50)), (world["outsider"], (999, 999))):
        usage_record_create(request_id=f"req-{user.pk}", user_id=user.pk, api_key_id=None,
                            spec_name="smollm2-135m-ct2", route_alias="chat-default", task="chat",
                            prompt_tokens=tokens[0], completion_tokens=tokens[1])
    collection_make(user=world["owner"], team=team, name="Team handbook")

    client.force_login(world["member"])
    assert client.get(f"/app/teams/{team.pk}/usage/").status_code == 403
    client.force_login(world["admin"])
    response = client.get(f"/app/teams/{team.pk}/usage/")

    body = response.content.decode()
    assert response.status_code == 200
    assert response.context["totals"]["requests"] == 2
    assert response.context["totals"]["prompt_tokens"] == 110 and response.context["totals"]["completion_tokens"] == 55
    assert "Team handbook" in body and "outsider@example.com" not in body
