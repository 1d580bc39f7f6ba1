"""Reader pages: answering, resuming, locking, isolation, XSS and path traversal (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from study.helpers import accept_invitation, answer, csrf_of, login_reader, make_study, new_client
from synthmed.study import crud
from synthmed.study.app import create_app
from synthmed.study.db import Answer


def _answer_count(app) -> int:  # noqa: ANN001
    with app.state.sessionmaker() as session:
        return session.scalar(select(func.count()).select_from(Answer))


def test_answering_moves_to_next_case_and_shows_progress(reader_client, app):
    response = answer(reader_client, 1, "fake", 4, findings="left lower lobe effusion", condition="effusion")
    assert response.status_code == 200 and str(response.url).endswith("/reader/case/2")
    assert 'value="1"' in response.text and "1 answered" in response.text
    page = reader_client.get("/reader/case/1").text
    assert 'value="fake" checked' in page and "left lower lobe effusion" in page
    assert _answer_count(app) == 1


def test_invalid_answers_are_refused_and_nothing_is_stored(reader_client, app):
    assert answer(reader_client, 1, "maybe", 3).status_code == 400
    assert answer(reader_client, 1, "real", 9).status_code == 400
    assert answer(reader_client, 1, "real", 3, condition="not-in-list").status_code == 400
    assert reader_client.get("/reader/case/999").status_code == 404
    assert reader_client.get("/reader/case/0").status_code == 404
    assert _answer_count(app) == 0


def test_resubmitting_the_same_answer_is_idempotent(reader_client, app):
    for _ in range(3):
        assert answer(reader_client, 2, "unsure", 2).status_code == 200
    assert _answer_count(app) == 1


def test_two_tabs_submitting_at_once_make_one_row(reader_client, app):
    token = csrf_of(reader_client.get("/reader/case/3").text)
    barrier = threading.Barrier(8)
    codes = []

    def submit(call: str) -> None:
        barrier.wait()
        codes.append(
            reader_client.post(
                "/reader/case/3", data={"csrf_token": token, "call": call, "confidence": "3"}
            ).status_code
        )

    threads = [threading.Thread(target=submit, args=("real" if i % 2 else "fake",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert codes == [200] * 8
    assert _answer_count(app) == 1


def test_restart_keeps_every_answer_and_reader_resumes_at_first_unanswered(reader_client, study, app):
    for position in (1, 2, 4):
        answer(reader_client, position, "real", 5)
    reader_client.close()  # the browser is closed ...
    restarted = create_app(study[1])  # ... and the server restarts
    assert _answer_count(restarted) == 3
    client = new_client(restarted)
    response = login_reader(client, "alice")
    assert str(response.url).endswith("/reader/case/3")
    answer(client, 3, "fake", 1)
    assert str(client.get("/reader/resume").url).endswith("/reader/case/5")


def test_answers_change_until_submitted_then_lock(reader_client, app, study):
    total = 12
    for position in range(1, total + 1):
        answer(reader_client, position, "real", 3)
    assert answer(reader_client, 1, "fake", 5).status_code == 200  # still changeable
    review = reader_client.get("/reader/review")
    assert "Submit the study" in review.text
    submitted = reader_client.post("/reader/submit", data={"csrf_token": csrf_of(review.text)})
    assert "you have submitted" in submitted.text
    again = reader_client.post("/reader/submit", data={"csrf_token": csrf_of(review.text)})
    assert again.status_code == 200  # idempotent
    locked = answer(reader_client, 1, "unsure", 1)
    assert locked.status_code == 409 and "can no longer change" in locked.text
    with app.state.sessionmaker() as session:
        rows = session.scalars(select(Answer)).all()
    assert len(rows) == total and all(r.submitted for r in rows)
    first = crud.reader_case(session=app.state.sessionmaker(), reader_id=rows[0].reader_id, position=1)
    assert next(r.call for r in rows if r.case_id == first.id) == "fake"


def test_submit_before_every_case_is_answered_is_refused(reader_client):
    answer(reader_client, 1, "real", 3)
    token = csrf_of(reader_client.get("/reader/review").text)
    response = reader_client.post("/reader/submit", data={"csrf_token": token})
    assert response.status_code == 409 and "no answer yet" in response.text


def test_findings_text_is_escaped(reader_client, app, study, admin_client):
    attack = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    answer(reader_client, 1, "fake", 4, findings=attack)
    page = reader_client.get("/reader/case/1").text
    assert attack not in page and "&lt;script&gt;" in page
    admin_client.post("/admin/close", data={"csrf_token": csrf_of(admin_client.get("/admin").text)})
    results = admin_client.get("/admin/results").text
    assert attack not in results and "&lt;script&gt;alert" in results
    assert "script-src 'self'" in admin_client.get("/admin/results").headers["content-security-policy"]


def test_path_traversal_and_unknown_ids_are_404(reader_client, study):
    images_dir = study[1].images_dir
    some_file = next(images_dir.iterdir()).name
    for url in (
        "/image/../study.db",
        "/image/..%2Fstudy.db",
        "/image/..%2F..%2Fetc%2Fpasswd",
        f"/image/{some_file}",
        "/image/%2e%2e%2f.secret_key",
        "/static/../study.db",
        "/static/..%2F..%2Fsettings.py",
        "/static/%2e%2e/app.py",
        "/images/" + some_file,
        "/study.db",
        "/.secret_key",
    ):
        response = reader_client.get(url)
        assert response.status_code == 404, url
        assert b"\x89PNG" not in response.content and "SQLite" not in response.text


def test_reader_sees_only_own_cases_and_answers(app, study):
    alice, bob = new_client(app), new_client(app)
    accept_invitation(alice, study[0].invitations["alice"])
    accept_invitation(bob, study[0].invitations["bob"])
    answer(alice, 1, "fake", 5, findings="alice private note")
    bob_pages = "".join(bob.get(f"/reader/case/{p}").text for p in range(1, 13)) + bob.get("/reader/review").text
    assert "alice private note" not in bob_pages and "alice" not in bob_pages
    assert "checked" not in bob.get("/reader/case/1").text
    # Bob can fetch the images of his own cases only; a token he was never given is 404.
    with app.state.sessionmaker() as session:
        from synthmed.study.db import Case, Reader

        rogue = Case(
            token="rogueTokenNotAssigned",
            is_synthetic=True,
            modality="m",
            label="l",
            source_id="x",
            source_path="/nonexistent",
        )
        session.add(rogue)
        session.commit()
        assert session.scalar(select(Reader).where(Reader.name == "bob")) is not None
    assert bob.get("/image/rogueTokenNotAssigned").status_code == 404
    assert bob.get("/admin").status_code == 200 and "/admin/login" in str(bob.get("/admin").url)
    alice_image = "/image/" + alice.get("/reader/case/1").text.split('src="/image/')[1].split('"')[0]
    assert alice.get(alice_image).status_code == 200
    assert new_client(app).get(alice_image).status_code == 404  # anonymous


def test_closed_study_refuses_answers(reader_client, admin_client):
    answer(reader_client, 1, "real", 3)
    admin_client.post("/admin/close", data={"csrf_token": csrf_of(admin_client.get("/admin").text)})
    response = answer(reader_client, 2, "real", 3)
    assert response.status_code == 409 and "closed" in response.text


def test_educational_mode_reveals_truth_and_locks_answer(tmp_path, image_folders):
    created, settings = make_study(tmp_path, image_folders, None, educational=True)
    app = create_app(settings)
    client = new_client(app)
    accept_invitation(client, created.invitations["alice"])
    before = client.get("/reader/case/1").text
    assert "This image is" not in before
    response = answer(client, 1, "fake", 3)
    assert str(response.url).endswith("/reader/case/1") and "This image is <strong>" in response.text
    assert answer(client, 1, "real", 3).status_code == 409
