"""The dashboard in a real browser: sign in, watch a job live, requeue, drain, namespaces, CSRF."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import Page, expect

from tests.dashboard.conftest import screenshot, sign_in
from tests.e2e.conftest import ADMIN_KEY, Cluster, wait_until


def new_key(cluster: Cluster, role: str, *namespaces: str) -> str:
    response = cluster.http.post("/keys", json={"role": role, "namespaces": list(namespaces)})
    assert response.status_code == 201, response.text
    key: str = response.json()["key"]
    return key


def test_sign_in_form_refuses_a_wrong_key_then_signs_in(page: Page, cluster: Cluster) -> None:
    page.goto(cluster.url + "/dashboard")
    expect(page.locator("h1")).to_have_text("Sign in")
    screenshot(page, "sign-in")
    page.fill("#api_key", "tp_a_not-a-key-of-this-coordinator")
    page.click("#signin button[type=submit]")
    expect(page.locator("#signin-error")).to_contain_text("unknown API key")
    assert "not-a-key-of-this-coordinator" not in page.content()
    page.fill("#api_key", ADMIN_KEY)
    page.click("#signin button[type=submit]")
    expect(page.locator("h1")).to_have_text("Overview")
    expect(page.locator(".who")).to_contain_text("admin")


def test_a_job_goes_from_queued_to_completed_live_without_a_reload(page: Page, cluster: Cluster) -> None:
    job = cluster.submit(params={"sleep_s": 4})
    sign_in(page, cluster, ADMIN_KEY, f"/dashboard/jobs/{job['id']}")
    expect(page.locator("#job-state")).to_have_text("queued")
    page.evaluate("window.__marker = 'still the same page'")
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    cluster.start_agent()
    seen: list[float] = []

    def progress_then_done() -> bool:
        value = page.evaluate("document.getElementById('job-progress').position")
        if value >= 0 and (not seen or value != seen[-1]):
            seen.append(value)
        return page.inner_text("#job-state") == "completed"

    wait_until(progress_then_done, 60, "the page to show the job completed")
    expect(page.locator("#timeline")).to_contain_text("state: completed")
    expect(page.locator("#job-ended")).not_to_be_empty()
    assert page.evaluate("window.__marker") == "still the same page"
    between = [value for value in seen if 0 < value < 1]
    assert len(between) >= 2 and between == sorted(between), seen
    assert page.evaluate("document.getElementById('job-progress').value") == 1
    # Fed by the event stream: the state is read once more at the end, never polled.
    assert [url for url in asked if url.endswith("/state.json")] == [
        f"{cluster.url}/dashboard/jobs/{job['id']}/state.json"
    ]
    screenshot(page, "job")


def test_a_dead_job_is_requeued_from_the_dead_letters(page: Page, cluster: Cluster) -> None:
    cluster.start_agent()
    job = cluster.submit(params={"fail": "bad input", "fail_retryable": False}, max_attempts=1)
    cluster.wait_job(job["id"], {"dead"})
    sign_in(page, cluster, ADMIN_KEY, "/dashboard/dead")
    group = page.locator(".dead-group[data-kind=noop_failure]")
    expect(group).to_contain_text("bad input")
    screenshot(page, "dead")
    group.locator(f"tr[data-job='{job['id']}'] button").click()
    expect(page.locator("h1")).to_have_text("Dead letters")
    kinds = [event["kind"] for event in cluster.events(job["id"])]
    assert "requeued" in kinds
    # The agent runs it again: it fails again, after a second attempt's event.
    wait_until(
        lambda: (
            len([k for k in (e["kind"] for e in cluster.events(job["id"])) if k == "attempt_failed"]) == 2
        ),
        30,
        "the second attempt",
    )


def test_an_agent_is_drained_from_the_agents_page(page: Page, cluster: Cluster) -> None:
    cluster.start_agent(name="drain-me")
    [agent] = cluster.wait_agents(1)
    sign_in(page, cluster, ADMIN_KEY, "/dashboard/agents")
    row = page.locator(f"tr[data-agent='{agent['id']}']")
    expect(row.locator(".status")).to_have_text("online")
    screenshot(page, "agents")
    row.locator("button").click()
    expect(row.locator(".status")).to_have_text("draining")
    workers: list[dict[str, Any]] = cluster.http.get("/workers").json()
    assert [w["draining"] for w in workers if w["id"] == agent["id"]] == [True]


def test_a_client_key_sees_no_other_namespaces_job(page: Page, cluster: Cluster) -> None:
    other = cluster.client(new_key(cluster, "client", "b")).post("/jobs", json={"type": "noop"}).json()["job"]
    own = cluster.client(new_key(cluster, "client", "a")).post("/jobs", json={"type": "noop"}).json()["job"]
    sign_in(page, cluster, new_key(cluster, "client", "a"), "/dashboard/jobs")
    expect(page.locator("#jobs")).to_contain_text(own["id"][:8])
    assert other["id"][:8] not in page.inner_text("#jobs")
    response = page.goto(f"{cluster.url}/dashboard/jobs/{other['id']}")
    assert response is not None and response.status == 404
    expect(page.locator("#error-message")).to_contain_text("no job has id")


def test_a_forged_csrf_token_is_refused_and_logout_signs_out(page: Page, cluster: Cluster) -> None:
    sign_in(page, cluster, ADMIN_KEY)
    page.evaluate("document.querySelector('form.logout input[name=csrf]').value = 'forged'")
    page.click("#logout")
    expect(page.locator("#error-message")).to_contain_text("CSRF")
    page.goto(cluster.url + "/dashboard")
    expect(page.locator("h1")).to_have_text("Overview")
    page.click("#logout")
    expect(page.locator("h1")).to_have_text("Sign in")
    page.goto(cluster.url + "/dashboard/jobs")
    expect(page.locator("h1")).to_have_text("Sign in")


def test_overview_and_job_list_render(page: Page, cluster: Cluster) -> None:
    cluster.start_agent()
    done = [cluster.submit(params={"n": n}) for n in range(3)]
    for job in done:
        cluster.wait_job(job["id"], {"completed"})
    cluster.submit(params={"fail": "broken", "fail_retryable": False}, max_attempts=1, priority="high")
    sign_in(page, cluster, ADMIN_KEY)
    expect(page.locator("#counts")).to_contain_text("noop")
    expect(page.locator("#agents-online")).to_have_text("1")
    screenshot(page, "overview")
    page.click("nav a[href='/dashboard/jobs']")
    expect(page.locator("#jobs tbody tr")).to_have_count(4)
    page.select_option("select[name=state]", "completed")
    page.click(".filters button")
    expect(page.locator("#jobs tbody tr")).to_have_count(3)
    assert re.search(r"state=completed", page.url)
    screenshot(page, "jobs")
