"""The dashboard: an aiohttp application rendering Jinja2 templates.

Every page asks the daemon (through `Source`, in a worker thread) as the user who
started the dashboard, so it shows and allows exactly what cronplusctl would.
A request must carry the dashboard's token (from the URL it printed, then a
cookie); a request that changes something must also carry the CSRF token of the
page it came from.  Every error is a page with a message and a 4xx or 5xx status.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import json
import sys
from collections.abc import Awaitable
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Optional, TypeVar
from zoneinfo import ZoneInfo

import jinja2
from aiohttp import web

from .. import __version__
from ..config import machine_zone
from ..control import MAX_RUNS, DaemonDown, Fault, FaultCode
from . import views
from .live import Live
from .source import Answer, Source, Unreadable

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
UTC = timezone.utc
ACTIONS = ("run", "retry", "pause", "resume")
STATES = ("all", "succeeded", "failed", "skipped", "missed", "running", "pending")
RANGES = {"1h": 1, "24h": 24, "7d": 7 * 24}
STRIP = 20  # runs in each job's strip
OUTPUT_SHOWN = 16 * 1024  # bytes of a run's output shown on its job's page
SOURCE_KEY: web.AppKey[Source] = web.AppKey("source", Source)
TOKEN_KEY: web.AppKey[str] = web.AppKey("token", str)
TEMPLATES_KEY: web.AppKey[jinja2.Environment] = web.AppKey("templates", jinja2.Environment)
LIVE_KEY: web.AppKey[Live] = web.AppKey("live", Live)
ZONE_KEY: web.AppKey[str] = web.AppKey("zone", str)


class Problem(Exception):
    """A page that says what went wrong, with its status."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message


def csrf_token(token: str) -> str:
    """The token forms carry: derived from the dashboard's, so it never needs storing."""
    return hmac.new(token.encode(), b"csrf", hashlib.sha256).hexdigest()[:32]


def cookie_name(request: web.Request) -> str:
    # cookies are kept per host, not per port: each dashboard on a host has its own
    return f"cronplus_token_{request.url.port or 0}"


# --- middlewares -----------------------------------------------------------------------------


@web.middleware
async def headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self';"
        " frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    )
    # same-origin, not no-referrer: with no-referrer a browser sends "Origin: null" on a POST
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Cache-Control", "no-store")
    return response


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Problem as problem:
        return render(request, "error.html", problem.status, problem=problem)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        title = {404: "Not found", 405: "Method not allowed"}.get(exc.status, exc.reason)
        message = "There is no such page." if exc.status == 404 else exc.reason
        return render(
            request, "error.html", exc.status, problem=Problem(exc.status, title, message)
        )
    except Exception as exc:  # a bug: a page that says so, the details on the terminal
        print(f"cronplusctl web: {request.method} {request.path}: {exc!r}", file=sys.stderr)
        failed = Problem(500, "Internal error", f"The dashboard failed: {type(exc).__name__}.")
        return render(request, "error.html", 500, problem=failed)


@web.middleware
async def token_check(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The token from the printed URL once, then from a cookie; static files need none."""
    if request.path.startswith("/static/"):
        return await handler(request)
    token = request.app[TOKEN_KEY]
    given = request.query.get("token")
    if given is not None:
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise Problem(403, "Wrong token", "This link's token is not this dashboard's.")
        query = {k: v for k, v in request.query.items() if k != "token"}
        target = request.rel_url.with_query(query)
        response = web.HTTPSeeOther(str(target))
        response.set_cookie(cookie_name(request), token, httponly=True, samesite="Strict", path="/")
        raise response
    cookie = request.cookies.get(cookie_name(request), "")
    if not hmac.compare_digest(cookie.encode(), token.encode()):
        raise Problem(
            403,
            "Token needed",
            "Open the dashboard with the URL cronplusctl web printed; it carries a token.",
        )
    if request.method not in ("GET", "HEAD"):
        await check_csrf(request, token)
    return await handler(request)


async def check_csrf(request: web.Request, token: str) -> None:
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"{request.scheme}://{request.host}":
        raise Problem(403, "Refused", "A request from another site may not change anything.")
    form = await request.post()
    given = str(form.get("csrf", "")) or request.headers.get("X-CSRF-Token", "")
    if not hmac.compare_digest(given.encode(), csrf_token(token).encode()):
        raise Problem(
            403, "Refused", "This form is missing its CSRF token, or carries another one."
        )


# --- helpers ----------------------------------------------------------------------------------


def render(request: web.Request, template: str, status: int = 200, **values: Any) -> web.Response:
    environment = request.app[TEMPLATES_KEY]
    page = environment.get_template(template).render(
        csrf=csrf_token(request.app[TOKEN_KEY]),
        version=__version__,
        path=request.path,
        **values,
    )
    return web.Response(text=page, status=status, content_type="text/html")


async def blocking(call: Callable[[], T]) -> T:
    """A call to the daemon or the history file, in a worker thread."""
    return await asyncio.get_running_loop().run_in_executor(None, call)


async def fetch(request: web.Request, call: Callable[[Source], T]) -> T:
    """Ask the source; faults and an unreadable history become pages."""
    source = request.app[SOURCE_KEY]
    try:
        return await blocking(functools.partial(call, source))
    except Unreadable as exc:
        raise Problem(503, "cronplus is not running", str(exc)) from None
    except Fault as fault:
        raise fault_problem(fault, request) from None


def fault_problem(fault: Fault, request: web.Request) -> Problem:
    if fault.code in (FaultCode.NO_SUCH_JOB, FaultCode.NOT_ALLOWED) and "job" in request.match_info:
        name = request.match_info["job"]
        if request.method == "POST":  # the same answer whether the job exists or not
            return Problem(403, "Not allowed", f'You may not act on a job named "{name}".')
        return Problem(404, "No such job", f'There is no job named "{name}" that you may see.')
    if fault.code is FaultCode.NOT_ALLOWED:
        return Problem(403, "Not allowed", fault.message)
    if fault.code in (FaultCode.NO_SUCH_RUN, FaultCode.NO_SUCH_JOB):
        return Problem(404, "Not found", fault.message)
    if fault.code is FaultCode.BAD_ARGUMENTS:
        return Problem(400, "Bad request", fault.message)
    if fault.code in (FaultCode.NOTHING_TO_RETRY, FaultCode.STOPPING):
        return Problem(409, "Not done", fault.message)
    return Problem(502, "The daemon refused", fault.message)


def number(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isascii() or not raw.isdigit() or not low <= int(raw) <= high:
        raise Problem(400, "Bad request", f'"{name}" must be a whole number from {low} to {high}.')
    return int(raw)


def choice(request: web.Request, name: str, choices: tuple[str, ...], default: str) -> str:
    raw = request.query.get(name, default)
    if raw not in choices:
        raise Problem(400, "Bad request", f'"{name}" must be one of {", ".join(choices)}.')
    return raw


# --- pages -------------------------------------------------------------------------------------


async def root(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/jobs")


async def jobs_page(request: web.Request) -> web.StreamResponse:
    answer: Answer = await fetch(request, lambda s: s.status(STRIP))
    rows = [views.job_row(r) for r in answer.value]
    return render(request, "jobs.html", live=answer.live, rows=rows, title="Jobs")


async def job_page(request: web.Request) -> web.StreamResponse:
    name = request.match_info["job"]
    state = choice(request, "state", STATES, "all")
    limit = number(request, "n", 100, 1, MAX_RUNS)
    run_id = number(request, "run", 0, 0, 2**62)
    status, history = await fetch(request, lambda s: s.job(name, limit, state == "failed"))
    record = status.value
    zone = record["timezone"]
    runs = [r for r in history.value["runs"] if state in ("all", "failed") or r["state"] == state]
    shown = None
    if run_id:
        output = await fetch(request, lambda s: s.logs(run_id))
        shown = output.value
        if shown.get("job") != name:
            raise Problem(404, "Not found", f"Run {run_id} is not a run of {name}.")
        text = shown["output"]
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        shown["tail"] = text[-OUTPUT_SHOWN:]
        shown["cut"] = len(text) > OUTPUT_SHOWN or shown.get("truncated", False)
    for run in runs:
        run["shown"] = views.local(
            run.get("started") or run.get("scheduled") or run["created"], zone
        )
        run["failed"] = run["state"] in views.FAILED
    return render(
        request,
        "job.html",
        title=name,
        follow=name,
        live=status.live,
        row=views.job_row(record),
        runs=runs,
        clustered=any(r.get("node") for r in runs),  # a cluster: say where each ran
        state=state,
        states=STATES,
        limit=limit,
        chart=views.duration_chart(history.value["runs"], zone),
        output=shown,
        done=request.query.get("done", ""),
    )


async def output_text(request: web.Request) -> web.StreamResponse:
    name = request.match_info["job"]
    run_id = _run_id(request)
    record = (await fetch(request, lambda s: s.logs(run_id))).value
    if record.get("job") != name:
        raise Problem(404, "Not found", f"Run {run_id} is not a run of {name}.")
    text = record["output"]
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return web.Response(text=text, content_type="text/plain", charset="utf-8")


def _run_id(request: web.Request) -> int:
    raw = request.match_info["run_id"]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise Problem(400, "Bad request", "A run id is a whole number.")
    return int(raw)


async def act(request: web.Request) -> web.StreamResponse:
    name, action = request.match_info["job"], request.match_info["action"]
    if action not in ACTIONS:
        raise Problem(404, "Not found", "There is no such action.")
    try:
        answer = await fetch(request, lambda s: s.act(action, name))
    except DaemonDown:
        raise Problem(
            503, "cronplus is not running", "Actions need the daemon; start it and try again."
        ) from None
    if action in ("run", "retry"):
        done = f"{action}: run {answer['run_id']}"
    else:
        done = f"{action}d" if action == "pause" else "resumed"
    target = request.app.router["job"].url_for(job=name).with_query({"done": done})
    raise web.HTTPSeeOther(str(target))


async def timeline_page(request: web.Request) -> web.StreamResponse:
    window = choice(request, "range", tuple(RANGES), "24h")
    status: Answer = await fetch(request, lambda s: s.status(0))
    answer: Answer = await fetch(request, lambda s: s.runs(RANGES[window], 10_000))
    names = [r["job"] for r in status.value]
    zone = request.app[ZONE_KEY]
    drawing = views.timeline(answer.value, names, zone)
    return render(
        request,
        "timeline.html",
        title="Timeline",
        live=status.live and answer.live,
        window=window,
        ranges=tuple(RANGES),
        drawing=drawing,
        truncated=answer.value["truncated"],
    )


def start_day(request: web.Request, zone: str) -> tuple[datetime, str]:
    """`from`: a day (YYYY-MM-DD in `zone`) to look ahead from, today to a year on."""
    now = datetime.now(UTC)
    raw = request.query.get("from", "")
    if not raw:
        return now, ""
    try:
        day = datetime.strptime(raw, "%Y-%m-%d").replace(tzinfo=ZoneInfo(zone))
    except ValueError:
        raise Problem(400, "Bad request", '"from" must be a day such as 2027-03-14.') from None
    today = now.astimezone(ZoneInfo(zone)).replace(hour=0, minute=0, second=0, microsecond=0)
    if not today <= day <= today + timedelta(days=366):
        raise Problem(400, "Bad request", '"from" must be a day from today to a year from now.')
    return max(now, day.astimezone(UTC)), raw


async def upcoming_page(request: web.Request) -> web.StreamResponse:
    days = number(request, "days", 2, 1, 14)
    zone = request.app[ZONE_KEY]
    start, shown = start_day(request, zone)
    status: Answer = await fetch(request, lambda s: s.status(0))
    found, cut = views.upcoming(status.value, start, days, zone)
    return render(
        request,
        "upcoming.html",
        title="Upcoming",
        live=status.live,
        days=days,
        start=shown,
        found=found,
        cut=cut,
        zone=zone,
    )


async def live_events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: `change` when a run of a job you may see starts or ends."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    live = request.app[LIVE_KEY]
    async for event in live.follow():
        await response.write(event)
    return response


def make_app(source: Source, token: str, zone: Optional[str] = None) -> web.Application:
    app = web.Application(middlewares=[headers, errors, token_check])
    app[SOURCE_KEY] = source
    app[TOKEN_KEY] = token
    app[ZONE_KEY] = zone or machine_zone()
    app[LIVE_KEY] = Live(lambda after: blocking(functools.partial(source.events, after)))
    app[TEMPLATES_KEY] = jinja2.Environment(
        loader=jinja2.PackageLoader("cronplus.web", "templates"),
        autoescape=jinja2.select_autoescape(["html", "svg"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    app[TEMPLATES_KEY].filters["tojson_attr"] = lambda v: json.dumps(v)
    from importlib.resources import files

    static = files("cronplus.web") / "static"
    app.router.add_get("/", root)
    app.router.add_get("/jobs", jobs_page, name="jobs")
    app.router.add_get("/jobs/{job}", job_page, name="job")
    app.router.add_get("/jobs/{job}/runs/{run_id}/output", output_text, name="output")
    app.router.add_post("/jobs/{job}/{action}", act, name="act")
    app.router.add_get("/timeline", timeline_page, name="timeline")
    app.router.add_get("/upcoming", upcoming_page, name="upcoming")
    app.router.add_get("/live", live_events, name="live")
    app.router.add_static("/static/", str(static), name="static")
    app.on_shutdown.append(lambda app: app[LIVE_KEY].close())
    return app
