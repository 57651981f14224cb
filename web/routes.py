"""Mount the web front end on the API app: static files (widget, demo page, GOV.UK Frontend),
the widget's configuration and the admin pages (web/admin.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.staticfiles import StaticFiles

from govchat.settings import Settings

WEB_DIR = Path(__file__).resolve().parent
STATIC_DIR = WEB_DIR / "static"
# GOV.UK's own fonts and images ship in the npm package only (they are for government services):
# served at /assets when GOVCHAT_BRAND_GOVUK=true and `npm ci` has been run in web/.
GOVUK_ASSETS_DIR = WEB_DIR / "node_modules" / "govuk-frontend" / "dist" / "govuk" / "assets"


def widget_config(settings: Settings) -> dict[str, Any]:
    from guardrails.definitions import input_rules

    return {
        "brand_name": settings.brand_name,
        "brand_govuk": settings.brand_govuk,
        "brand_colour": settings.brand_colour,
        "max_question_chars": input_rules().max_question_chars,
    }


def mount_web(app: FastAPI, settings: Settings) -> None:
    """Add the widget's routes, the admin pages and the static files to ``app``."""
    from web.admin import install_admin

    router = APIRouter(include_in_schema=False)

    @router.get("/widget/config.json")
    def config(request: Request) -> dict[str, Any]:
        return widget_config(settings)

    app.include_router(router)
    install_admin(app, settings)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    if settings.brand_govuk and GOVUK_ASSETS_DIR.is_dir():
        app.mount("/assets", StaticFiles(directory=GOVUK_ASSETS_DIR), name="govuk-assets")
