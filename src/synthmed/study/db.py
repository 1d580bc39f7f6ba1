"""The study database: engine factory (SQLite in WAL mode or PostgreSQL) and the SQLAlchemy 2 tables."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    inspect,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

CALLS = ("real", "fake", "unsure")
"""What a reader can answer for one image."""


def utcnow() -> datetime:
    """Timezone-aware now (UTC)."""
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    """Declarative base of every study table."""


class Study(Base):
    """The one study held by a database: its options and whether it is closed."""

    __tablename__ = "study"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    seed: Mapped[int] = mapped_column(Integer)
    image_size_px: Mapped[int] = mapped_column(Integer)
    educational: Mapped[bool] = mapped_column(Boolean, default=False)
    all_synthetic: Mapped[bool] = mapped_column(Boolean, default=False)
    conditions: Mapped[str] = mapped_column(Text, default="")  # newline-separated
    closed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_utc: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    closed_utc: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    margin_auc: Mapped[float] = mapped_column(Float, default=0.1, server_default="0.1")  # equivalence margin
    blinding_audit: Mapped[str] = mapped_column(Text, default="", server_default="")  # JSON of the audit at create

    @property
    def condition_list(self) -> list[str]:
        return [c for c in self.conditions.split("\n") if c]


class Case(Base):
    """One blinded image. `is_synthetic`, `label`, `source_*` are the truth key: never sent to readers."""

    __tablename__ = "case"
    id: Mapped[int] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(String(64), unique=True, index=True)  # opaque id in URLs and file name
    is_synthetic: Mapped[bool] = mapped_column(Boolean)
    modality: Mapped[str] = mapped_column(String(100))
    label: Mapped[str] = mapped_column(String(200))
    source_id: Mapped[str] = mapped_column(String(500))
    source_path: Mapped[str] = mapped_column(Text)


class Reader(Base):
    """A radiologist taking part; logs in with an invitation once, then with name + password."""

    __tablename__ = "reader"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    invite_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)  # sha256, one-time
    password_hash: Mapped[str | None] = mapped_column(String(300), nullable=True)
    submitted_utc: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_utc: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # bumped = sessions revoked


class Assignment(Base):
    """Case `case_id` is number `position` (1-based) in reader `reader_id`'s own random order."""

    __tablename__ = "assignment"
    __table_args__ = (UniqueConstraint("reader_id", "position"), UniqueConstraint("reader_id", "case_id"))
    id: Mapped[int] = mapped_column(primary_key=True)
    reader_id: Mapped[int] = mapped_column(ForeignKey("reader.id"), index=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case.id"))
    position: Mapped[int] = mapped_column(Integer)


class Answer(Base):
    """A reader's call on one case: one row per (reader, case), updated in place until submitted."""

    __tablename__ = "answer"
    __table_args__ = (
        UniqueConstraint("reader_id", "case_id", name="uq_answer_reader_case"),
        CheckConstraint("call IN ('real', 'fake', 'unsure')", name="ck_answer_call"),
        CheckConstraint("confidence BETWEEN 1 AND 5", name="ck_answer_confidence"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    reader_id: Mapped[int] = mapped_column(ForeignKey("reader.id"), index=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case.id"))
    call: Mapped[str] = mapped_column(String(10))
    confidence: Mapped[int] = mapped_column(Integer)
    findings: Mapped[str] = mapped_column(Text, default="")
    condition: Mapped[str] = mapped_column(String(200), default="")
    submitted: Mapped[bool] = mapped_column(Boolean, default=False)
    created_utc: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_utc: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Admin(Base):
    """The organiser account."""

    __tablename__ = "admin"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # bumped = sessions revoked


def make_engine(database_url: str, *, busy_timeout_s: float = 30.0) -> Engine:
    """An engine for `database_url`; SQLite gets WAL, a busy timeout and foreign keys on every connection."""
    if database_url.startswith("sqlite"):
        engine = create_engine(
            database_url,
            connect_args={"check_same_thread": False, "timeout": busy_timeout_s},
            pool_size=20,
            max_overflow=20,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    if database_url.startswith("postgresql"):
        return create_engine(database_url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    raise ValueError(f"unsupported database URL {database_url!r}: use sqlite:///PATH or postgresql+psycopg://...")


ADDED_COLUMNS = {
    "reader": {"session_epoch": "INTEGER NOT NULL DEFAULT 0"},
    "admin": {"session_epoch": "INTEGER NOT NULL DEFAULT 0"},
    "study": {"margin_auc": "FLOAT NOT NULL DEFAULT 0.1", "blinding_audit": "TEXT NOT NULL DEFAULT ''"},
}
"""Columns newer than the first release: `init_db` adds them to an older study database."""


def init_db(engine: Engine) -> None:
    """Create every table that does not exist yet and add columns newer than the database (idempotent)."""
    Base.metadata.create_all(engine)
    existing = inspect(engine)
    with engine.begin() as connection:
        for table, columns in ADDED_COLUMNS.items():
            present = {c["name"] for c in existing.get_columns(table)}
            for name, ddl in columns.items():
                if name not in present:
                    connection.execute(text(f"ALTER TABLE {table} ADD COLUMN {name} {ddl}"))


def make_sessionmaker(engine: Engine) -> sessionmaker:
    """Session factory that keeps loaded attributes usable after commit."""
    return sessionmaker(engine, expire_on_commit=False)
