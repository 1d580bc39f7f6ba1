"""Organiser pages: progress, adding readers, closing, results and exports; only for the admin."""

from __future__ import annotations

import csv
import io

from study.helpers import accept_invitation, answer, csrf_of, new_client
from synthmed.study import crud


def _close(admin_client) -> None:  # noqa: ANN001
    admin_client.post("/admin/close", data={"csrf_token": csrf_of(admin_client.get("/admin").text)})


def test_admin_pages_need_the_admin(app, reader_client):
    for url in ("/admin", "/admin/results", "/admin/export.json", "/admin/export.csv"):
        assert "/admin/login" in str(new_client(app).get(url).url), url
        assert "/admin/login" in str(reader_client.get(url).url), url
    token = csrf_of(reader_client.get("/reader/review").text)
    response = reader_client.post("/admin/close", data={"csrf_token": token})
    assert "/admin/login" in str(response.url)
    with app.state.sessionmaker() as session:
        assert not crud.get_study(session=session).closed


def test_admin_watches_progress_while_readers_work(admin_client, reader_client):
    assert "0 / 12" in admin_client.get("/admin").text
    for position in range(1, 4):
        answer(reader_client, position, "real", 3)
        assert f"{position} / 12" in admin_client.get("/admin").text
    page = admin_client.get("/admin").text
    assert "accepted" in page and "pending" in page  # alice accepted, bob not yet


def test_admin_adds_a_reader_whose_invitation_works(admin_client, app):
    page = admin_client.get("/admin")
    response = admin_client.post("/admin/readers", data={"csrf_token": csrf_of(page.text), "name": "carol"})
    assert response.status_code == 200 and "carol" in response.text
    link = response.text.split('id="invitation-link">')[1].split("<")[0]
    client = new_client(app)
    assert accept_invitation(client, link.rsplit("/", 1)[1]).status_code == 200
    assert "/reader/case/" in str(client.get("/reader/resume").url)
    duplicate = admin_client.post("/admin/readers", data={"csrf_token": csrf_of(page.text), "name": "carol"})
    assert duplicate.status_code == 400 and "already exists" in duplicate.text


def test_results_only_after_close_then_exports(admin_client, app, study):
    alice = new_client(app)
    accept_invitation(alice, study[0].invitations["alice"])
    for position in range(1, 13):
        answer(alice, position, "fake" if position % 3 else "unsure", 4, findings=f"note {position}")
    assert admin_client.get("/admin/results").status_code == 409
    assert admin_client.get("/admin/export.csv").status_code == 409
    _close(admin_client)
    results = admin_client.get("/admin/results")
    assert results.status_code == 200 and "inconclusive: too few cases/readers" in results.text
    assert "n = 1 readers who answered" in results.text  # bob never answered: left out of agreement, not nulling it
    removed = admin_client.get("/admin/results", params={"exclude": "alice"})
    assert removed.status_code == 200 and "Removed before analysis: alice" in removed.text
    assert admin_client.get("/admin/results", params={"exclude": "nobody"}).status_code == 400
    data = admin_client.get("/admin/export.json").json()
    assert data["pooled"]["answers"] == 12 and data["per_reader"]["alice"]["answers"] == 12
    assert data["per_reader"]["bob"]["answers"] == 0
    assert data["pooled"]["sensitivity"]["k"] == data["confusion"]["alice"]["synthetic images"]["fake"]
    assert data["pooled"]["sensitivity"]["n"] == 6 and data["pooled"]["specificity"]["k"] == 0
    rows = list(csv.DictReader(io.StringIO(admin_client.get("/admin/export.csv").text)))
    assert len(rows) == 12 and {r["truth"] for r in rows} == {"real", "synthetic"}
    assert {r["findings"] for r in rows} == {f"note {p}" for p in range(1, 13)}
    # The admin sees every image (thumbnails in the results).
    token = data["findings"].popitem()[0]
    assert admin_client.get(f"/image/{token}").status_code == 200
