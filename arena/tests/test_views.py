"""The arena's pages and endpoints: login, owners only, and the vote's answers for bad input."""

from __future__ import annotations

import pytest

from accounts.tests.factories import user_make
from arena.models import Battle
from arena.services import battle_start
from arena.tests.factories import QWEN, SMOL, battle_answered, battle_make

pytestmark = pytest.mark.django_db

JSON = {"HTTP_ACCEPT": "application/json"}


def _urls(battle_id: int) -> list[tuple[str, str]]:
    return [("get", f"/app/arena/battles/{battle_id}/"), ("post", f"/app/arena/battles/{battle_id}/vote/"),
            ("post", f"/app/arena/battles/{battle_id}/stream/")]


def test_anonymous_visitors_are_sent_to_log_in(client):
    battle = battle_make(user=user_make())
    for method, url in [("get", "/app/arena/"), ("get", "/app/arena/leaderboard/"), *_urls(battle.pk)]:
        response = getattr(client, method)(url, {"choice": "a"} if "vote" in url else None)
        assert response.status_code == 302 and response.url.startswith("/accounts/login/"), url


def test_the_site_menu_leads_to_the_arena_and_marks_it_current_there(client):
    client.force_login(user_make())
    home = client.get("/app/").content.decode()
    assert '<a class="nav-link" href="/app/arena/">' in home
    arena = client.get("/app/arena/leaderboard/").content.decode()
    assert '<a class="nav-link" href="/app/arena/" aria-current="page">' in arena


def test_someone_elses_battle_is_404_everywhere(client):
    battle = battle_answered(user=user_make())
    client.force_login(user_make())
    for method, url in _urls(battle.pk):
        response = getattr(client, method)(url, {"choice": "a"} if "vote" in url else None)
        assert response.status_code == 404, url
    assert Battle.objects.get(pk=battle.pk).vote == "" and Battle.objects.get(pk=battle.pk).status == "answered"


def test_the_page_starts_a_battle_between_the_models_the_user_may_use(client, bundled_models):
    user = user_make()
    client.force_login(user)

    page = client.get("/app/arena/?prompt=Name+a+colour.")
    response = client.post("/app/arena/", {"prompt": "Name a colour.", "max_tokens": "64"})

    assert b"Name a colour.</textarea>" in page.content  # chat's Compare link fills the prompt in
    battle = Battle.objects.get(user=user)
    assert response.status_code == 302 and response.url == f"/app/arena/battles/{battle.pk}/"
    assert {battle.model_a, battle.model_b} == {QWEN, SMOL} and battle.max_tokens == 64
    shown = client.get(response.url).content.decode()
    assert "Model A" in shown and "Model B" in shown
    assert QWEN not in shown and SMOL not in shown  # blind until the vote


def test_a_bad_prompt_is_a_400_that_says_why(client, bundled_models):
    client.force_login(user_make())
    response = client.post("/app/arena/", {"prompt": "  ", "max_tokens": "64"})
    assert response.status_code == 400 and "This field is required" in response.content.decode()
    assert not Battle.objects.exists()


def test_voting_reveals_the_names_and_a_second_vote_is_409(client):
    user = user_make()
    battle = battle_answered(user=user)
    client.force_login(user)

    first = client.post(f"/app/arena/battles/{battle.pk}/vote/", {"choice": "b"})
    page = client.get(f"/app/arena/battles/{battle.pk}/").content.decode()
    second = client.post(f"/app/arena/battles/{battle.pk}/vote/", {"choice": "a"})
    as_json = client.post(f"/app/arena/battles/{battle.pk}/vote/", {"choice": "a"}, **JSON)

    assert first.status_code == 302 and Battle.objects.get(pk=battle.pk).vote == "b"
    assert f"Model A was <strong>{battle.model_a}</strong>; Model B was <strong>{battle.model_b}</strong>" in page
    assert second.status_code == 409 and "You already voted on this comparison" in second.content.decode()
    assert as_json.status_code == 409 and as_json.json()["error"]["code"] == "already_voted"
    assert Battle.objects.get(pk=battle.pk).vote == "b"


def test_a_wrong_choice_is_a_400_that_lists_the_allowed_values(client):
    user = user_make()
    battle = battle_answered(user=user)
    client.force_login(user)

    page = client.post(f"/app/arena/battles/{battle.pk}/vote/", {"choice": "left"})
    body = client.post(f"/app/arena/battles/{battle.pk}/vote/", {"choice": "A"}, **JSON)
    missing = client.post(f"/app/arena/battles/{battle.pk}/vote/", {}, **JSON)

    assert page.status_code == 400 and "must be one of a, b, tie, both_bad" in page.content.decode()
    assert body.status_code == 400 and body.json()["error"]["allowed"] == ["a", "b", "tie", "both_bad"]
    assert "got 'A'" in body.json()["error"]["message"]
    assert missing.status_code == 400
    assert Battle.objects.get(pk=battle.pk).vote == ""


def test_json_votes_answer_with_the_names(client):
    user = user_make()
    battle = battle_answered(user=user)
    client.force_login(user)

    response = client.post(f"/app/arena/battles/{battle.pk}/vote/", {"choice": "both_bad"},
                           content_type="application/json", **JSON)

    assert response.status_code == 200
    assert response.json() == {"id": battle.pk, "vote": "both_bad", "model_a": battle.model_a,
                               "model_b": battle.model_b}


def test_a_battle_streams_once(client):
    user = user_make()
    battle = battle_make(user=user)
    battle_start(battle=battle)
    client.force_login(user)

    response = client.post(f"/app/arena/battles/{battle.pk}/stream/")

    assert response.status_code == 409 and response.json()["error"]["code"] == "already_started"


def test_the_leaderboard_counts_votes(client):
    user = user_make()
    battle_answered(user=user, vote="a")
    battle_answered(user=user, model_a=SMOL, model_b=QWEN, vote="both_bad")
    client.force_login(user)

    page = client.get("/app/arena/leaderboard/").content.decode()

    assert page.index(f'data-model="{QWEN}"') < page.index(f'data-model="{SMOL}"')  # the winner ranks first
    assert "Both bad" in page and "Median tokens/s" in page and "Cost per 1k requests" in page


def test_a_refused_side_fails_the_battle_without_naming_the_model(client, bundled_models):
    """Model B was disabled after the battle was made: the stream is refused before it starts, A's request is
    taken back, and the message says "Model B", not the model's name."""
    from inference.services import modelspecs_set_enabled

    user = user_make()
    battle = battle_make(user=user, model_a=QWEN, model_b=SMOL)
    modelspecs_set_enabled(names=[SMOL], enabled=False)
    client.force_login(user)

    response = client.post(f"/app/arena/battles/{battle.pk}/stream/")

    error = response.json()["error"]
    assert response.status_code == 404 and "Model B" in error["message"] and SMOL not in error["message"]
    battle.refresh_from_db()
    assert battle.status == "failed" and SMOL not in battle.error
    assert sorted(battle.answers.values_list("status", flat=True)) == ["failed", "failed"]
    page = client.get(f"/app/arena/battles/{battle.pk}/").content.decode()
    assert "Compare again" in page and SMOL not in page and QWEN not in page
