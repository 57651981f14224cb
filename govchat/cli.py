"""The `govchat` command line. Every command takes --json: exactly one JSON object on stdout."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    name="govchat",
    help="Retrieval-augmented chat over GOV.UK guidance.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
index_app = typer.Typer(help="Index GOV.UK pages into the search collection.")
app.add_typer(index_app, name="index")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]


class CliError(Exception):
    """Bad input or an unavailable dependency: a message for the user, a non-zero exit."""


def _emit(obj: dict[str, Any], as_json: bool, human: str) -> None:
    if as_json:
        sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")
    else:
        typer.echo(human)


def _fail(message: str, as_json: bool, code: int = 2) -> None:
    if as_json:
        sys.stdout.write(json.dumps({"error": message}) + "\n")
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _parse_filters(values: list[str] | None) -> dict[str, list[str]]:
    filters: dict[str, list[str]] = {}
    for v in values or []:
        key, sep, val = v.partition("=")
        if not sep or not key or not val:
            raise CliError(f"--filter expects NAME=VALUE (e.g. format=guide), got {v!r}")
        filters.setdefault(key.removeprefix("filter_"), []).append(val)
    return filters


@index_app.callback(invoke_without_command=True)
def index(
    ctx: typer.Context,
    source: Annotated[
        str | None,
        typer.Option(help="Snapshot folder or Content API base URL (default: bundled snapshot)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would change; write nothing.")
    ] = False,
    paths: Annotated[
        Path | None,
        typer.Option(help="File of base paths (one a line) to fetch instead of enumerating."),
    ] = None,
    filter_: Annotated[
        list[str] | None,
        typer.Option("--filter", help="Search API filter NAME=VALUE, e.g. format=guide."),
    ] = None,
    prune: Annotated[
        bool | None,
        typer.Option(
            "--prune/--no-prune",
            help="Delete stored pages the source no longer lists "
            "(default: only when the source lists the whole corpus).",
        ),
    ] = None,
    rate: Annotated[
        float | None, typer.Option(help="HTTP requests per second (default 5, max 10).")
    ] = None,
    reset: Annotated[
        bool, typer.Option("--reset", help="Drop the collection first and re-index everything.")
    ] = False,
    json_: JsonOpt = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Index from a snapshot folder or the GOV.UK Content API, embedding only what changed."""
    if ctx.invoked_subcommand is not None:
        return
    _setup_logging(verbose)
    try:
        summary = _run_index(source, dry_run, paths, filter_, prune, rate, reset)
    except CliError as exc:
        _fail(str(exc), json_)
        return
    _emit(summary, json_, _human_summary(summary))
    if summary.get("status") == "failed":
        raise typer.Exit(1)


def _run_index(source, dry_run, paths_file, filters, prune, rate, reset) -> dict[str, Any]:
    from tqdm import tqdm

    from govchat.db import init_db, make_engine
    from govchat.services import StoreUnavailable, build_indexer, open_store
    from govchat.settings import get_settings
    from ingest.runs import RunLog
    from ingest.sources import source_from_settings

    settings = get_settings()
    if rate is not None:
        settings = settings.model_copy(update={"crawl_rate": rate})
    if paths_file is not None and not paths_file.is_file():
        raise CliError(f"--paths file not found: {paths_file}")
    try:
        page_source = source_from_settings(
            source or settings.source,
            settings,
            paths_file=paths_file,
            search_filters=_parse_filters(filters) or None,
        )
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    try:
        store = open_store(settings)
    except StoreUnavailable as exc:
        raise CliError(str(exc)) from exc
    runs = RunLog(init_db(make_engine(settings)))
    run_id = runs.start(page_source.description, dry_run)
    status = "failed"
    summary: dict[str, Any] = {}
    errors: list[dict[str, str]] = []
    try:
        if reset and not dry_run:
            store.drop()
        try:
            paths = page_source.list_paths()
        except Exception as exc:  # noqa: BLE001 - report any enumeration failure clearly
            raise CliError(f"could not list pages from {page_source.description}: {exc}") from exc
        bar = tqdm(
            total=len(paths),
            desc="indexing",
            unit="page",
            file=sys.stderr,
            mininterval=1.0,
            disable=None,
        )
        indexer = build_indexer(settings, store, progress=lambda _p: bar.update(1))
        result = indexer.run(page_source, dry_run=dry_run, prune=prune, paths=paths)
        bar.close()
        summary = result.as_dict()
        errors = result.errors
        status = "completed"
    except CliError as exc:
        errors = [{"error": str(exc)}]
        raise
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        page_source.close()
        runs.finish(run_id, status, {k: v for k, v in summary.items() if k != "changes"}, errors)
        store.client.close()
    summary["run_id"] = run_id
    summary["status"] = status
    summary["collection"] = settings.collection
    return summary


def _human_summary(s: dict[str, Any]) -> str:
    lines = [
        f"{'DRY RUN: nothing written. ' if s['dry_run'] else ''}Source: {s['source']}",
        f"pages: {s['pages_seen']} seen, {s['pages_indexed']} indexed, {s['pages_changed']} "
        f"changed, {s['pages_skipped']} skipped, {s['pages_deleted']} deleted, "
        f"{s['pages_failed']} failed",
        f"chunks: {s['chunks_added']} added, {s['chunks_updated']} updated, "
        f"{s['chunks_unchanged']} unchanged, {s['chunks_deleted']} deleted, "
        f"{s['chunks_embedded']} embedded; {s['chunks_total']} in the collection",
        f"time: {s['seconds']:.1f}s ({s['embed_seconds']:.1f}s embedding)",
    ]
    if s["skip_reasons"]:
        lines.append("skipped: " + ", ".join(f"{k} {v}" for k, v in s["skip_reasons"].items()))
    if s["dry_run"]:
        for c in s["changes"]:
            detail = ", ".join(
                f"{len(c[k])} {k}" for k in ("added", "updated", "deleted") if c.get(k)
            )
            why = f" ({c['reason']})" if c.get("reason") else ""
            lines.append(f"  would {c['action']:<6} {c['base_path']}{why}: {detail}")
    for e in s["errors"][:20]:
        lines.append(f"  error {e.get('base_path', '')}: {e['error']}")
    if len(s["errors"]) > 20:
        lines.append(f"  ... and {len(s['errors']) - 20} more errors (see --json)")
    return "\n".join(lines)


@index_app.command("status")
def index_status(
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many runs to show.")] = 10,
    json_: JsonOpt = False,
) -> None:
    """Show recent index runs and the collection's size."""
    from govchat.db import init_db, make_engine
    from govchat.services import StoreUnavailable, open_store
    from govchat.settings import get_settings
    from ingest.runs import RunLog

    settings = get_settings()
    runs = RunLog(init_db(make_engine(settings))).recent(limit)
    try:
        store = open_store(settings)
        chunks: int | None = store.count()
        pages = len({c.base_path for c in store.stored_chunks()}) if chunks else 0
        store.client.close()
    except StoreUnavailable:
        chunks, pages = None, None
    obj = {"collection": settings.collection, "chunks": chunks, "pages": pages, "runs": runs}
    lines = [
        f"collection {settings.collection}: {chunks} chunks from {pages} pages"
        if chunks is not None
        else f"collection {settings.collection}: in use by another process"
    ]
    for r in runs:
        s = r["summary"]
        counts = (
            (
                f"{s.get('pages_indexed', '?')} pages, +{s.get('chunks_added', 0)} "
                f"~{s.get('chunks_updated', 0)} -{s.get('chunks_deleted', 0)} chunks, "
                f"{len(r['errors'])} errors"
            )
            if s
            else f"{len(r['errors'])} errors"
        )
        lines.append(
            f"#{r['id']} {r['started_at'][:19]} {r['status']:<11}"
            f"{' (dry run)' if r['dry_run'] else ''} {r['source']}: {counts}"
        )
    _emit(obj, json_, "\n".join(lines))


def _open_index(settings, json_: bool):
    """The chunk store, or a clear exit when it is locked or empty."""
    from govchat.services import StoreUnavailable, open_store

    try:
        store = open_store(settings)
    except StoreUnavailable as exc:
        _fail(str(exc), json_)
    if not store.exists() or store.count() == 0:
        store.client.close()
        _fail("the index is empty: run `govchat index` first", json_, code=1)
    return store


@app.command()
def search(
    query: Annotated[str | None, typer.Argument(help="The question or search terms.")] = None,
    k: Annotated[int | None, typer.Option("--k", min=1, max=100, help="How many results.")] = None,
    queries: Annotated[
        Path | None, typer.Option(help="File of queries, one a line (models load once).")
    ] = None,
    mode: Annotated[str, typer.Option(help="hybrid, dense or sparse.")] = "hybrid",
    fusion: Annotated[str | None, typer.Option(help="rrf or dbsf (default: configured).")] = None,
    weights: Annotated[
        bool, typer.Option("--weights/--no-weights", help="Apply document-type weights.")
    ] = True,
    max_per_page: Annotated[
        int | None, typer.Option(min=0, help="Chunks kept per page; 0 = no limit.")
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Search the index and show each result's score at every stage."""
    from govchat.services import build_retriever
    from govchat.settings import get_settings
    from retrieval.search import InvalidQuery

    if (query is None) == (queries is None):
        _fail("give either a QUERY or --queries FILE", json_)
    if mode not in ("hybrid", "dense", "sparse"):
        _fail(f"--mode must be hybrid, dense or sparse, not {mode!r}", json_)
    if fusion not in (None, "rrf", "dbsf"):
        _fail(f"--fusion must be rrf or dbsf, not {fusion!r}", json_)
    lines: list[str] = []
    if queries is not None:
        if not queries.is_file():
            _fail(f"--queries file not found: {queries}", json_)
        try:
            lines = [q.strip() for q in queries.read_text(encoding="utf-8").splitlines()]
        except UnicodeDecodeError:
            _fail(f"--queries file is not UTF-8 text: {queries}", json_)
        lines = [q for q in lines if q and not q.startswith("#")]
        if not lines:
            _fail(f"--queries file has no queries: {queries}", json_)
    overrides: dict[str, Any] = {"mode": mode, "use_weights": weights}
    if fusion:
        overrides["fusion"] = fusion
    if max_per_page is not None:
        overrides["max_per_page"] = max_per_page

    settings = get_settings()
    store = _open_index(settings, json_)
    try:
        retriever = build_retriever(settings, store)
        if query is not None:
            try:
                results = retriever.search(query, k, **overrides)
            except InvalidQuery as exc:
                _fail(f"invalid query: {exc}", json_)
            _emit(
                {"results": [r.as_dict() for r in results]}, json_, _human_results(query, results)
            )
            return
        out, human = [], []
        for q in lines:
            try:
                results = retriever.search(q, k, **overrides)
            except InvalidQuery as exc:
                out.append({"query": q, "error": f"invalid query: {exc}", "results": []})
                human.append(f"== {q}\n  invalid query: {exc}")
                continue
            out.append({"query": q, "results": [r.as_dict() for r in results]})
            human.append(_human_results(q, results))
        _emit({"queries": out}, json_, "\n\n".join(human))
    finally:
        store.client.close()


def _human_results(query: str, results: list) -> str:
    def f(v: float | None, spec: str = ".3f") -> str:
        return "-" if v is None else format(v, spec)

    lines = [f"== {query}"]
    if not results:
        lines.append("  (no results)")
    lines.append(
        f"  {'#':>2} {'final':>7} {'dense':>6}{'(rk)':>5} {'bm25':>6}{'(rk)':>5} "
        f"{'fused':>7} {'wt':>4}  section"
    )
    for i, r in enumerate(results, 1):
        st = r.stages
        trail = " > ".join(r.heading_trail)
        dense_rk = f"({st.dense_rank or '-'})"
        sparse_rk = f"({st.sparse_rank or '-'})"
        lines.append(
            f"  {i:>2} {f(r.score, '.4f'):>7} {f(st.dense):>6}{dense_rk:>5} "
            f"{f(st.sparse, '.2f'):>6}{sparse_rk:>5} {f(st.fused, '.4f'):>7} "
            f"{st.weight:>4.1f}  {r.title}{' > ' + trail if trail else ''}"
        )
        lines.append(f"{'':>48}{r.url}")
    return "\n".join(lines)


def _state_as_dict(state) -> dict[str, Any]:
    return {
        "status": str(state.status),
        "message": state.message,
        "sources": [src.public() for src in state.sources if src.used],
        "route": state.route,
        "condensed_question": state.condensed_question,
        "guardrails": {name: v.as_dict() for name, v in state.guardrails.items()},
        "timings_ms": state.timings_ms,
        "tokens": state.tokens,
        "versions": state.versions,
        "retrieved": [c.exact_path for c in state.retrieved],
    }


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="A question about GOV.UK guidance.")],
    json_: JsonOpt = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Answer one question through the whole pipeline (nothing is stored)."""
    from chat_api.llm import ModelUnavailable, build_chat_model, json_schema_format
    from chat_api.pipeline import build_pipeline
    from chat_api.steps import ANSWER_SCHEMA
    from chat_api.types import Question
    from govchat.services import build_retriever
    from govchat.settings import get_settings

    _setup_logging(verbose)
    settings = get_settings()
    store = _open_index(settings, json_)
    try:
        try:
            llm = build_chat_model(settings)
        except ModelUnavailable as exc:
            _fail(str(exc), json_, code=1)
        pipeline = build_pipeline(
            settings,
            retriever=build_retriever(settings, store),
            llm=llm,
            response_format=json_schema_format("govuk_answer", ANSWER_SCHEMA),
        )

        def show(event: str, data: dict[str, Any]) -> None:
            if json_:
                return
            if event == "sources":
                for src in data["sources"]:
                    typer.secho(
                        f"  source: {src['title']} > {src['heading']}  {src['url']}",
                        err=True,
                        dim=True,
                    )
            elif event == "token":
                typer.echo(data["text"], nl=False, err=True)

        state = pipeline.run(Question(question), emit=show)
    finally:
        store.client.close()
    out = _state_as_dict(state)
    human = [f"\n[{out['status']}] {out['message']}"]
    human += [f"  - {src['title']} > {src['heading']}: {src['url']}" for src in out["sources"]]
    human.append(f"  ({out['timings_ms'].get('total', 0) / 1000:.1f}s)")
    _emit(out, json_, "\n".join(human))


@app.command("eval")
def eval_(
    datasets: Annotated[
        list[Path], typer.Argument(help="Dataset JSONL files (DESIGN.md §6; kinds mixed freely).")
    ],
    out: Annotated[
        Path | None,
        typer.Option(help="Output folder (default <data_dir>/reports/<UTC time>); reuse: resume."),
    ] = None,
    baseline: Annotated[
        Path | None, typer.Option(help="An earlier run's folder (or results.json) to compare with.")
    ] = None,
    gate: Annotated[
        bool, typer.Option("--gate", help="Exit 1 when a threshold or the baseline is breached.")
    ] = False,
    thresholds: Annotated[
        Path | None, typer.Option(help="Thresholds YAML (default evaluation/thresholds.yaml).")
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=32, help="Cases run at once.")] = 1,
    repeats: Annotated[
        int, typer.Option(min=1, max=20, help="Runs of the judged metrics (means with 95% CIs).")
    ] = 1,
    judge: Annotated[
        bool, typer.Option("--judge/--no-judge", help="Use the judge model when configured.")
    ] = True,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Discard cases already recorded in --out.")
    ] = False,
    json_: JsonOpt = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Evaluate the whole pipeline over datasets; write report.html, results.json, cases.csv."""
    from evaluation.harness import EvalError, EvalOptions, default_out_dir, run_eval
    from govchat.settings import get_settings

    _setup_logging(verbose)
    settings = get_settings()
    options = EvalOptions(
        datasets=list(datasets),
        out_dir=out or default_out_dir(settings.data_dir),
        baseline=baseline,
        thresholds=thresholds,
        concurrency=concurrency,
        repeats=repeats,
        judge=judge,
        fresh=fresh,
    )
    try:
        result = run_eval(settings, options)
    except EvalError as exc:
        _fail(str(exc), json_)
        return
    except Exception as exc:  # noqa: BLE001 - a dependency failed: say what, no traceback
        if verbose:
            logging.exception("evaluation failed")
        _fail(f"evaluation failed: {type(exc).__name__}: {exc}", json_, code=1)
        return
    s = result.summary
    obj = {
        "out": str(result.out_dir),
        **result.files,
        "interrupted": result.interrupted,
        "summary": {
            k: s[k]
            for k in ("created_at", "cases", "completed", "missing", "harness_errors", "by_status")
        }
        | {"metrics": s["metrics"], "gate": s["gate"]},
    }
    g = s["gate"]
    human = [
        f"{s['completed']}/{s['cases']} cases; report: {result.files.get('report')}",
        *(
            f"  {r['status']:<12} {r['metric']:<40} {r['value']!s:<10} (target {r['target']})"
            for r in s["thresholds"]
        ),
        f"gate: {'PASSED' if g['passed'] else 'FAILED'}"
        + (f"; regressions: {', '.join(g['regressions'])}" if g["regressions"] else ""),
    ]
    _emit(obj, json_, "\n".join(human))
    if result.interrupted:
        typer.secho(
            f"interrupted: re-run with --out {result.out_dir} to resume", err=True, fg="yellow"
        )
        raise typer.Exit(130)
    if gate and not g["passed"]:
        raise typer.Exit(1)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Worker processes (more than 1 needs a Qdrant server: GOVCHAT_QDRANT_URL).",
        ),
    ] = 1,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(
            help="Proxies trusted for X-Forwarded-For (client IPs for rate limits), "
            "e.g. '10.0.0.0/8' behind a load balancer; default 127.0.0.1."
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Serve the chat API (and the demo page) with uvicorn."""
    import uvicorn

    from chat_api.app import create_app
    from govchat.services import StoreUnavailable, open_store
    from govchat.settings import get_settings

    _setup_logging(verbose)
    settings = get_settings()
    if workers > 1 and not settings.qdrant_url:
        _fail(
            f"--workers {workers} needs a Qdrant server: the local index folder "
            f"({settings.qdrant_path}) can be open in one process only. Set GOVCHAT_QDRANT_URL "
            "(see docs/operations.md), or serve with --workers 1.",
            False,
        )
    try:  # fail early and clearly if another process holds the local index
        open_store(settings).client.close()
    except StoreUnavailable as exc:
        _fail(str(exc), False)
    typer.secho(
        f"govchat: serving on http://{host}:{port} with {workers} worker(s) (Ctrl-C to stop)",
        err=True,
    )
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": "info" if verbose else "warning",
        "forwarded_allow_ips": forwarded_allow_ips,
    }
    if workers > 1:  # each worker process builds its own app from the same environment
        uvicorn.run("chat_api.app:create_app", factory=True, workers=workers, **options)
    else:
        uvicorn.run(create_app(settings), **options)


@app.command()
def demo(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
) -> None:
    """Index the bundled snapshot if the index is empty, then serve on http://HOST:PORT."""
    from govchat.services import StoreUnavailable, open_store
    from govchat.settings import get_settings

    settings = get_settings()
    try:
        store = open_store(settings)
        empty = not store.exists() or store.count() == 0
        store.client.close()
    except StoreUnavailable as exc:
        _fail(str(exc), False)
    if empty:
        typer.secho(
            "govchat: indexing the bundled GOV.UK snapshot (first run, a few minutes)", err=True
        )
        summary = _run_index(None, False, None, None, None, None, False)
        typer.echo(_human_summary(summary), err=True)
    serve(host=host, port=port)


@app.command()
def purge(
    older_than: Annotated[float, typer.Option("--older-than", min=0, help="Age in days.")],
    json_: JsonOpt = False,
) -> None:
    """Delete conversations (and their questions, answers, sources, feedback) older than DAYS."""
    from chat_api.repository import Repository
    from govchat.db import init_db, make_engine
    from govchat.settings import get_settings

    counts = Repository(init_db(make_engine(get_settings()))).purge_older_than(older_than)
    _emit(
        {"deleted": counts}, json_, "deleted: " + ", ".join(f"{v} {k}" for k, v in counts.items())
    )


apikey_app = typer.Typer(help="Create, list and revoke API keys for the JSON API.")
app.add_typer(apikey_app, name="apikey")


def _repository():
    from chat_api.repository import Repository
    from govchat.db import init_db, make_engine
    from govchat.settings import get_settings

    return Repository(init_db(make_engine(get_settings())))


@apikey_app.command("create")
def apikey_create(name: Annotated[str, typer.Argument()], json_: JsonOpt = False) -> None:
    """Create a key; its secret is shown once (only a hash is stored)."""
    from chat_api.repository import ApiKeyExists

    try:
        secret = _repository().create_api_key(name, actor=_actor(None))
    except ApiKeyExists:
        _fail(f"an API key named {name!r} already exists", json_)
    _emit(
        {"name": name, "key": secret},
        json_,
        f"API key {name!r}: {secret}\n(shown once; send it as 'Authorization: Bearer <key>')",
    )


@apikey_app.command("revoke")
def apikey_revoke(name: Annotated[str, typer.Argument()], json_: JsonOpt = False) -> None:
    if not _repository().revoke_api_key(name, actor=_actor(None)):
        _fail(f"no active API key named {name!r}", json_)
    _emit({"name": name, "revoked": True}, json_, f"revoked {name!r}")


@apikey_app.command("list")
def apikey_list(json_: JsonOpt = False) -> None:
    keys = _repository().list_api_keys()
    _emit(
        {"keys": keys},
        json_,
        "\n".join(
            f"{k['name']}  {k['prefix']}…  created {k['created_at']}"
            f"{'  REVOKED' if k.get('revoked_at') else ''}"
            for k in keys
        )
        or "no API keys",
    )


service_app = typer.Typer(
    help="Switch answering off and on (the kill switch); every change is kept in an audit trail."
)
app.add_typer(service_app, name="service")


def _actor(by: str | None) -> str:
    import getpass
    import socket

    if by:
        return by
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name in some containers
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


ReasonOpt = Annotated[
    str, typer.Option("--reason", help="Why (kept in the audit trail; never shown to users).")
]
ByOpt = Annotated[
    str | None, typer.Option("--by", help="Who is making the change (default: user@host).")
]


@service_app.command("off")
def service_off(reason: ReasonOpt, by: ByOpt = None, json_: JsonOpt = False) -> None:
    """Stop answering questions at once, in every API process: they get a 503 'switched off'
    message until `govchat service on`. Reading conversations and feedback keep working."""
    _set_service(True, reason, by, json_)


@service_app.command("on")
def service_on(reason: ReasonOpt, by: ByOpt = None, json_: JsonOpt = False) -> None:
    """Answer questions again."""
    _set_service(False, reason, by, json_)


def _set_service(paused: bool, reason: str, by: str | None, json_: bool) -> None:
    try:
        state = _repository().set_service_paused(paused, reason, _actor(by))
    except ValueError as exc:
        _fail(str(exc), json_)
    _emit(
        state,
        json_,
        f"service {'OFF' if state['paused'] else 'ON'} since {state['since']} "
        f"by {state['actor']}: {state['reason']}",
    )


@service_app.command("status")
def service_status(
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Audit events to show.")] = 20,
    json_: JsonOpt = False,
) -> None:
    """Whether answering is on, and the latest audit events (kill switch, API keys)."""
    repo = _repository()
    state, events = repo.service_state(), repo.audit_log(limit)
    lines = [
        f"service {'OFF' if state['paused'] else 'ON'}"
        + (
            f" since {state['since']} by {state['actor']}: {state['reason']}"
            if state["since"]
            else ""
        )
    ]
    lines += [
        f"  {e['at'][:19]} {e['action']:<14} {e['subject']:<20} {e['actor']}: {e['reason']}"
        for e in events
    ]
    _emit({**state, "audit": events}, json_, "\n".join(lines))


def main() -> None:  # pragma: no cover
    app()
