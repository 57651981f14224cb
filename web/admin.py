"""Admin pages (server-rendered, GOV.UK Frontend styles) and their JSON API, all under /admin.

Access needs the admin token (GOVCHAT_ADMIN_TOKEN): either `Authorization: Bearer <token>`, or
a cookie set by the login form. The cookie holds an HMAC of the token (never the token),
is HttpOnly, SameSite=Strict and limited to /admin; every POST made with the cookie must also
carry the CSRF token (a form field or an X-CSRF-Token header). With no token configured the
admin pages do not exist (404 with a message saying how to turn them on).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from govchat.settings import Settings
from web.index_jobs import IndexJobs, JobBusy, JobRefused

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).resolve().parent / "templates"))
COOKIE = "govchat_admin"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
REPORT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
PAGE_SIZE = 50
NO_STORE = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def _http_url(value: Any) -> str:
    """Only http(s) URLs become links; anything else (javascript:, data:) becomes '#'."""
    text = str(value or "")
    return text if re.match(r"^https?://", text, re.IGNORECASE) else "#"


def _fmt(value: Any, spec: str = ".3f") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return format(value, spec)
    return str(value)


TEMPLATES.env.filters["http_url"] = _http_url
TEMPLATES.env.filters["fmt"] = _fmt
TEMPLATES.env.filters["tojson_pretty"] = lambda v: json.dumps(v, indent=2, ensure_ascii=False)


# ----------------------------------------------------------------------------- auth


class LoginRequired(Exception):
    """An HTML admin page was requested without a valid token: show the login form (401)."""


def _token(settings: Settings) -> str | None:
    return settings.admin_token.get_secret_value() if settings.admin_token else None


def _derive(token: str, purpose: str) -> str:
    return hmac.new(token.encode(), f"govchat-admin:{purpose}".encode(), hashlib.sha256).hexdigest()


def _same(a: str | None, b: str) -> bool:
    return a is not None and hmac.compare_digest(a.encode(), b.encode())


async def _form(request: Request) -> dict[str, str]:
    """A urlencoded form body (no python-multipart needed); first value of each field."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return {}
    body = (await request.body()).decode("utf-8", errors="replace")
    return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}


def _settings(request: Request) -> Settings:
    return request.app.state.services.settings


async def _authorise(request: Request, *, page: bool) -> None:
    token = _token(_settings(request))
    if token is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            "the admin pages are off: set GOVCHAT_ADMIN_TOKEN to use them",
        )
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        if _same(auth[7:].strip(), token):
            return
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "invalid admin token", {"WWW-Authenticate": "Bearer"}
        )
    if _same(request.cookies.get(COOKIE), _derive(token, "session")):
        if request.method not in ("GET", "HEAD"):
            sent = request.headers.get(CSRF_HEADER) or (await _form(request)).get(CSRF_FIELD)
            if not _same(sent, _derive(token, "csrf")):
                raise HTTPException(status.HTTP_403_FORBIDDEN, "missing or wrong CSRF token")
        return
    if page:
        raise LoginRequired
    raise HTTPException(
        status.HTTP_401_UNAUTHORIZED, "an admin token is required", {"WWW-Authenticate": "Bearer"}
    )


async def admin_page(request: Request) -> None:
    await _authorise(request, page=True)


async def admin_api(request: Request) -> None:
    await _authorise(request, page=False)


def _render(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
    settings = _settings(request)
    token = _token(settings)
    context.setdefault("nav", "")
    context.update(
        brand_name=settings.brand_name,
        csrf_token=_derive(token, "csrf") if token else "",
        logged_in_with_cookie=bool(request.cookies.get(COOKIE)),
    )
    response = TEMPLATES.TemplateResponse(request, name, context, status_code=status_code)
    response.headers.update(NO_STORE)
    return response


# ----------------------------------------------------------------------------- data


def _jobs(request: Request) -> IndexJobs:
    return request.app.state.index_jobs


def _page_status(request: Request) -> list[dict[str, Any]]:
    """Every page in the index with its chunk count, plus pages that failed in the last run."""
    services = request.app.state.services
    pages: dict[str, dict[str, Any]] = {}
    if services.store is not None:
        counts: dict[str, int] = defaultdict(int)
        titles: dict[str, str] = {}
        for chunk in services.store.stored_chunks(fields=("base_path", "title", "document_type")):
            counts[chunk.base_path] += 1
            titles.setdefault(chunk.base_path, chunk.payload.get("title", ""))
            titles[chunk.base_path] = titles[chunk.base_path] or chunk.payload.get("title", "")
        for path, n in counts.items():
            pages[path] = {
                "base_path": path,
                "title": titles[path],
                "chunks": n,
                "status": "indexed",
            }
    from ingest.runs import RunLog

    completed = [r for r in RunLog(services.sessions).recent(20) if r["status"] == "completed"]
    latest = next((r for r in completed if not r["dry_run"]), None)
    for err in (latest or {}).get("errors", []):
        path = err.get("base_path")
        if path:
            entry = pages.setdefault(path, {"base_path": path, "title": "", "chunks": 0})
            entry["status"] = "failed"
            entry["error"] = err.get("error", "")
    return sorted(pages.values(), key=lambda p: (p["status"] != "failed", p["base_path"]))


def _runs(request: Request, limit: int = 15) -> list[dict[str, Any]]:
    from ingest.runs import RunLog

    return RunLog(request.app.state.services.sessions).recent(limit)


def _parse_day(value: str | None, field: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise HTTPException(422, f"{field} must be a date like 2025-01-31") from None


@dataclass(frozen=True)
class QuestionFilters:
    """The question browser's filters: `params` as given (for links), `query` for the
    repository's `list_answers`."""

    params: dict[str, str]
    query: dict[str, Any]


def question_filters(
    status_: Annotated[str | None, Query(alias="status", max_length=40)] = None,
    route: Annotated[str | None, Query(max_length=50)] = None,
    feedback: Annotated[str | None, Query(max_length=20)] = None,
    from_: Annotated[str | None, Query(alias="from", max_length=10)] = None,
    to: Annotated[str | None, Query(max_length=10)] = None,
) -> QuestionFilters:
    """A FastAPI dependency shared by the questions page and its JSON twin."""
    if feedback not in (None, "", "useful", "not_useful", "any", "none"):
        raise HTTPException(422, "feedback must be useful, not_useful, any or none")
    since = _parse_day(from_, "from")
    until = _parse_day(to, "to")
    given = {"status": status_, "route": route, "feedback": feedback, "from": from_, "to": to}
    return QuestionFilters(
        params={k: v for k, v in given.items() if v},
        query={
            "status": status_ or None,
            "route": route or None,
            "feedback": feedback or None,
            "since": datetime.combine(since, datetime.min.time(), UTC) if since else None,
            "until": (
                datetime.combine(until + timedelta(days=1), datetime.min.time(), UTC)
                if until
                else None
            ),
        },
    )


QuestionFiltersDep = Annotated[QuestionFilters, Depends(question_filters)]


def _search(request: Request, q: str, k: int, mode: str) -> tuple[list[dict[str, Any]], str | None]:
    from retrieval.search import InvalidQuery

    retriever = request.app.state.services.retriever
    try:
        results = retriever.search(q, k, mode=mode, explain=True)
    except InvalidQuery as exc:
        return [], f"Invalid query: {exc}"
    return [r.as_dict() for r in results], None


def _reports_dir(request: Request) -> Path:
    return _settings(request).data_dir / "reports"


def _reports(request: Request) -> list[dict[str, Any]]:
    root = _reports_dir(request)
    out = []
    if root.is_dir():
        for report in root.glob("*/report.html"):
            name = report.parent.name
            if not REPORT_NAME.match(name):
                continue
            created, cases, summary = None, None, {}
            results = report.parent / "results.json"
            try:
                data = json.loads(results.read_text(encoding="utf-8"))
                summary = data.get("summary") or {}
                created = summary.get("created_at")
                cases = len(data.get("cases") or [])
            except (OSError, ValueError, AttributeError):
                pass
            mtime = datetime.fromtimestamp(report.stat().st_mtime, UTC).isoformat()
            out.append(
                {
                    "name": name,
                    "created_at": str(created or mtime),
                    "cases": cases,
                    "has_results": results.is_file(),
                    "summary": summary if isinstance(summary, dict) else {},
                }
            )
    return sorted(out, key=lambda r: r["created_at"], reverse=True)


def _report_file(request: Request, name: str, filename: str) -> Path:
    root = _reports_dir(request).resolve()
    if not REPORT_NAME.match(name):
        raise HTTPException(404, "report not found")
    path = (root / name / filename).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise HTTPException(404, "report not found")
    return path


# ----------------------------------------------------------------------------- routes

pages = APIRouter(prefix="/admin", include_in_schema=False, dependencies=[Depends(admin_page)])
api = APIRouter(prefix="/admin/api", tags=["admin"], dependencies=[Depends(admin_api)])
public = APIRouter(prefix="/admin", include_in_schema=False)


@public.get("/login")
def login_form(request: Request, next: str = "/admin") -> Response:
    if _token(_settings(request)) is None:
        raise HTTPException(404, "the admin pages are off: set GOVCHAT_ADMIN_TOKEN to use them")
    return _render(request, "admin/login.html", next=_safe_next(next), error=None)


def _safe_next(target: str | None) -> str:
    target = target or "/admin"
    if not target.startswith("/admin") or target.startswith("//") or "\\" in target:
        return "/admin"
    return target


@public.post("/login")
async def login(request: Request) -> Response:
    token = _token(_settings(request))
    if token is None:
        raise HTTPException(404, "the admin pages are off: set GOVCHAT_ADMIN_TOKEN to use them")
    form = await _form(request)
    target = _safe_next(form.get("next"))
    if not _same(form.get("token", "").strip(), token):
        return _render(
            request,
            "admin/login.html",
            status_code=401,
            next=target,
            error="The admin token is not right. Check it and try again.",
        )
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        _derive(token, "session"),
        httponly=True,
        samesite="strict",
        path="/admin",
        secure=request.url.scheme == "https",
        max_age=8 * 3600,
    )
    response.headers.update(NO_STORE)
    return response


@pages.post("/logout")
def logout() -> Response:
    response = RedirectResponse("/admin/login", status_code=303)
    response.delete_cookie(COOKIE, path="/admin")
    return response


@pages.get("")
def home(request: Request) -> Response:
    return _render(request, "admin/home.html", nav="home")


@pages.get("/index")
def index_page(request: Request, message: str | None = None) -> Response:
    jobs = _jobs(request)
    plan = jobs.last_plan
    return _render(
        request,
        "admin/index.html",
        nav="index",
        runs=_runs(request),
        job=jobs.current.as_dict() if jobs.current else None,
        plan=plan.as_dict() if plan else None,
        last_run=jobs.last_run.as_dict() if jobs.last_run else None,
        busy=jobs.busy(),
        pages=_page_status(request),
        message=message,
        source=_settings(request).source,
    )


def _start_job(request: Request, *, dry_run: bool, plan_id: int | None) -> dict[str, Any]:
    try:
        job = _jobs(request).start(request.app.state.services, dry_run=dry_run, plan_id=plan_id)
    except JobBusy as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except JobRefused as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return job.as_dict()


def _start_job_then_show_index(request: Request, *, dry_run: bool, plan_id: int | None):
    """Start a re-index job and go back to the index page (with the reason if refused)."""
    try:
        _start_job(request, dry_run=dry_run, plan_id=plan_id)
    except HTTPException as exc:
        return RedirectResponse("/admin/index?" + urlencode({"message": exc.detail}), 303)
    return RedirectResponse("/admin/index", status_code=303)


@pages.post("/index/check")
def index_check(request: Request) -> Response:
    return _start_job_then_show_index(request, dry_run=True, plan_id=None)


@pages.post("/index/apply")
async def index_apply(request: Request) -> Response:
    form = await _form(request)
    try:
        plan_id = int(form.get("plan_id", ""))
    except ValueError:
        plan_id = None
    return _start_job_then_show_index(request, dry_run=False, plan_id=plan_id)


@pages.get("/search")
def search_page(
    request: Request,
    q: Annotated[str, Query(max_length=2000)] = "",
    k: Annotated[int, Query(ge=1, le=50)] = 10,
    mode: Annotated[str, Query(pattern="^(hybrid|dense|sparse)$")] = "hybrid",
) -> Response:
    results, error = _search(request, q, k, mode) if q.strip() else ([], None)
    return _render(
        request,
        "admin/search.html",
        nav="search",
        q=q,
        k=k,
        mode=mode,
        results=results,
        error=error,
        searched=bool(q.strip()),
    )


@pages.get("/questions")
def questions_page(
    request: Request,
    filters: QuestionFiltersDep,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> Response:
    repo = request.app.state.services.repository
    listing = repo.list_answers(**filters.query, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    params = filters.params
    return _render(
        request,
        "admin/questions.html",
        nav="questions",
        listing=listing,
        facets=repo.answer_facets(),
        filters=params,
        page=page,
        pages=max(1, -(-listing["total"] // PAGE_SIZE)),
        query_for=lambda p: urlencode({**params, "page": p}),
    )


@pages.get("/questions/{answer_id}")
def question_page(request: Request, answer_id: str) -> Response:
    from chat_api.repository import NotFound

    try:
        trace = request.app.state.services.repository.answer_trace(answer_id)
    except NotFound:
        raise HTTPException(404, "answer not found") from None
    return _render(request, "admin/question.html", nav="questions", t=trace)


@pages.get("/reports")
def reports_page(request: Request) -> Response:
    return _render(request, "admin/reports.html", nav="reports", reports=_reports(request))


@pages.get("/reports/{name}/{filename}")
def report_file(request: Request, name: str, filename: str) -> Response:
    if filename not in ("report.html", "results.json"):
        raise HTTPException(404, "report not found")
    path = _report_file(request, name, filename)
    media = "text/html; charset=utf-8" if filename.endswith(".html") else "application/json"
    headers = dict(NO_STORE)
    # The report is another program's HTML: give it no access to the admin origin.
    headers["Content-Security-Policy"] = "sandbox allow-scripts allow-popups"
    return FileResponse(path, media_type=media, headers=headers)


# --- JSON API (Authorization: Bearer <token>)


@api.get("/index/runs")
def api_runs(request: Request, limit: Annotated[int, Query(ge=1, le=200)] = 20) -> dict:
    return {"runs": _runs(request, limit)}


@api.get("/index/pages")
def api_pages(request: Request) -> dict:
    return {"pages": _page_status(request)}


@api.get("/index/job")
def api_job(request: Request) -> dict:
    jobs = _jobs(request)
    return {
        "busy": jobs.busy(),
        "current": jobs.current.as_dict() if jobs.current else None,
        "plan": jobs.last_plan.as_dict() if jobs.last_plan else None,
    }


@api.post("/index/dry-run", status_code=202)
def api_dry_run(request: Request) -> dict:
    return _start_job(request, dry_run=True, plan_id=None)


@api.post("/index/run", status_code=202)
async def api_run(request: Request) -> dict:
    try:
        body = await request.json()
        plan_id = int(body["plan_id"])
    except (ValueError, KeyError, TypeError):
        raise HTTPException(422, 'send {"plan_id": <id of the dry run to apply>}') from None
    return _start_job(request, dry_run=False, plan_id=plan_id)


@api.get("/search")
def api_search(
    request: Request,
    q: Annotated[str, Query(min_length=1, max_length=2000)],
    k: Annotated[int, Query(ge=1, le=50)] = 10,
    mode: Annotated[str, Query(pattern="^(hybrid|dense|sparse)$")] = "hybrid",
) -> Response:
    results, error = _search(request, q, k, mode)
    if error:
        return JSONResponse({"detail": error}, status_code=422)
    return JSONResponse({"results": results})


@api.get("/questions")
def api_questions(
    request: Request,
    filters: QuestionFiltersDep,
    limit: Annotated[int, Query(ge=1, le=500)] = PAGE_SIZE,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict:
    repository = request.app.state.services.repository
    return repository.list_answers(**filters.query, limit=limit, offset=offset)


@api.get("/questions/{answer_id}")
def api_question(request: Request, answer_id: str) -> dict:
    from chat_api.repository import NotFound

    try:
        return request.app.state.services.repository.answer_trace(answer_id)
    except NotFound:
        raise HTTPException(404, "answer not found") from None


@api.get("/reports")
def api_reports(request: Request) -> dict:
    return {"reports": _reports(request)}


def install_admin(app: FastAPI, settings: Settings) -> None:
    app.state.index_jobs = IndexJobs()

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return _render(
            request, "admin/login.html", status_code=401, next=_safe_next(target), error=None
        )

    app.include_router(public)
    app.include_router(pages)
    app.include_router(api)
