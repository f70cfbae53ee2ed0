"""The admin UI's route table, and the one function the app factory calls to mount it."""

from __future__ import annotations

from pathlib import Path

from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from admin.api import AdminApi
from admin.complexity_api import ComplexityApi
from admin.forecast_api import ForecastApi
from admin.ledger_api import LedgerApi
from admin.privacy_api import PrivacyApi
from admin.prompts_api import PromptsApi
from admin.recommendations_api import RecommendationsApi
from admin.ui.backend import Backend
from admin.ui.pages.audit import Audit
from admin.ui.pages.forecasts import Forecasts as ForecastsPage
from admin.ui.pages.keys import Keys
from admin.ui.pages.models import Models
from admin.ui.pages.overview import Overview
from admin.ui.pages.playground import Playground
from admin.ui.pages.privacy import Privacy
from admin.ui.pages.prompts import Prompts
from admin.ui.pages.recommendations import Recommendations
from admin.ui.pages.requests import Requests
from admin.ui.pages.signin import SignIn
from admin.ui.pages.teams import Teams
from admin.ui.passwords import PasswordChecker
from admin.ui.session import Sessions, Signer
from admin.ui.web import Ui
from gateway.config.settings import Settings
from gateway.identity.access import Access
from gateway.identity.store.users import UserStore
from gateway.routing.router import Router

STATIC = Path(__file__).parent / "static"


def admin_ui_routes(admin: AdminApi, ledger: LedgerApi, router: Router, access: Access, settings: Settings, *,
                    complexity: ComplexityApi | None = None, forecasts: ForecastApi | None = None,
                    prompts: PromptsApi | None = None, privacy: PrivacyApi | None = None,
                    recommendations: RecommendationsApi | None = None) -> list[BaseRoute]:
    assert settings.master_key is not None
    signer = Signer(settings.admin_session_secret or settings.master_key)
    ui = Ui(Backend(admin, ledger), Sessions(signer, settings.admin_session_ttl_s),
            users=lambda: UserStore.of(access.store),
            master_fingerprint=signer.fingerprint(settings.master_key.get_secret_value()))
    models = [group.name for group in router.groups]
    sign_in = SignIn(ui, settings.master_key, PasswordChecker(), admin.auth.throttle)
    overview, teams, keys = Overview(ui), Teams(ui), Keys(ui, models)
    requests, audit = Requests(ui, models), Audit(ui)
    model_page, playground = Models(ui, router, settings.workers, complexity), Playground(ui, models)
    page = ui.page

    async def to_overview(_: object) -> Response:
        return RedirectResponse("/admin", 308)

    return [
        Route("/admin", page(overview.show), methods=["GET"]),
        Route("/admin/", to_overview, methods=["GET"]),
        Route("/admin/login", sign_in.show, methods=["GET"]),
        Route("/admin/login", sign_in.submit, methods=["POST"]),
        Route("/admin/logout", page(sign_in.sign_out), methods=["POST"]),
        Route("/admin/teams", page(teams.list), methods=["GET"]),
        Route("/admin/teams", page(teams.create, change=True), methods=["POST"]),
        Route("/admin/teams/{team_id}", page(teams.show), methods=["GET"]),
        Route("/admin/teams/{team_id}", page(teams.update, change=True), methods=["POST"]),
        Route("/admin/teams/{team_id}/delete", page(teams.delete, change=True), methods=["POST"]),
        Route("/admin/keys", page(keys.list), methods=["GET"]),
        Route("/admin/keys", page(keys.create, change=True), methods=["POST"]),
        Route("/admin/keys/{key_id}", page(keys.show), methods=["GET"]),
        Route("/admin/keys/{key_id}", page(keys.update, change=True), methods=["POST"]),
        Route("/admin/keys/{key_id}/rotate", page(keys.rotate, change=True), methods=["POST"]),
        Route("/admin/keys/{key_id}/revoke", page(keys.revoke, change=True), methods=["POST"]),
        Route("/admin/models", page(model_page.show), methods=["GET"]),
        Route("/admin/requests", page(requests.list), methods=["GET"]),
        Route("/admin/requests/{request_id}", page(requests.show), methods=["GET"]),
        Route("/admin/audit", page(audit.list), methods=["GET"]),
        *([Route("/admin/forecasts", page(ForecastsPage(ui, forecasts).show), methods=["GET"])] if forecasts else []),
        *([Route("/admin/recommendations", page(Recommendations(ui, recommendations).show), methods=["GET"])]
          if recommendations else []),
        *(_prompt_routes(ui, prompts) if prompts else []),
        *(_privacy_routes(ui, privacy) if privacy else []),
        Route("/admin/playground", page(playground.show), methods=["GET"]),
        Mount("/admin/static", StaticFiles(directory=STATIC), name="admin-static"),
    ]


def _prompt_routes(ui: Ui, api: PromptsApi) -> list[BaseRoute]:
    prompts = Prompts(ui, api)
    return [
        Route("/admin/prompts", ui.page(prompts.list), methods=["GET"]),
        Route("/admin/prompts", ui.page(prompts.create, change=True), methods=["POST"]),
        Route("/admin/prompts/{template_id}", ui.page(prompts.show), methods=["GET"]),
        Route("/admin/prompts/{template_id}/versions", ui.page(prompts.add_version, change=True), methods=["POST"]),
        Route("/admin/prompts/{template_id}/labels", ui.page(prompts.label, change=True), methods=["POST"]),
    ]


def _privacy_routes(ui: Ui, api: PrivacyApi) -> list[BaseRoute]:
    privacy = Privacy(ui, api)
    return [
        Route("/admin/privacy", ui.page(privacy.show), methods=["GET"]),
        Route("/admin/privacy", ui.page(privacy.act, change=True), methods=["POST"]),
    ]
