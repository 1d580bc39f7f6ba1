"""Typed, environment-driven settings of one reader study (database, secret key, cookies, rate limits)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DATABASE_NAME = "study.db"
SECRET_KEY_NAME = ".secret_key"
IMAGES_DIR_NAME = "images"


class StudySettings(BaseSettings):
    """Everything the web app and the CLI need to open a study; env vars are `SYNTHMED_STUDY_<FIELD>`."""

    model_config = SettingsConfigDict(env_prefix="SYNTHMED_STUDY_", extra="ignore")

    study_dir: Path = Field(description="folder made by `synthmed study create` (images/, study.db, .secret_key)")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default sqlite:///STUDY_DIR/study.db")
    secret_key: SecretStr | None = Field(
        default=None, description="session signing key; default: STUDY_DIR/.secret_key"
    )
    https_only: bool = Field(default=False, description="send the session cookie only over HTTPS (set behind TLS)")
    session_max_age_s: int = Field(default=12 * 3600, gt=0)
    login_max_attempts: int = Field(
        default=5, gt=0, description="failed logins per window for one account from one address"
    )
    login_window_s: float = Field(default=300.0, gt=0)
    login_lock_s: float = Field(default=30.0, gt=0, description="first lock; doubles with each further failure")
    trusted_proxies: str | None = Field(
        default=None,
        description="comma-separated proxy addresses whose "
        "X-Forwarded-For is believed; default: none (the socket address counts)",
    )
    sqlite_busy_timeout_s: float = Field(default=30.0, gt=0)

    @field_validator("study_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def images_dir(self) -> Path:
        """Where the blinded, re-encoded images live (file name = opaque case token)."""
        return self.study_dir / IMAGES_DIR_NAME

    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file inside the study folder."""
        return self.database_url or f"sqlite:///{self.study_dir / DATABASE_NAME}"

    def resolved_secret_key(self) -> str:
        """The session key: from the environment, else a 0600 file in the study folder made on first use."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        path = self.study_dir / SECRET_KEY_NAME
        if not path.exists():
            self.study_dir.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another process made it first
                return path.read_text().strip()
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
        key = path.read_text().strip()
        if len(key) < 32:
            raise ValueError(f"{path} holds a key shorter than 32 characters; delete it to make a new one.")
        return key
