"""The OpenAI Images client against a real loopback stub server: success, retries, refusals, keys, budget."""

from __future__ import annotations

import random

import pytest
from openai_stub import Reply, StubImagesServer

from synthmed.textgen.openai_images import OpenAIImagesProvider
from synthmed.textgen.providers import (
    AuthenticationError,
    BudgetExceededError,
    PromptRefusedError,
    ProviderError,
    ProviderUnavailableError,
    RequestBudget,
)


def make_provider(server, *, model="gpt-image-1", api_key="sk-test", **kwargs):
    sleeps = []
    provider = OpenAIImagesProvider(
        model=model,
        api_key=api_key,
        base_url=server.base_url,
        sleep=sleeps.append,
        jitter_rng=random.Random(0),
        **kwargs,
    )
    return provider, sleeps


def test_success_decodes_images_and_sends_the_api_shape():
    with StubImagesServer() as server:
        provider, sleeps = make_provider(server, model="dall-e-2")
        images = provider.generate("chest x-ray, left lower lobe effusion", n=3, size_px=256)
    assert len(images) == 3 and sleeps == []
    assert [img.image.getpixel((0, 0)) for img in images] == [10, 11, 12]
    request = server.requests[0]
    assert request["authorization"] == "Bearer sk-test"
    assert request["body"] == {
        "model": "dall-e-2",
        "prompt": "chest x-ray, left lower lobe effusion",
        "n": 3,
        "size": "256x256",
        "response_format": "b64_json",
    }
    assert images[0].provider == "openai" and images[0].model == "dall-e-2" and images[0].seed is None
    assert images[0].parameters["size"] == "256x256" and images[0].revised_prompt == "rev"


def test_gpt_image_sends_quality_and_no_response_format():
    with StubImagesServer() as server:
        provider, _ = make_provider(server, model="gpt-image-1", quality="high")
        provider.generate("ct slice", n=1, size_px=(1536, 1024))
    body = server.requests[0]["body"]
    assert body["quality"] == "high" and body["size"] == "1536x1024" and "response_format" not in body


def test_dalle3_is_split_into_one_image_per_request():
    with StubImagesServer() as server:
        provider, _ = make_provider(server, model="dall-e-3")
        images = provider.generate("x", n=3, quality="hd")
    assert len(images) == 3 and [r["body"]["n"] for r in server.requests] == [1, 1, 1]


def test_429_then_success_waits_at_least_retry_after():
    replies = [
        Reply(
            429,
            {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}},
            headers={"Retry-After": "7"},
        ),
        Reply(503, {"error": {"message": "overloaded", "type": "server_error"}}),
    ]
    with StubImagesServer(replies) as server:
        provider, sleeps = make_provider(server, backoff_base_s=1.0)
        images = provider.generate("x", n=2)
    assert len(images) == 2 and len(server.requests) == 3
    assert sleeps[0] >= 7.0  # honours Retry-After
    assert 1.0 <= sleeps[1] <= 2.0  # exponential: attempt 1 ceiling is 2 s, jittered
    assert provider.budget.requests_sent == 3


def test_retries_exhausted_raise_unavailable():
    replies = [Reply(500, {"error": {"message": "boom", "type": "server_error"}})] * 3
    with StubImagesServer(replies) as server:
        provider, sleeps = make_provider(server, max_retries=2)
        with pytest.raises(ProviderUnavailableError, match="after 3 attempts"):
            provider.generate("x", n=1)
    assert len(sleeps) == 2 and sleeps[1] > sleeps[0] * 0.5


@pytest.mark.parametrize("code", ["content_policy_violation", "moderation_blocked"])
def test_refused_prompt_is_not_retried(code):
    reply = Reply(
        400,
        {
            "error": {
                "message": "Your request was rejected by the safety system.",
                "type": "invalid_request_error",
                "code": code,
            }
        },
    )
    with StubImagesServer([reply]) as server:
        provider, sleeps = make_provider(server)
        with pytest.raises(PromptRefusedError, match="Rephrase"):
            provider.generate("x", n=1)
    assert len(server.requests) == 1 and sleeps == []


def test_bad_key_says_which_variable():
    with StubImagesServer(api_key="sk-right") as server:
        provider, _ = make_provider(server, api_key="sk-wrong")
        with pytest.raises(AuthenticationError, match="OPENAI_API_KEY"):
            provider.generate("x", n=1)
    assert len(server.requests) == 1


def test_missing_key_fails_before_sending(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with StubImagesServer() as server:
        provider = OpenAIImagesProvider(model="dall-e-2", base_url=server.base_url)
        with pytest.raises(AuthenticationError, match="OPENAI_API_KEY"):
            provider.generate("x", n=1)
    assert server.requests == []


def test_key_and_base_url_come_from_the_environment(monkeypatch):
    with StubImagesServer(api_key="sk-env") as server:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        assert len(OpenAIImagesProvider(model="dall-e-2").generate("x", n=1)) == 1


def test_budget_reached_before_sending():
    with StubImagesServer() as server:
        provider, _ = make_provider(server, model="dall-e-3", budget=RequestBudget(max_requests=2))
        with pytest.raises(BudgetExceededError, match="--max-requests"):
            provider.generate("x", n=3)
        assert server.requests == []  # nothing sent: the job could not fit
        provider.generate("x", n=2)
        with pytest.raises(BudgetExceededError):
            provider.generate("x", n=1)
    assert len(server.requests) == 2


def test_image_budget_and_retries_count_against_it():
    replies = [
        Reply(429, {"error": {"message": "slow down", "code": "rate_limit_exceeded"}}, headers={"Retry-After": "0"})
    ]
    with StubImagesServer(replies) as server:
        provider, _ = make_provider(server, budget=RequestBudget(max_requests=1))
        with pytest.raises(BudgetExceededError):
            provider.generate("x", n=1)  # the retry would be a second request
    assert len(server.requests) == 1
    with pytest.raises(BudgetExceededError, match="--max-images"):
        RequestBudget(max_images=4).check(images=5)


def test_other_errors_and_bad_options_are_clear():
    reply = Reply(400, {"error": {"message": "Invalid size", "type": "invalid_request_error", "code": "invalid_value"}})
    with StubImagesServer([reply]) as server:
        provider, _ = make_provider(server)
        with pytest.raises(ProviderError, match="HTTP 400, invalid_value"):
            provider.generate("x", n=1)
        with pytest.raises(ValueError, match="1024x1024"):
            provider.generate("x", n=1, size_px=300)
        with pytest.raises(ValueError, match="quality"):
            provider.generate("x", n=1, quality="ultra")
    with pytest.raises(ValueError, match="gpt-image"):
        OpenAIImagesProvider(model="stable-diffusion", api_key="k")
