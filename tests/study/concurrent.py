"""Many simultaneous clients against one in-process app (httpx over ASGI; sync routes run in the thread pool)."""

from __future__ import annotations

import asyncio
import re

import httpx

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _client(app, address: str = "127.0.0.1") -> httpx.AsyncClient:  # noqa: ANN001
    transport = httpx.ASGITransport(app=app, client=(address, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver", follow_redirects=False, timeout=120)


async def _csrf(client: httpx.AsyncClient, path: str) -> str:
    page = await client.get(path)
    match = CSRF.search(page.text)
    assert match, f"{path} has no CSRF token (status {page.status_code})"
    return match.group(1)


async def _accept(app, token: str, password: str) -> httpx.AsyncClient:  # noqa: ANN001
    client = _client(app)
    csrf = await _csrf(client, f"/invite/{token}")
    response = await client.post(
        f"/invite/{token}", data={"csrf_token": csrf, "password": password, "confirm": password}
    )
    assert response.status_code == 303, response.text[:300]
    return client


def simultaneous_get(app, invitations: dict[str, str], path: str, password: str) -> list[int]:  # noqa: ANN001
    """Log every invited reader in (one after another), then GET `path` for all at the same moment."""

    async def main() -> list[int]:
        clients = [await _accept(app, token, password) for token in invitations.values()]
        try:
            responses = await asyncio.gather(*(c.get(path) for c in clients))
            return [r.status_code for r in responses]
        finally:
            for client in clients:
                await client.aclose()

    return asyncio.run(main())


def simultaneous_accept(app, token: str, password: str, *, times: int) -> list[int]:  # noqa: ANN001
    """POST the same invitation from `times` fresh browsers at the same moment; the status of each."""

    async def main() -> list[int]:
        clients = [_client(app) for _ in range(times)]
        try:
            tokens = [await _csrf(c, f"/invite/{token}") for c in clients]
            responses = await asyncio.gather(
                *(
                    c.post(f"/invite/{token}", data={"csrf_token": t, "password": password, "confirm": password})
                    for c, t in zip(clients, tokens)
                )
            )
            return [r.status_code for r in responses]
        finally:
            for client in clients:
                await client.aclose()

    return asyncio.run(main())
