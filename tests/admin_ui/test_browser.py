"""The admin UI end to end in a real headless Chromium, against a gateway on real PostgreSQL:
sign in, make a team and a key, use the key through the `openai` SDK, find the request and its cost
on the Requests and Overview pages, revoke the key and see the next call refused.

Screenshots of every page go to test-artifacts/admin_ui/.
"""

from __future__ import annotations

import re
import secrets
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import openai
import pytest
from playwright.sync_api import Page, expect

from admin.ui.formats import usd
from tests.admin_ui.conftest import PRICE, UiGateway, shot, sign_in
from tests.procs import MASTER_KEY

LEDGER_WAIT_S = 30


def cost_of(usage: openai.types.CompletionUsage) -> Decimal:
    return (usage.prompt_tokens * Decimal(PRICE["input_per_mtok"])
            + usage.completion_tokens * Decimal(PRICE["output_per_mtok"])) / 1_000_000


def reload_until_rows(page: Page, rows: str, count: int) -> None:
    """The ledger writes rows in batches just after each request: reload until the page shows them all."""
    deadline = time.monotonic() + LEDGER_WAIT_S
    while page.locator(rows).count() < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{page.url} never showed {count} rows")
        page.wait_for_timeout(250)
        page.reload()


def test_sign_in_make_a_team_and_key_use_it_see_it_revoke_it(page: Page, ui_gateway: UiGateway) -> None:
    seen: dict[str, str] = {}  # every page visited after the key was shown, and its HTML

    def visit(path: str, name: str) -> None:
        page.goto(path)
        shot(page, name)
        seen[path] = page.content()

    sign_in(page, ui_gateway.admin)
    expect(page.locator(".who")).to_have_text("user:ada · admin")

    # A team, with a wrong value first: the field is named, and nothing is created.
    team_name = f"search-{secrets.token_hex(3)}"
    page.goto("/admin/teams")
    page.fill("#create-team #f-name", team_name)
    page.fill("#create-team #f-rpm", "lots")
    page.click("#create-team-submit")
    expect(page.locator("#form-error")).to_contain_text("rpm")
    expect(page.locator("#create-team .field.invalid #f-rpm")).to_have_value("lots")
    shot(page, "teams-invalid-input")
    page.fill("#create-team #f-rpm", "600")
    page.fill("#create-team #f-budget_usd", "25")
    page.select_option("#create-team #f-budget_period", "monthly")
    page.click("#create-team-submit")
    expect(page.locator("#flash")).to_contain_text(f"Team “{team_name}” created.")
    team_id = page.url.rsplit("/", 1)[1]
    assert team_id.startswith("team_")
    shot(page, "team-new")

    # A key for it: the full key is shown once, with a copy button that works.
    page.goto(f"/admin/keys?team_id={team_id}")
    page.fill("#create-key #f-name", "search-prod")
    page.fill("#create-key #f-allowed_models", "gpt-test")
    page.fill("#create-key #f-budget_usd", "10")
    page.click("#create-key-submit")
    key = (page.text_content("#new-key") or "").strip()
    assert re.fullmatch(r"sk-gw-[0-9A-Za-z]{43}", key)
    page.click("#copy-key")
    expect(page.locator("#copy-status")).to_have_text("Copied.")
    assert page.evaluate("navigator.clipboard.readText()") == key
    shot(page, "key-created")
    page.click("#to-key")
    key_id = page.url.rsplit("/", 1)[1]

    # The key works through the official SDK, streamed or not, for its model only.
    client = openai.OpenAI(base_url=ui_gateway.gw.url, api_key=key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model="gpt-test",
                                                           messages=[{"role": "user", "content": "hello"}])
    reply = raw.parse()
    assert reply.usage is not None and reply.choices[0].message.content
    raw_stream = client.chat.completions.with_raw_response.create(
        model="gpt-test", messages=[{"role": "user", "content": "again"}], stream=True,
        stream_options={"include_usage": True})
    streamed_usage = list(raw_stream.parse())[-1].usage
    assert streamed_usage is not None
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model="other", messages=[{"role": "user", "content": "no"}])
    costs = {raw.headers["x-request-id"]: cost_of(reply.usage),
             raw_stream.headers["x-request-id"]: cost_of(streamed_usage)}
    total = sum(costs.values(), Decimal(0))

    # The requests on the Requests page, filtered by key, each with its cost; one of them in detail.
    page.goto(f"/admin/requests?key={key_id}")
    reload_until_rows(page, "#requests tbody tr", 3)
    expect(page.locator("#requests tbody tr")).to_have_count(3)
    expect(page.locator("#requests tr.failed")).to_contain_text("403")
    for request_id, cost in costs.items():
        row = page.locator(f'#requests tr[data-request-id="{request_id}"]')
        expect(row.locator("td.cost")).to_have_text(usd(cost))
        expect(row.locator("a.request-id")).to_have_text(request_id)  # whole: ids differ only at the end
    shot(page, "requests")
    seen[page.url] = page.content()
    first_id = next(iter(costs))
    page.locator(f'#requests tr[data-request-id="{first_id}"] td a').first.click()
    expect(page.locator("h1")).to_contain_text(first_id)
    # Rounded as everywhere else, and (where the rounding hides digits) exactly as the ledger has it.
    expect(page.locator("#request-cost")).to_contain_text(usd(costs[first_id]))
    shot(page, "request-detail")
    seen[page.url] = page.content()

    # Filters that do not match show nothing; a bad one names the field.
    page.goto(f"/admin/requests?key={key_id}&status=500")
    expect(page.locator("#no-requests")).to_be_visible()
    page.goto("/admin/requests?status=abc")
    expect(page.locator("#form-error")).to_contain_text("status")

    # Overview: the team's spend this month and today's requests include them.
    visit("/admin", "overview")
    expect(page.locator("#top-teams")).to_contain_text(team_name)
    team_row = page.locator("#top-teams tr", has_text=team_name)
    expect(team_row.locator("td").nth(3)).to_have_text(usd(total))
    expect(team_row.locator("td").nth(1)).to_have_text("3")
    assert (page.text_content("#spend-today strong") or "") != "$0.00"
    expect(page.locator("#top-models")).to_contain_text("gpt-test")
    assert page.locator("#top-teams svg.chart rect.bar").count() >= 1
    # The only key that spent on this gateway so far (the browser tests run first on it).
    key_row = page.locator(f'#top-keys tr[data-key-id="{key_id}"]')
    expect(key_row).to_contain_text("search-prod")
    expect(key_row.locator("td.requests")).to_have_text("3")
    expect(key_row.locator("td.spend")).to_have_text(usd(total))

    # The key's page shows what it spent against its budget; the team's page lists the key.
    # With a budget, that is the limiter's counter (which rounds each request up to a micro-dollar),
    # as the admin API reports it.
    visit(f"/admin/keys/{key_id}", "key")
    spend = httpx.get(f"{ui_gateway.base}/admin/api/keys/{key_id}/spend",
                      headers={"authorization": f"Bearer {MASTER_KEY}"}).json()["spend"]
    assert spend is not None and total <= Decimal(spend["spent_usd"]) <= total + Decimal("0.000002")
    expect(page.locator("#key-budget")).to_contain_text(f"{usd(spend['spent_usd'])} of $10.00")
    visit(f"/admin/teams/{team_id}", "team")
    expect(page.locator("#team-keys")).to_contain_text("search-prod")
    # The same figure for the key on its team's page and on the Keys page.
    expect(page.locator(f'#team-keys tr[data-key-id="{key_id}"]')).to_contain_text(
        f"{usd(spend['spent_usd'])} of $10.00")
    visit("/admin/keys", "keys")
    expect(page.locator(f'#keys tr[data-key-id="{key_id}"]')).to_contain_text(f"{usd(spend['spent_usd'])} of $10.00")
    visit("/admin/teams", "teams")

    # Models: each deployment with its circuit and what this worker measured.
    visit("/admin/models", "models")
    expect(page.locator('tr[data-deployment="gpt-test/0"]')).to_contain_text("closed")
    expect(page.locator('tr[data-deployment="gpt-test/0"] td').nth(3)).not_to_have_text("—")

    # The playground streams an answer with a pasted key.
    visit("/admin/playground", "playground-empty")
    page.fill("#pg-key", key)
    page.select_option("#pg-model", "gpt-test")
    page.fill("#pg-message", "Say something.")
    page.click("#pg-send")
    expect(page.locator("#pg-state")).to_have_text("done")
    assert (page.text_content("#pg-output") or "").strip()
    expect(page.locator("#pg-meta")).to_contain_text("tokens in")
    shot(page, "playground")
    seen["/admin/playground (after a call)"] = page.content()

    # Revoke it from its page (the confirmation accepted): the next call is refused.
    page.goto(f"/admin/keys/{key_id}")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#revoke-key")
    expect(page.locator("#flash")).to_contain_text("revoked")
    expect(page.locator("#key-status")).to_contain_text("revoked")
    shot(page, "key-revoked")
    seen[page.url] = page.content()
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "still there?"}])

    # The audit log names the signed-in user for each change.
    visit("/admin/audit", "audit")
    for action in ("team.create", "key.create", "key.revoke"):
        expect(page.locator("#audit tr", has_text=action).filter(has_text=key_id if "key" in action else team_id)
               .first).to_contain_text("user:ada")

    # After its creation page, the full key appeared on no page at all.
    assert seen and not [path for path, html in seen.items() if key in html]


def test_master_key_sign_in_and_sign_out(page: Page, ui_gateway: UiGateway) -> None:
    page.goto("/admin/login")
    page.fill("#f-password", "not the master key")
    page.click("#sign-in")
    expect(page.locator("#form-error")).to_contain_text("not right")
    shot(page, "login-failed")
    sign_in(page, None, MASTER_KEY)
    expect(page.locator(".who")).to_have_text("master · admin")
    page.click(".signout button")
    expect(page.locator("#flash")).to_have_text("Signed out.")
    page.goto("/admin/keys")
    assert "/admin/login" in page.url


def test_viewer_sees_pages_but_no_forms(page: Page, ui_gateway: UiGateway) -> None:
    sign_in(page, ui_gateway.viewer)
    for path, name in (("/admin/teams", "viewer-teams"), ("/admin/keys", "viewer-keys")):
        page.goto(path)
        expect(page.locator(".readonly")).to_be_visible()
        expect(page.locator("main form[method=post]")).to_have_count(0)
        shot(page, name)


def test_overview_date_range(page: Page, ui_gateway: UiGateway) -> None:
    sign_in(page, ui_gateway.admin)
    expect(page.locator("#range-note")).to_contain_text("the last 30 days")
    assert page.locator("svg.chart.stretch rect.bar").count() == 2 * 30  # two day charts
    today = datetime.now(UTC).date()
    week_ago = today - timedelta(days=6)

    page.fill("#f-start", today.isoformat())
    page.fill("#f-end", (today - timedelta(days=1)).isoformat())
    page.click("#apply-range")
    expect(page.locator("#form-error")).to_contain_text("must not be after")
    expect(page.locator("#f-start")).to_have_attribute("aria-invalid", "true")
    shot(page, "overview-range-invalid")

    page.fill("#f-start", week_ago.isoformat())
    page.fill("#f-end", today.isoformat())
    page.click("#apply-range")
    expect(page.locator("#range-note")).to_contain_text(f"{week_ago} to {today}")
    expect(page.locator("#top-keys h2")).to_contain_text(f"{week_ago} to {today}")
    assert page.locator("svg.chart.stretch rect.bar").count() == 2 * 7
    expect(page.locator("#f-start")).to_have_value(week_ago.isoformat())
    shot(page, "overview-range")
    page.click("text=Default range")
    expect(page.locator("#range-note")).to_contain_text("the last 30 days")


def test_prompt_template_a_new_version_and_a_label_moved_and_rolled_back(page: Page, ui_gateway: UiGateway) -> None:
    sign_in(page, ui_gateway.admin)
    name = f"support-{secrets.token_hex(3)}"
    page.goto("/admin/prompts")
    page.fill("#new-template #f-name", name)
    page.fill("#new-template #f-content_0", "You help {{customer}}.")
    page.fill("#new-template #f-content_1", "Hello")
    page.click("#new-template-submit")
    expect(page.locator("#flash")).to_contain_text(f"Template “{name}” created.")
    template_id = page.url.rsplit("/", 1)[1]
    assert template_id.startswith("tmpl_")

    # The new version's form starts as version 1; a wrong value is named and nothing is saved.
    expect(page.locator("#new-version #f-content_0")).to_have_value("You help {{customer}}.")
    page.fill("#new-version #f-content_0", "You help {{customer}} kindly,\nin {{language}}.")
    page.fill("#new-version #f-params", "warm")
    page.click("#new-version-submit")
    expect(page.locator("#form-error")).to_contain_text("params")
    expect(page.locator("#new-version #f-content_0")).to_have_value("You help {{customer}} kindly,\nin {{language}}.")
    expect(page.locator("#versions tr[data-version]")).to_have_count(1)
    shot(page, "prompt-version-invalid")
    page.fill("#new-version #f-params", '{"temperature": 0.2}')
    page.fill("#new-version #f-note", "kinder, and in the customer's language")
    page.click("#new-version-submit")
    expect(page.locator("#flash")).to_contain_text("Version 2 created.")
    expect(page.locator("#versions tr[data-version]")).to_have_count(2)
    expect(page.locator("#diff")).to_contain_text("+[system] in {{language}}.")
    shot(page, "prompt-version-new")

    # Move production to version 2, then to 1, then roll it back to 2.
    for version in ("2", "1"):
        page.fill("#move-label input[name=label]", "production")
        page.fill("#move-label input[name=version]", version)
        page.click("#move-label button[value=move]")
        expect(page.locator("#flash")).to_contain_text(f"now points at version {version}")
    expect(page.locator("li[data-label=production]")).to_contain_text("version 1 (before: 2)")
    page.fill("#move-label input[name=label]", "production")
    page.click("#move-label button[value=rollback]")
    expect(page.locator("#flash")).to_contain_text("now points at version 2")
    expect(page.locator("li[data-label=production]")).to_contain_text("version 2")
    shot(page, "prompt-label-rolled-back")

    # What the UI did is what the API holds, with every change in the audit log.
    api = httpx.get(f"{ui_gateway.gw.base}/admin/api/prompts/{template_id}",
                    headers={"authorization": f"Bearer {MASTER_KEY}"}).json()
    assert api["labels"]["production"]["version"] == 2
    assert api["versions"][1]["params"] == {"temperature": 0.2}
    assert api["versions"][1]["variables"] == ["customer", "language"]
    assert api["versions"][1]["created_by"] == "user:ada"
