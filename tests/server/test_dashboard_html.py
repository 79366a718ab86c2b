"""The dashboard in process, on each database: sign-in, cookies, CSRF, headers, escaping, scope."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from taskpost.protocol import API_PREFIX
from taskpost.server.dashboard.sessions import SESSIONS
from tests.server.conftest import ADMIN_KEY, Api, ManualClock, running_api

pytestmark = pytest.mark.anyio

HOSTILE = '<script>alert("x")</script>'


@asynccontextmanager
async def browser(api: Api, base_url: str = "http://coordinator") -> AsyncIterator[httpx.AsyncClient]:
    """A client with its own cookie jar, like a second browser."""
    transport = httpx.ASGITransport(app=api.app, client=("127.0.0.1", 50001))
    async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
        yield client


def hidden_csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, key: str, next_path: str = "/dashboard") -> httpx.Response:
    form = await client.get("/dashboard/login")
    return await client.post(
        "/dashboard/login", data={"csrf": hidden_csrf(form.text), "api_key": key, "next": next_path}
    )


async def page_csrf(client: httpx.AsyncClient, path: str = "/dashboard") -> str:
    response = await client.get(path)
    assert response.status_code == 200, response.text
    return hidden_csrf(response.text)


def cookie_header(response: httpx.Response, name: str) -> str:
    found = [value for value in response.headers.get_list("set-cookie") if value.startswith(name + "=")]
    assert found, response.headers
    return found[0]


async def key_of(api: Api, role: str, *namespaces: str) -> str:
    headers = await api.new_key(role, *namespaces)
    return headers["Authorization"].removeprefix("Bearer ")


async def test_a_visitor_without_a_session_gets_the_sign_in_form_with_safe_headers(api: Api) -> None:
    async with browser(api) as client:
        response = await client.get("/dashboard/jobs")
    assert response.status_code == 401
    assert 'name="api_key"' in response.text and 'name="next" value="/dashboard/jobs"' in response.text
    assert response.headers["content-security-policy"].startswith("default-src 'self'")
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"
    login = cookie_header(response, "taskpost_login").lower()
    assert "httponly" in login and "samesite=strict" in login and "path=/dashboard" in login
    assert "secure" not in login
    assert "<script>" not in response.text.replace(
        '<script src="/dashboard/static/dashboard.js" defer></script>', ""
    )


async def test_a_wrong_key_is_refused_and_never_shown(api: Api) -> None:
    wrong = "tp_c_this-key-does-not-exist-anywhere"
    async with browser(api) as client:
        response = await sign_in(client, wrong)
        assert response.status_code == 401
        assert "unknown API key" in response.text
        assert wrong not in response.text
        assert "taskpost_session" not in response.headers.get("set-cookie", "")
        assert (await client.get("/dashboard")).status_code == 401


async def test_signing_in_sets_a_strict_httponly_session_cookie_and_shows_no_part_of_the_key(
    api: Api,
) -> None:
    key = await key_of(api, "client", "team-a")
    async with browser(api) as client:
        response = await sign_in(client, key, "/dashboard/jobs")
        assert response.status_code == 303 and response.headers["location"] == "/dashboard/jobs"
        session = cookie_header(response, "taskpost_session").lower()
        assert "httponly" in session and "samesite=strict" in session and "path=/dashboard" in session
        assert "secure" not in session
        for path in ("/dashboard", "/dashboard/jobs", "/dashboard/agents", "/dashboard/dead"):
            page = await client.get(path)
            assert page.status_code == 200, path
            assert key not in page.text and key[:10] not in page.text
            assert "team-a" in page.text
    async with api.coord.db.read() as conn:
        stored = (await conn.execute(select(SESSIONS.c.id))).scalars().all()
    assert len(stored) == 1 and key not in stored[0]


async def test_the_session_cookie_is_secure_over_https(api: Api) -> None:
    async with browser(api, base_url="https://coordinator") as client:
        response = await sign_in(client, ADMIN_KEY)
    assert response.status_code == 303
    assert "secure" in cookie_header(response, "taskpost_session").lower()


async def test_worker_and_metrics_keys_cannot_sign_in(api: Api) -> None:
    for role in ("worker", "metrics"):
        async with browser(api) as client:
            response = await sign_in(client, await key_of(api, role))
            assert response.status_code == 403, role
            assert "cannot sign in to the dashboard" in response.text


async def test_sign_in_without_the_forms_token_is_refused(api: Api) -> None:
    async with browser(api) as client:
        await client.get("/dashboard/login")
        response = await client.post("/dashboard/login", data={"csrf": "forged", "api_key": ADMIN_KEY})
    assert response.status_code == 403
    assert "taskpost_session" not in response.headers.get("set-cookie", "")


async def test_forms_without_the_sessions_csrf_token_change_nothing(api: Api) -> None:
    job = await api.submit()
    async with browser(api) as client:
        await sign_in(client, ADMIN_KEY)
        for data in ({}, {"csrf": "forged"}):
            refused = await client.post(f"/dashboard/jobs/{job['id']}/cancel", data=data)
            assert refused.status_code == 403
            assert "CSRF" in refused.text
        assert (await api.job(job["id"]))["state"] == "queued"
        cancelled = await client.post(
            f"/dashboard/jobs/{job['id']}/cancel", data={"csrf": await page_csrf(client)}
        )
        assert cancelled.status_code == 303
    assert (await api.job(job["id"]))["state"] == "cancelled"


async def test_logout_ends_the_session(api: Api) -> None:
    async with browser(api) as client:
        await sign_in(client, ADMIN_KEY)
        cookie = client.cookies["taskpost_session"]
        response = await client.post("/dashboard/logout", data={"csrf": await page_csrf(client)})
        assert response.status_code == 303
    async with browser(api) as stolen:
        stolen.cookies.set("taskpost_session", cookie, path="/dashboard")
        assert (await stolen.get("/dashboard")).status_code == 401


async def test_a_revoked_key_signs_its_sessions_out(api: Api) -> None:
    created = await api.http.post(f"{API_PREFIX}/keys", json={"role": "client"}, headers=api.auth("admin"))
    async with browser(api) as client:
        await sign_in(client, created.json()["key"])
        assert (await client.get("/dashboard")).status_code == 200
        revoked = await api.http.delete(
            f"{API_PREFIX}/keys/{created.json()['info']['id']}", headers=api.auth("admin")
        )
        assert revoked.status_code in (200, 204), revoked.text
        assert (await client.get("/dashboard")).status_code == 401


async def test_sessions_expire_and_the_reaper_deletes_them(api: Api, clock: ManualClock) -> None:
    async with browser(api) as client:
        await sign_in(client, ADMIN_KEY)
        clock.advance(api.coord.settings.dashboard_session_s + 1)
        assert (await client.get("/dashboard")).status_code == 401
    await api.reap()
    async with api.coord.db.read() as conn:
        assert (await conn.execute(select(func.count()).select_from(SESSIONS))).scalar_one() == 0


async def test_hostile_values_are_escaped_and_bad_filters_name_their_field(api: Api) -> None:
    job = await api.submit(params={"note": HOSTILE}, meta={"who": HOSTILE})
    async with browser(api) as client:
        await sign_in(client, ADMIN_KEY)
        page = await client.get(f"/dashboard/jobs/{job['id']}")
        assert page.status_code == 200
        assert HOSTILE not in page.text and "&lt;script&gt;" in page.text
        for query, field in (
            ({"type": HOSTILE}, "type"),
            ({"state": HOSTILE}, "state"),
            ({"q": '"><img src=x>'}, "q"),
            ({"priority": "urgent"}, "priority"),
            ({"cursor": "-1"}, "cursor"),
        ):
            response = await client.get("/dashboard/jobs", params=query)
            assert response.status_code == 422, query
            assert f"field: {field}" in response.text
            assert "<img src=x>" not in response.text and HOSTILE not in response.text
        missing = await client.get(f"/dashboard/jobs/{HOSTILE}")
        assert missing.status_code == 404 and HOSTILE not in missing.text


async def test_a_client_key_sees_its_own_namespace_only(api: Api) -> None:
    own = await api.submit(headers=await api.new_key("client", "a"))
    other = await api.submit(headers=await api.new_key("client", "b"))
    async with browser(api) as client:
        await sign_in(client, await key_of(api, "client", "a"))
        listed = (await client.get("/dashboard/jobs")).text
        assert own["id"][:8] in listed and other["id"][:8] not in listed
        assert (await client.get(f"/dashboard/jobs/{other['id']}")).status_code == 404
        assert (await client.get(f"/dashboard/jobs/{other['id']}/state.json")).status_code == 404
        refused = await client.post(
            f"/dashboard/jobs/{other['id']}/cancel", data={"csrf": await page_csrf(client)}
        )
        assert refused.status_code == 404
        assert (await client.get(f"/dashboard/jobs/{own['id']}")).status_code == 200


async def test_the_list_pages_by_cursor_and_filters_by_id_prefix(api: Api) -> None:
    submitted = [await api.submit() for _ in range(53)]
    async with browser(api) as client:
        await sign_in(client, ADMIN_KEY)
        first = await client.get("/dashboard/jobs")
        ids = re.findall(r'href="/dashboard/jobs/([0-9a-f-]{36})"', first.text)
        assert ids == [job["id"] for job in reversed(submitted)][:50]
        next_link = re.search(r'id="next-page" href="([^"]+)"', first.text)
        assert next_link
        second = await client.get(next_link.group(1).replace("&amp;", "&"))
        assert re.findall(r'href="/dashboard/jobs/([0-9a-f-]{36})"', second.text) == [
            job["id"] for job in reversed(submitted[:3])
        ]
        target = submitted[7]["id"]
        found = await client.get("/dashboard/jobs", params={"q": target[:6].upper()})
        assert target in re.findall(r'href="/dashboard/jobs/([0-9a-f-]{36})"', found.text)


async def dead_job(api: Api, kind: str) -> dict[str, Any]:
    job = await api.submit(max_attempts=1)
    worker = await api.register()
    [task] = await api.claim(worker)
    await api.complete(
        worker, task, outcome="failed", error_message=f"{kind} failed", error_kind=kind, retryable=False
    )
    assert (await api.job(job["id"]))["state"] == "dead"
    return job


async def test_dead_jobs_are_grouped_by_error_kind_and_requeued_one_or_all(api: Api) -> None:
    bad_input = await dead_job(api, "bad_input")
    gone = await dead_job(api, "gone")
    also_gone = await dead_job(api, "gone")
    async with browser(api) as client:
        await sign_in(client, ADMIN_KEY)
        page = await client.get("/dashboard/dead")
        kinds = re.findall(r'data-kind="([^"]+)"', page.text)
        assert kinds == ["gone", "bad_input"]
        one = await client.post(
            f"/dashboard/jobs/{bad_input['id']}/requeue",
            data={"csrf": hidden_csrf(page.text), "back": "/dashboard/dead"},
        )
        assert one.status_code == 303 and one.headers["location"] == "/dashboard/dead"
        assert (await api.job(bad_input["id"]))["state"] == "queued"
        every = await client.post("/dashboard/dead/requeue", data={"csrf": hidden_csrf(page.text)})
        assert every.headers["location"] == "/dashboard/dead?requeued=2"
    for job in (gone, also_gone):
        assert (await api.job(job["id"]))["state"] == "queued"


async def test_overview_counts_and_per_minute_completions(api: Api) -> None:
    worker = await api.register()
    await api.submit()
    await api.submit()
    [task] = await api.claim(worker)
    await api.complete(worker, task)
    async with browser(api) as client:
        await sign_in(client, ADMIN_KEY)
        page = await client.get("/dashboard")
    table = re.search(r'<table id="counts">.*?</table>', page.text, re.S)
    assert table and "noop" in table.group(0)
    assert re.search(r'<p class="big">1 <small>in the last hour', page.text)  # the completion
    assert 'id="agents-online">1<' in page.text


async def test_only_an_admin_drains_an_agent(api: Api) -> None:
    worker = await api.register()
    async with browser(api) as client:
        await sign_in(client, await key_of(api, "client"))
        refused = await client.post(
            f"/dashboard/agents/{worker}/drain", data={"csrf": await page_csrf(client)}
        )
        assert refused.status_code == 403
    async with browser(api) as client:
        await sign_in(client, ADMIN_KEY)
        drained = await client.post(
            f"/dashboard/agents/{worker}/drain", data={"csrf": await page_csrf(client)}
        )
        assert drained.status_code == 303
    workers = (await api.http.get(f"{API_PREFIX}/workers", headers=api.auth("admin"))).json()
    assert [w["draining"] for w in workers if w["id"] == worker] == [True]


async def test_static_files_have_an_etag_and_nothing_else_is_served(api: Api) -> None:
    async with browser(api) as client:
        script = await client.get("/dashboard/static/dashboard.js")
        assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
        again = await client.get(
            "/dashboard/static/dashboard.js", headers={"If-None-Match": script.headers["etag"]}
        )
        assert again.status_code == 304
        for name in ("../routes.py", "routes.py", ".hidden.js", "missing.css"):
            assert (await client.get(f"/dashboard/static/{name}")).status_code == 404, name


async def test_failed_sign_ins_run_into_the_limit(
    tmp_path: Any, database_url: str, clock: ManualClock
) -> None:
    from tests.server.conftest import make_settings

    settings = make_settings(tmp_path / "data", database_url).model_copy(update={"auth_failure_burst": 2})
    async with running_api(settings, clock) as api, browser(api) as client:
        statuses = [(await sign_in(client, "tp_c_wrong-key-" + str(n))).status_code for n in range(3)]
        assert statuses == [401, 401, 429]
        assert (await sign_in(client, ADMIN_KEY)).status_code == 429


@pytest.mark.parametrize("path", ["/dashboard", "/dashboard/jobs", "/dashboard/agents", "/dashboard/dead"])
async def test_dashboard_routes_are_not_in_the_openapi_document(api: Api, path: str) -> None:
    document = (await api.http.get("/openapi.json")).json()
    assert path not in document["paths"]


async def test_the_job_event_stream_behind_the_cookie_ends_with_the_job(api: Api) -> None:
    job = await api.submit(headers=await api.new_key("client", "a"))
    worker = await api.register()
    [task] = await api.claim(worker)
    await api.complete(worker, task)
    async with browser(api) as client:
        path = f"/dashboard/jobs/{job['id']}/events/stream"
        assert (await client.get(path)).status_code == 401
        await sign_in(client, await key_of(api, "client", "a"))
        stream = await client.get(path)
        assert stream.headers["content-type"].startswith("text/event-stream")
        states = re.findall(r'"state":"([a-z]+)"', stream.text)
        assert states[0] == "queued" and states[-1] == "completed"
        last_id = re.findall(r"^id: ([0-9]+)$", stream.text, re.M)[-2]
        rest = await client.get(path, headers={"Last-Event-ID": last_id})
        assert re.findall(r'"state":"([a-z]+)"', rest.text) == ["completed"]
        after = await client.get(path, params={"after": last_id})
        assert re.findall(r'"state":"([a-z]+)"', after.text) == ["completed"]
        page = await client.get(f"/dashboard/jobs/{job['id']}")
        assert re.search(r'data-stream="[^"]*\?after=[1-9][0-9]*"', page.text)
    async with browser(api) as other:
        await sign_in(other, await key_of(api, "client", "b"))
        assert (await other.get(path)).status_code == 404
