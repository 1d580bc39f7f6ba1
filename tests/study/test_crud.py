"""Database operations called directly: reader orders, answers, locking, progress (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from synthmed.study import crud
from synthmed.study.db import Answer, Assignment, Reader, make_engine, make_sessionmaker


@pytest.fixture
def session(study):
    engine = make_engine(study[1].resolved_database_url())
    with make_sessionmaker(engine)() as session:
        yield session
    engine.dispose()


def _reader(session, name: str) -> Reader:  # noqa: ANN001
    return session.scalar(select(Reader).where(Reader.name == name))


def test_each_reader_gets_every_case_in_an_own_seeded_order(session):
    orders = {}
    for name in ("alice", "bob"):
        rows = session.scalars(
            select(Assignment).where(Assignment.reader_id == _reader(session, name).id).order_by(Assignment.position)
        ).all()
        assert [r.position for r in rows] == list(range(1, 13))
        orders[name] = [r.case_id for r in rows]
    assert sorted(orders["alice"]) == sorted(orders["bob"]) and orders["alice"] != orders["bob"]
    reader, token = crud.add_reader(session=session, name="carol")
    assert len(token) >= 32 and reader.invite_hash != token
    with pytest.raises(crud.StudyError, match="already exists"):
        crud.add_reader(session=session, name="carol")
    with pytest.raises(crud.StudyError, match="1 to 100"):
        crud.add_reader(session=session, name="  ")


def test_save_answer_upserts_and_validates(session):
    alice = _reader(session, "alice")
    case = crud.reader_case(session=session, reader_id=alice.id, position=1)
    first = crud.save_answer(
        session=session,
        reader_id=alice.id,
        case_id=case.id,
        answer=crud.AnswerIn(call="fake", confidence=2, findings="  effusion  "),
    )
    first_id, first_findings = first.id, first.findings
    second = crud.save_answer(
        session=session,
        reader_id=alice.id,
        case_id=case.id,
        answer=crud.AnswerIn(call="real", confidence=5, condition="pneumonia"),
    )
    session.commit()
    assert first_id == second.id and second.call == "real" and second.confidence == 5
    assert session.scalars(select(Answer)).all() == [second]
    assert first_findings == "effusion" and second.findings == "" and second.condition == "pneumonia"
    with pytest.raises(crud.StudyError, match="not one of"):
        crud.save_answer(
            session=session,
            reader_id=alice.id,
            case_id=case.id,
            answer=crud.AnswerIn(call="real", confidence=5, condition="fracture"),
        )
    with pytest.raises(ValueError):
        crud.AnswerIn(call="probably", confidence=3)
    with pytest.raises(ValueError):
        crud.AnswerIn(call="real", confidence=0)


def test_first_unanswered_submit_and_lock(session):
    alice = _reader(session, "alice")
    assert crud.first_unanswered_position(session=session, reader_id=alice.id) == 1
    for position in (1, 2, 3):
        case = crud.reader_case(session=session, reader_id=alice.id, position=position)
        crud.save_answer(
            session=session, reader_id=alice.id, case_id=case.id, answer=crud.AnswerIn(call="unsure", confidence=1)
        )
    assert crud.first_unanswered_position(session=session, reader_id=alice.id) == 4
    with pytest.raises(crud.StudyError, match="case 4 has no answer"):
        crud.submit_reader(session=session, reader_id=alice.id)
    for position in range(4, 13):
        case = crud.reader_case(session=session, reader_id=alice.id, position=position)
        crud.save_answer(
            session=session, reader_id=alice.id, case_id=case.id, answer=crud.AnswerIn(call="real", confidence=3)
        )
    crud.submit_reader(session=session, reader_id=alice.id)
    crud.submit_reader(session=session, reader_id=alice.id)
    session.commit()
    with pytest.raises(crud.AnswerLocked):
        crud.save_answer(
            session=session, reader_id=alice.id, case_id=case.id, answer=crud.AnswerIn(call="fake", confidence=3)
        )
    progress = {p.name: p for p in crud.progress(session=session)}
    assert progress["alice"].answered == 12 and progress["alice"].submitted
    assert progress["bob"].answered == 0 and not progress["bob"].invitation_accepted


def test_invitations_are_one_time_and_renewable(session, study):
    token = study[0].invitations["bob"]
    assert crud.accept_invitation(session=session, token=token, password="long enough 1") is not None
    assert crud.accept_invitation(session=session, token=token, password="long enough 2") is None
    assert crud.authenticate_reader(session=session, name="bob", password="long enough 1") is not None
    assert crud.authenticate_reader(session=session, name="bob", password="long enough 2") is None
    fresh = crud.renew_invitation(session=session, name="bob")
    assert crud.reader_for_invitation(session=session, token=fresh).name == "bob"
    with pytest.raises(crud.StudyError, match="no reader"):
        crud.renew_invitation(session=session, name="nobody")


def test_closing_locks_everyone_and_second_study_is_refused(session):
    crud.close_study(session=session)
    crud.close_study(session=session)
    bob = _reader(session, "bob")
    case = crud.reader_case(session=session, reader_id=bob.id, position=1)
    with pytest.raises(crud.AnswerLocked, match="closed"):
        crud.save_answer(
            session=session, reader_id=bob.id, case_id=case.id, answer=crud.AnswerIn(call="real", confidence=3)
        )
    with pytest.raises(crud.StudyError, match="already holds a study"):
        crud.create_study(session=session, name="again", seed=0, image_size_px=8)
