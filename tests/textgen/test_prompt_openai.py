"""`synthmed prompt --provider openai` against the loopback stub: manifest provenance, partial sets kept."""

from __future__ import annotations

import json

from openai_stub import Reply, StubImagesServer

from synthmed.cli import main
from synthmed.data.manifest import load_image_set


def test_openai_prompt_flows_into_the_manifest(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    out = tmp_path / "set"
    with StubImagesServer() as server:
        code = main(
            [
                "prompt",
                "lung ct, ground-glass opacity",
                "--provider",
                "openai",
                "--model",
                "dall-e-2",
                "--size",
                "256",
                "-n",
                "3",
                "--label",
                "covid",
                "--label-idx",
                "1",
                "--base-url",
                server.base_url,
                "--out",
                str(out),
            ]
        )
    assert code == 0, capsys.readouterr().err
    frame = load_image_set(out)
    assert len(frame) == 3 and frame["label"].eq("covid").all() and frame["label_idx"].eq(1).all()
    assert frame["provider"].eq("openai").all() and frame["model"].eq("dall-e-2").all()
    assert frame["prompt"].eq("lung ct, ground-glass opacity").all() and frame["seed"].isna().all()
    assert json.loads(frame["parameters"][0]) == {"response_format": "b64_json", "size": "256x256"}
    assert frame["revised_prompt"].eq("rev").all() and frame["image_id"].is_unique


def test_refusal_midway_keeps_the_images_already_received(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    refusal = Reply(400, {"error": {"message": "rejected", "code": "content_policy_violation"}})
    out = tmp_path / "set"
    with StubImagesServer([Reply(), refusal]) as server:
        code = main(
            [
                "prompt",
                "x",
                "--provider",
                "openai",
                "--model",
                "dall-e-3",
                "-n",
                "3",
                "--base-url",
                server.base_url,
                "--out",
                str(out),
            ]
        )
    err = capsys.readouterr().err
    assert code == 2 and "refused" in err and "1 of 3 images were saved" in err
    assert len(load_image_set(out)) == 1


def test_budget_and_bad_key_from_the_cli(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong")
    with StubImagesServer() as server:
        assert (
            main(
                [
                    "prompt",
                    "x",
                    "--provider",
                    "openai",
                    "--model",
                    "dall-e-3",
                    "-n",
                    "3",
                    "--max-requests",
                    "2",
                    "--base-url",
                    server.base_url,
                    "--out",
                    str(tmp_path / "a"),
                ]
            )
            == 2
        )
        assert "--max-requests" in capsys.readouterr().err and server.requests == []
        assert (
            main(
                [
                    "prompt",
                    "x",
                    "--provider",
                    "openai",
                    "-n",
                    "1",
                    "--base-url",
                    server.base_url,
                    "--out",
                    str(tmp_path / "b"),
                ]
            )
            == 2
        )
        assert "OPENAI_API_KEY" in capsys.readouterr().err
