"""Keyword-only database operations of the study (no web code): readers, cases, answers, progress."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from synthmed.study.db import Admin, Answer, Assignment, Case, Reader, Study, utcnow
from synthmed.study.security import hash_password, new_token, token_digest, verify_password

UPSERTS = {"sqlite": sqlite_insert, "postgresql": pg_insert}
"""Dialect name -> INSERT construct with ON CONFLICT support."""


class StudyError(ValueError):
    """A request the study cannot honour; the message says why and what to do."""


class AnswerLocked(StudyError):
    """The reader has submitted, or the study is closed: answers can no longer change."""


class AnswerIn(BaseModel):
    """A reader's answer as validated at the edge."""

    call: Literal["real", "fake", "unsure"]
    confidence: int = Field(ge=1, le=5)
    findings: str = Field(default="", max_length=5000)
    condition: str = Field(default="", max_length=200)

    @field_validator("findings", "condition")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()


@dataclass(frozen=True)
class ReaderProgress:
    """How far one reader has come."""

    name: str
    answered: int
    total: int
    invitation_accepted: bool
    submitted: bool


# Study and cases.


def create_study(
    *,
    session: Session,
    name: str,
    seed: int,
    image_size_px: int,
    educational: bool = False,
    all_synthetic: bool = False,
    conditions: list[str] | None = None,
    margin_auc: float = 0.1,
    blinding_audit: str = "",
) -> Study:
    """Insert the (single) study row."""
    if session.scalar(select(func.count()).select_from(Study)):
        raise StudyError("this database already holds a study; create a new study folder or database.")
    clean = [c.strip() for c in (conditions or []) if c.strip()]
    study = Study(
        name=name,
        seed=seed,
        image_size_px=image_size_px,
        educational=educational,
        all_synthetic=all_synthetic,
        conditions="\n".join(dict.fromkeys(clean)),
        margin_auc=margin_auc,
        blinding_audit=blinding_audit,
    )
    session.add(study)
    session.flush()
    return study


def get_study(*, session: Session) -> Study:
    """The study held by this database."""
    study = session.scalar(select(Study).limit(1))
    if study is None:
        raise StudyError("the database holds no study; run `synthmed study create` first.")
    return study


def add_case(
    *, session: Session, token: str, is_synthetic: bool, modality: str, label: str, source_id: str, source_path: str
) -> Case:
    """Insert one case (its blinded image must already be written under the study's images/)."""
    case = Case(
        token=token,
        is_synthetic=is_synthetic,
        modality=modality,
        label=label,
        source_id=source_id,
        source_path=source_path,
    )
    session.add(case)
    session.flush()
    return case


def close_study(*, session: Session) -> Study:
    """Close the study: no more answers; results become visible to the admin (idempotent)."""
    study = get_study(session=session)
    if not study.closed:
        study.closed, study.closed_utc = True, utcnow()
    return study


# Accounts.


def create_admin(*, session: Session, username: str, password: str) -> Admin:
    """Insert the organiser account."""
    admin = Admin(username=username, password_hash=hash_password(password))
    session.add(admin)
    session.flush()
    return admin


def authenticate_admin(*, session: Session, username: str, password: str) -> Admin | None:
    """The admin when the credentials match, else None."""
    admin = session.scalar(select(Admin).where(Admin.username == username))
    ok = verify_password(password, admin.password_hash if admin else None)  # scrypt runs for unknown names too
    return admin if admin and ok else None


def add_reader(*, session: Session, name: str) -> tuple[Reader, str]:
    """Add a reader with every case in their own seeded random order; returns the one-time invitation token."""
    name = name.strip()
    if not name or len(name) > 100:
        raise StudyError("a reader name must have 1 to 100 characters.")
    if session.scalar(select(Reader).where(Reader.name == name)):
        raise StudyError(f"reader {name!r} already exists; pick another name.")
    get_study(session=session)  # raises when the database holds no study
    token = new_token()
    reader = Reader(name=name, invite_hash=token_digest(token))
    session.add(reader)
    session.flush()
    case_ids = sorted(session.scalars(select(Case.id)))
    # Fresh entropy, not the study seed: an order derived from the seed and the input folders could be rebuilt
    # by anyone who knows them. The order is stored, so nothing needs to reproduce it.
    order = np.random.default_rng(secrets.randbits(128)).permutation(len(case_ids))
    session.add_all(
        Assignment(reader_id=reader.id, case_id=case_ids[i], position=pos + 1) for pos, i in enumerate(order)
    )
    session.flush()
    return reader, token


def renew_invitation(*, session: Session, name: str) -> str:
    """A fresh one-time invitation for an existing reader (forgotten or leaked password).

    The old password stops working and every open session of the reader is revoked: only the new
    invitation lets them (or whoever held the old credentials) in again.
    """
    reader = session.scalar(select(Reader).where(Reader.name == name))
    if reader is None:
        raise StudyError(f"no reader named {name!r}.")
    token = new_token()
    reader.invite_hash, reader.password_hash = token_digest(token), None
    reader.session_epoch += 1
    return token


def reader_for_invitation(*, session: Session, token: str) -> Reader | None:
    """The reader whose unused invitation this is."""
    return session.scalar(select(Reader).where(Reader.invite_hash == token_digest(token)))


def accept_invitation(*, session: Session, token: str, password: str) -> Reader | None:
    """Set the reader's password and use up the invitation; None when the token is unknown or already used.

    One conditional UPDATE does both, so of several simultaneous uses exactly one succeeds.
    """
    digest = token_digest(token)
    password_hash = hash_password(password)
    used = session.execute(
        update(Reader)
        .where(Reader.invite_hash == digest)
        .values(password_hash=password_hash, invite_hash=None, session_epoch=Reader.session_epoch + 1)
        .returning(Reader.id)
    )
    reader_id = used.scalar_one_or_none()
    return None if reader_id is None else session.get(Reader, reader_id, populate_existing=True)


def revoke_sessions(*, session: Session, role: str, uid: int) -> None:
    """Invalidate every session of this reader or admin (logout): their cookies no longer sign anyone in."""
    table = Admin if role == "admin" else Reader
    session.execute(update(table).where(table.id == uid).values(session_epoch=table.session_epoch + 1))


def authenticate_reader(*, session: Session, name: str, password: str) -> Reader | None:
    """The reader when the credentials match, else None."""
    reader = session.scalar(select(Reader).where(Reader.name == name.strip()))
    ok = verify_password(password, reader.password_hash if reader else None)  # scrypt runs for unknown names too
    return reader if reader and ok else None


# Reading.


def case_count(*, session: Session, reader_id: int) -> int:
    """How many cases the reader has."""
    return session.scalar(select(func.count()).select_from(Assignment).where(Assignment.reader_id == reader_id)) or 0


def reader_case(*, session: Session, reader_id: int, position: int) -> Case | None:
    """The case at `position` in this reader's order (None when out of range)."""
    return session.scalar(
        select(Case)
        .join(Assignment, Assignment.case_id == Case.id)
        .where(Assignment.reader_id == reader_id, Assignment.position == position)
    )


def case_for_image(*, session: Session, token: str, reader_id: int | None) -> Case | None:
    """The case with this image token, if `reader_id` is assigned it (None = admin: any case)."""
    query = select(Case).where(Case.token == token)
    if reader_id is not None:
        query = query.join(Assignment, Assignment.case_id == Case.id).where(Assignment.reader_id == reader_id)
    return session.scalar(query)


def reader_answers(*, session: Session, reader_id: int) -> dict[int, Answer]:
    """This reader's answers by case id."""
    return {a.case_id: a for a in session.scalars(select(Answer).where(Answer.reader_id == reader_id))}


def first_unanswered_position(*, session: Session, reader_id: int) -> int | None:
    """The first position in the reader's order without an answer (None when all are answered)."""
    answered = select(Answer.case_id).where(Answer.reader_id == reader_id)
    return session.scalar(
        select(func.min(Assignment.position)).where(
            Assignment.reader_id == reader_id, Assignment.case_id.not_in(answered)
        )
    )


def save_answer(*, session: Session, reader_id: int, case_id: int, answer: AnswerIn) -> Answer:
    """Insert or update the reader's one answer for a case, atomically (concurrent tabs make one row)."""
    study = get_study(session=session)
    reader = session.get(Reader, reader_id)
    if study.closed:
        raise AnswerLocked("the study is closed; answers can no longer change.")
    if reader is None or reader.submitted_utc is not None:
        raise AnswerLocked("you have submitted the study; answers can no longer change.")
    if answer.condition and answer.condition not in study.condition_list:
        raise StudyError(f"condition {answer.condition!r} is not one of {study.condition_list}.")
    if (
        session.scalar(select(Assignment.id).where(Assignment.reader_id == reader_id, Assignment.case_id == case_id))
        is None
    ):
        raise StudyError("this case is not assigned to you.")
    if study.educational and session.scalar(
        select(Answer.id).where(Answer.reader_id == reader_id, Answer.case_id == case_id)
    ):
        raise AnswerLocked("in an educational study the answer is final once the truth is shown.")
    now = utcnow()
    values = answer.model_dump()
    insert: Any = UPSERTS[session.get_bind().dialect.name](Answer)  # sqlite/postgresql insert with on_conflict_*
    statement = insert.values(
        reader_id=reader_id, case_id=case_id, created_utc=now, updated_utc=now, submitted=False, **values
    ).on_conflict_do_update(
        index_elements=["reader_id", "case_id"],
        set_={**values, "updated_utc": now},
        where=Answer.__table__.c.submitted.is_(False),
    )
    session.execute(statement)
    stored = session.scalar(
        select(Answer)
        .where(Answer.reader_id == reader_id, Answer.case_id == case_id)
        .execution_options(populate_existing=True)
    )
    if stored is None:  # the row was written by the statement above in this transaction
        raise StudyError("the answer could not be stored; try again.")
    return stored


def submit_reader(*, session: Session, reader_id: int) -> Reader:
    """Lock the reader's answers (idempotent); every case must be answered first."""
    reader = session.get(Reader, reader_id)
    if reader is None:
        raise StudyError("unknown reader.")
    if reader.submitted_utc is not None:
        return reader
    missing = first_unanswered_position(session=session, reader_id=reader_id)
    if missing is not None:
        raise StudyError(f"case {missing} has no answer yet; answer every case before submitting.")
    reader.submitted_utc = utcnow()
    session.execute(update(Answer).where(Answer.reader_id == reader_id).values(submitted=True))
    return reader


def progress(*, session: Session) -> list[ReaderProgress]:
    """Progress of every reader, by name."""
    answered = dict(session.execute(select(Answer.reader_id, func.count()).group_by(Answer.reader_id)).all())
    totals = dict(session.execute(select(Assignment.reader_id, func.count()).group_by(Assignment.reader_id)).all())
    return [
        ReaderProgress(
            name=r.name,
            answered=answered.get(r.id, 0),
            total=totals.get(r.id, 0),
            invitation_accepted=r.password_hash is not None,
            submitted=r.submitted_utc is not None,
        )
        for r in session.scalars(select(Reader).order_by(Reader.name))
    ]


def answer_rows(*, session: Session) -> list[dict]:
    """Every answer joined with its reader and the truth key (for statistics and exports only)."""
    query = (
        select(
            Reader.name,
            Case.token,
            Case.source_id,
            Case.is_synthetic,
            Case.modality,
            Case.label,
            Answer.call,
            Answer.confidence,
            Answer.condition,
            Answer.findings,
            Answer.submitted,
            Answer.updated_utc,
        )
        .join(Reader, Reader.id == Answer.reader_id)
        .join(Case, Case.id == Answer.case_id)
        .order_by(Case.token, Reader.name)
    )
    keys = (
        "reader",
        "case",
        "source_id",
        "is_synthetic",
        "modality",
        "label",
        "call",
        "confidence",
        "condition",
        "findings",
        "submitted",
        "updated_utc",
    )
    return [dict(zip(keys, row)) for row in session.execute(query).all()]


def case_rows(*, session: Session) -> list[dict]:
    """Every case with its truth (for statistics)."""
    return [
        {
            "case": c.token,
            "source_id": c.source_id,
            "is_synthetic": c.is_synthetic,
            "modality": c.modality,
            "label": c.label,
        }
        for c in session.scalars(select(Case).order_by(Case.token))
    ]


def reader_names(*, session: Session) -> list[str]:
    """Every reader's name, sorted."""
    return list(session.scalars(select(Reader.name).order_by(Reader.name)))
