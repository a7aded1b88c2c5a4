"""An admin manages tokens over HTTP: a new token's secret comes once (never cached), works at once, and stops
working when revoked; a name stays unique among live tokens."""

from __future__ import annotations

from keel.api.roles import ApiRole

ADMIN = ApiRole.ADMIN


def test_an_admin_creates_a_token_that_works_at_once_and_is_refused_once_revoked(api, store):
    got = api.post("/tokens", {"name": "carol", "role": "operator"}, as_=ADMIN)
    assert got.status_code == 201 and got.headers["cache-control"] == "no-store"
    secret, record = got.json()["token"], got.json()["record"]
    assert secret.startswith("keel_") and (record["name"], record["role"], record["created_by"]) == (
        "carol",
        "operator",
        "ada",
    )
    assert api.get("/trading-state", token=secret).status_code == 200
    listed = api.get("/tokens", as_=ADMIN)
    assert [t["name"] for t in listed.json()] == ["vera", "otto", "rita", "ada", "carol"]
    assert secret not in listed.text and "sha256" not in listed.text
    revoked = api.post(f"/tokens/{record['token_id']}/revoke", as_=ADMIN)
    assert revoked.json()["changed"] is True and revoked.json()["record"]["revoked_by"] == "ada"
    assert api.get("/trading-state", token=secret).status_code == 401
    assert api.post(f"/tokens/{record['token_id']}/revoke", as_=ADMIN).json()["changed"] is False


def test_a_taken_name_is_409_a_bad_name_400_a_bad_role_422_and_an_unknown_id_404(api, store):
    taken = api.post("/tokens", {"name": "otto", "role": "viewer"}, as_=ADMIN)
    assert taken.status_code == 409 and "already named 'otto'" in taken.json()["detail"]
    assert api.post("/tokens", {"name": "auto-policy", "role": "viewer"}, as_=ADMIN).status_code == 400
    assert api.post("/tokens", {"name": "9lives", "role": "viewer"}, as_=ADMIN).status_code == 400
    assert api.post("/tokens", {"name": "dan", "role": "boss"}, as_=ADMIN).status_code == 422
    assert api.post("/tokens/99/revoke", as_=ADMIN).status_code == 404
    assert len(store.api_tokens()) == 4
