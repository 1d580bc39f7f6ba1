"""Study settings: database URL default, secret key from the environment or a private file."""

from __future__ import annotations

import subprocess
import sys

import pytest

from synthmed.study.settings import StudySettings


def test_secret_key_file_is_created_once_with_0600(tmp_path):
    settings = StudySettings(study_dir=tmp_path / "s")
    key = settings.resolved_secret_key()
    path = tmp_path / "s" / ".secret_key"
    assert len(key) >= 32 and path.stat().st_mode & 0o777 == 0o600
    assert StudySettings(study_dir=tmp_path / "s").resolved_secret_key() == key
    path.write_text("short")
    with pytest.raises(ValueError, match="delete it"):
        settings.resolved_secret_key()


def test_environment_overrides(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTHMED_STUDY_SECRET_KEY", "k" * 40)
    monkeypatch.setenv("SYNTHMED_STUDY_HTTPS_ONLY", "true")
    monkeypatch.setenv("SYNTHMED_STUDY_DATABASE_URL", "postgresql+psycopg://u@h/db")
    settings = StudySettings(study_dir=tmp_path)
    assert settings.resolved_secret_key() == "k" * 40 and settings.https_only
    assert settings.resolved_database_url() == "postgresql+psycopg://u@h/db"
    assert not (tmp_path / ".secret_key").exists()
    monkeypatch.delenv("SYNTHMED_STUDY_DATABASE_URL")
    assert StudySettings(study_dir=tmp_path).resolved_database_url() == f"sqlite:///{tmp_path.resolve()}/study.db"
    with pytest.raises(ValueError):
        StudySettings(study_dir=tmp_path, login_max_attempts=0)


def test_study_package_does_not_import_torch():
    code = (
        "import sys, synthmed.study.app, synthmed.study.blinding, synthmed.study.results; "
        "sys.exit('torch' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0, "the study package must not import torch"
