"""The ops console under /ui, mounted only when ADMIN_TOKEN is set: server-rendered pages that read
and act through workers/operations.py, the calls the CLI and the admin API make.

    GET  /ui                                 overview
    GET  /ui/events?project=&branch=&workflow=&status=&transition=&outcome=&pipeline=&id_prefix=
                    &via=&before=            newest first, one page; `via`/`before` come from "Older"
    GET  /ui/events/{event_id}               what CircleCI sent, enrichment, messages, attempts
    POST /ui/events/{event_id}/replay        handler=
    GET  /ui/dead-letters?handler=&reason=
    POST /ui/dead-letters/{delivery_id}/replay
    GET  /ui/dead-letters/{delivery_id}/purge     confirmation; POST purges
    GET  /ui/dead-letters/replay?handler=&reason= confirmation; POST replays every match
    GET  /ui/branches?project=&branch=       the transition state grid
    GET  /ui/config                          routes, handlers, subscriptions (secrets redacted)
    GET|POST /ui/login, POST /ui/logout, GET /ui/static/...
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any
from urllib.parse import urlencode

import structlog
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from config.errors import ConfigurationError
from config.settings import Settings
from service.cli.preview import rendered
from service.cli.routes_view import handler_row, read_routes, subscription_row
from service.console.access import HERE, Access, SecurityHeaders, render
from service.console.session import PATH, Session
from service.login_limit import LoginLimit
from service.store_call import store_call
from workers import operations
from workers.event_index import EventQuery
from workers.ref_states import MAX_STATES

log = structlog.get_logger("service.console")
MAX_FILTER_CHARS = 200
PAGE = 50
LETTERS_READ = 1000  # the newest dead letters a filter and a bulk replay look through
LETTERS_SHOWN = 100
BRANCH_CELLS = 500  # the refs built most recently, without a filter
NOTICES = {
    "replayed": "Queued again: watch the attempts below.",
    "purged": "The dead letter is purged.",
    "bulk": "The matching dead letters are queued again.",
    "letter-replayed": "The dead letter is queued again.",
}


def console_mount(settings: Settings, *, login_limit: LoginLimit) -> Mount:
    access = Access(settings, limit=login_limit)
    page, action = access.page, access.action
    routes = [
        Route("/", page(overview), methods=["GET"]),
        Route("/login", access.login_form, methods=["GET"]),
        Route("/login", access.login, methods=["POST"]),
        Route("/logout", action(access.logout), methods=["POST"]),
        Route("/events", page(events), methods=["GET"]),
        Route("/events/{event_id}", page(event), methods=["GET"]),
        Route("/events/{event_id}/replay", action(replay_event), methods=["POST"]),
        Route("/dead-letters", page(dead_letters), methods=["GET"]),
        Route("/dead-letters/replay", page(confirm_bulk), methods=["GET"]),
        Route("/dead-letters/replay", action(replay_bulk), methods=["POST"]),
        Route("/dead-letters/{delivery_id}/replay", action(replay_letter), methods=["POST"]),
        Route("/dead-letters/{delivery_id}/purge", page(confirm_purge), methods=["GET"]),
        Route("/dead-letters/{delivery_id}/purge", action(purge_letter), methods=["POST"]),
        Route("/branches", page(branches), methods=["GET"]),
        Route("/config", page(configuration), methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Mount(PATH, routes=routes, middleware=[Middleware(SecurityHeaders)])


def base(request: Request, session: Session, **context: Any) -> dict[str, Any]:
    notice = NOTICES.get(request.query_params.get("done", ""))
    return {"session": session, "notice": notice, **context}


async def overview(request: Request, session: Session) -> Response:
    numbers = await store_call(request, operations.overview)
    return render(request, "overview.html", base(request, session, numbers=numbers))


async def events(request: Request, session: Session) -> Response:
    params = request.query_params
    too_long = [k for k, v in params.items() if len(v) > MAX_FILTER_CHARS]
    before = params.get("before") or None
    try:
        cursor = float(before) if before is not None else None
    except ValueError:
        cursor, too_long = None, [*too_long, "before"]
    query = EventQuery.from_mapping(params)
    if too_long:
        message = f"{', '.join(too_long)}: at most {MAX_FILTER_CHARS} characters, and `before` a number"
        context = base(request, session, query=query, page=None, error=message)
        return render(request, "events.html", context, 400)
    found = await store_call(request, operations.find_events, query, limit=PAGE, via=params.get("via"), before=cursor)
    older = None
    if found["next"]:
        older = "?" + urlencode({**{k: v for k, v in params.items() if k not in ("via", "before")}, **found["next"]})
    context = base(request, session, query=query, page=found, older=older, filtered=bool(params.get("via") or before))
    return render(request, "events.html", context)


async def event(request: Request, session: Session) -> Response:
    event_id = request.path_params["event_id"]
    shown = await store_call(request, operations.event_document, event_id)
    messages, problem = rendered_now(request.app.state.settings, shown["event"])
    context = base(request, session, **shown, messages=messages, problem=problem)
    return render(request, "event.html", context)


def rendered_now(settings: Settings, event: dict[str, Any] | None) -> tuple[list[dict[str, Any]], str | None]:
    """Each matching handler's message for `event` as the routes loaded now render it (what a replay
    sends), secrets redacted; with why there are none (the event expired, the routes do not load)."""
    if event is None:
        return [], "The enriched event has expired: only its record is left."
    try:
        _, routes = read_routes(None, settings)
        return rendered(routes, event), None
    except ConfigurationError as exc:
        return [], f"The routes file does not load in the web process: {exc.message}"


async def replay_event(request: Request, session: Session) -> Response:
    event_id = request.path_params["event_id"]
    handler = request.state.form.get("handler") or None
    replayed = await store_call(request, operations.replay, event_id, handler=handler, force=False)
    log.info("console_replay", user=session.who, event_id=event_id, handler=handler, queued=replayed["queued"])
    return RedirectResponse(f"{PATH}/events/{event_id}?done=replayed", status_code=303)


def letter_filter(values: Any) -> dict[str, str]:
    return {k: str(values.get(k) or "")[:MAX_FILTER_CHARS] for k in ("handler", "reason")}


async def dead_letters(request: Request, session: Session) -> Response:
    chosen = letter_filter(request.query_params)
    letters = await store_call(request, operations.dead_letters, limit=LETTERS_READ)
    matching = [x for x in letters if all(not v or x[k] == v for k, v in chosen.items())]
    # the filter offers the handlers and reasons of the letters read, and keeps a chosen one that has none left
    choices = {k: sorted({x[k] for x in letters} | ({v} if v else set())) for k, v in chosen.items()}
    context = base(request, session, letters=matching[:LETTERS_SHOWN], matching=len(matching), total=len(letters),
                   chosen=chosen, choices=choices, query=urlencode(chosen))  # fmt: skip
    return render(request, "dead_letters.html", context)


async def confirm_bulk(request: Request, session: Session) -> Response:
    chosen = letter_filter(request.query_params)
    letters = await store_call(request, operations.dead_letters, limit=LETTERS_READ)
    count = sum(all(not v or x[k] == v for k, v in chosen.items()) for x in letters)
    return render(request, "confirm.html", base(request, session, kind="bulk", chosen=chosen, count=count))


async def replay_bulk(request: Request, session: Session) -> Response:
    chosen = letter_filter(request.state.form)
    done = await store_call(request, operations.replay_dead_letters, handler=chosen["handler"] or None,
                            reason=chosen["reason"] or None)  # fmt: skip
    log.info("console_dead_letters_replay", user=session.who, **chosen, queued=len(done["queued"]),
             skipped=len(done["skipped"]))  # fmt: skip
    return RedirectResponse(f"{PATH}/dead-letters?done=bulk", status_code=303)


async def replay_letter(request: Request, session: Session) -> Response:
    delivery_id = request.path_params["delivery_id"]
    job_id = await store_call(request, operations.replay_dead_letter, delivery_id)
    log.info("console_dead_letter_replay", user=session.who, delivery_id=delivery_id, job_id=job_id)
    return RedirectResponse(f"{PATH}/dead-letters?done=letter-replayed", status_code=303)


async def confirm_purge(request: Request, session: Session) -> Response:
    delivery_id = request.path_params["delivery_id"]
    letter = await store_call(request, operations.dead_letter, delivery_id)
    return render(request, "confirm.html", base(request, session, kind="purge", letter=letter))


async def purge_letter(request: Request, session: Session) -> Response:
    delivery_id = request.path_params["delivery_id"]
    await store_call(request, operations.purge_dead_letter, delivery_id)
    log.info("console_dead_letter_purge", user=session.who, delivery_id=delivery_id)
    return RedirectResponse(f"{PATH}/dead-letters?done=purged", status_code=303)


async def branches(request: Request, session: Session) -> Response:
    project = (request.query_params.get("project") or "")[:MAX_FILTER_CHARS] or None
    branch = (request.query_params.get("branch") or "")[:MAX_FILTER_CHARS] or None
    limit = MAX_STATES if project or branch else BRANCH_CELLS + 1  # a filter picks from every stored ref
    states = await store_call(request, operations.branch_health, project=project, ref=branch, limit=limit)
    shown = sorted(states[:BRANCH_CELLS], key=lambda s: s["status"] == "success")  # failing first, else as read
    failing = sum(s["status"] != "success" for s in shown)
    context = base(request, session, states=shown, failing=failing, more=len(states) > BRANCH_CELLS,
                   cells=BRANCH_CELLS, project=project or "", branch=branch or "")  # fmt: skip
    return render(request, "branches.html", context)


async def configuration(request: Request, session: Session) -> Response:
    """What `check-config` shows, from the routes file as this web process loads it."""
    settings: Settings = request.app.state.settings
    try:
        path, routes = read_routes(None, settings)
    except ConfigurationError as exc:
        return render(request, "config.html", base(request, session, error=exc.message, file=settings.routes_file))
    context = base(
        request, session, file=str(path),
        handlers=[handler_row(h) for h in routes.handlers.values()],
        subscriptions=[subscription_row(s) for s in routes.subscriptions],
        alerts=asdict(routes.alerts) if routes.alerts is not None else None,
        people=sorted((key, dict(person.ids)) for key, person in routes.people.entries.items()),
    )  # fmt: skip
    return render(request, "config.html", context)
