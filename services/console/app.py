"""The console's HTTP service: REST + OpenAPI, the live stream, and the web UI.

``create_app(bus, registry, settings, clock=…)`` returns a FastAPI app whose lifespan runs
the consumers of ``services.console.runtime``. Endpoints (JSON unless noted; every
``POST`` needs the CSRF header, see ``services.console.auth``):

==========================================  ===============  ============================
endpoint                                    who              what
==========================================  ===============  ============================
``GET  /`` , ``/static/…``                  anyone           the web UI (local assets)
``GET  /healthz`` , ``/metrics``            anyone           ops
``GET  /api/csrf``                          anyone           token for the sign-in form
``POST /api/login`` , ``/api/logout``       anyone / user    session cookie
``GET  /api/me``                            user             name, role, permissions
``GET  /api/snapshot``                      user             everything + last_event_id
``GET  /api/stream``                        user             server-sent events
``GET  /api/geo``                           user             counties + township cells
``GET  /api/warnings[?hazard&level&county]``user             list, newest first
``GET  /api/warnings/{id}``                 user             detail: evidence, history,
                                                             coverage, acks
``GET  /api/warnings/{id}/messages/{mid}``  user             one message as JSON
``GET  /cap/{message_id}.xml``              user             CAP 1.2 (dispatch renderer)
``GET  /api/approvals`` ``/api/townships``  user             queue, township levels
``GET  /api/rejected`` ``/api/stations``    user             input rejects, station health
                                                             (stale, faulty)
``POST /api/warnings/{id}/acknowledge``     duty_officer     → OperatorCommand
``POST /api/warnings/{id}/cancel``          duty_officer     → (reason required)
``POST /api/warnings/{id}/approve|reject``  approver         → (no self-approval)
``POST /api/compose/check``                 user             channel limits, population
``POST /api/warnings``                      duty_officer,    issue a manual warning
                                            approver
``POST /api/replay``                        duty_officer     start_replay(name, speed)
``GET  /api/audit``                         approver         the audit log, newest first
==========================================  ===============  ============================

Admins may do everything. Actions answer ``202`` once the command is on ``commands``;
the warning changes when the lifecycle applies it, and the live stream shows that.
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Body, Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from schemas.command import Action, ManualWarning
from schemas.common import Hazard, Level
from services.common.bus.base import Bus
from services.common.clock import Clock, SystemClock
from services.console.actions import ActionRefused, decide
from services.console.audit import AuditLog, Outcome
from services.console.auth import Permission, Session, SessionSigner, User, UserStore, csrf_ok
from services.console.compose import ChannelChecker, check_manual, count_segments, population_of
from services.console.geo import GeoRegistry, build_geo, towns_lookup
from services.console.metrics import ConsoleMetrics
from services.console.readmodel import ReadModel, iso
from services.console.runtime import ConsoleRuntime
from services.console.settings import ConsoleSettings
from services.console.stream import EventHub, parse_last_event_id

STATIC_DIR = Path(__file__).parent / "static"
SESSION_COOKIE = "ew_session"
CSRF_COOKIE = "ew_csrf"
CSRF_HEADER = "x-csrf-token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

StartReplay = Callable[[str, float], Awaitable[object] | object]
"""``start_replay(name, speed)``: start a scenario replay (return quickly; run it in a task)."""

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]


# ------------------------------------------------------------------ request bodies


class LoginBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class ReasonBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="", max_length=500)


class ComposeDraft(BaseModel):
    """The compose form as typed (checked live, so nothing is required yet)."""

    model_config = ConfigDict(extra="forbid")
    hazard: Hazard = "rainstorm"
    level: Level = "yellow"
    township_codes: list[str] = Field(default_factory=list, max_length=400)
    headline: str = Field(default="", max_length=400)
    description: str = Field(default="", max_length=4000)
    valid_for_s: int = Field(default=6 * 3600, ge=600, le=7 * 86400)


class ReplayBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64)
    speed: float = Field(default=60.0, ge=0.0, le=1_000_000.0, description="× real time; 0 = as fast as possible")


class Principal(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)
    user: User
    session: Session


# ------------------------------------------------------------------ the service object


class Console:
    """Everything one console instance holds; ``app.state.console``."""

    def __init__(
        self,
        bus: Bus,
        registry: GeoRegistry,
        settings: ConsoleSettings,
        clock: Clock,
        metrics: ConsoleMetrics,
        users: UserStore,
        start_replay: StartReplay | None,
        wall_time: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.clock = clock
        self.metrics = metrics
        self.users = users
        self.start_replay = start_replay
        self.wall_time = wall_time
        self.signer = SessionSigner(settings.session_secret.get_secret_value().encode("utf-8"), settings.session_ttl_s)
        self.audit = AuditLog(settings.audit_file, fsync=settings.audit_fsync)
        self.hub = EventHub(settings.stream_buffer_events)
        self.model = ReadModel(keep_inactive_s=settings.keep_inactive_s)
        self.runtime = ConsoleRuntime(
            bus,
            clock,
            self.hub,
            self.audit,
            metrics,
            self.model,
            settings.instance_id,
            watch_observations=settings.watch_observations,
            tick_interval_s=settings.tick_interval_s,
            batch_records=settings.consumer_batch_records,
        )
        self.towns = towns_lookup(registry)
        self.checker = ChannelChecker(settings.compose_channels)
        self.cap_available = importlib.util.find_spec("services.dispatch.render.cap") is not None
        self._geo: dict[str, Any] | None = None
        self._geo_lock = asyncio.Lock()
        self._failures: dict[str, tuple[int, float]] = {}
        self._revoked: dict[str, float] = {}
        """Signed-out session ids → their expiry (this instance only; see docs/console.md)."""

    async def geo(self) -> dict[str, Any]:
        async with self._geo_lock:
            if self._geo is None:
                self._geo = await asyncio.to_thread(build_geo, self.registry)
        return self._geo

    def now(self) -> datetime:
        return self.clock.now()

    def session_of(self, request: Request) -> Session | None:
        session = self.signer.read(request.cookies.get(SESSION_COOKIE), self.wall_time())
        if session is None or session.sid in self._revoked:
            return None
        return session

    def revoke(self, session: Session) -> None:
        now = self.wall_time()
        self._revoked = {sid: exp for sid, exp in self._revoked.items() if exp > now}
        self._revoked[session.sid] = session.expires_at

    def principal(self, request: Request) -> Principal | None:
        session = self.session_of(request)
        if session is None:
            return None
        user = self.users.get(session.username)
        return None if user is None else Principal(user=user, session=session)

    def record(
        self,
        request: Request,
        who: Principal | None,
        action: str,
        outcome: Outcome,
        *,
        target: str = "",
        detail: str = "",
        command_id: str | None = None,
        actor: str | None = None,
    ) -> None:
        self.audit.append(
            actor=actor or (who.user.username if who else "anonymous"),
            role=who.user.role if who else "",
            action=action,
            outcome=outcome,
            target=target,
            detail=detail,
            command_id=command_id,
            client=request.client.host if request.client else "",
        )
        self.metrics.actions.labels(action, outcome).inc()

    # -- sign-in throttling (per user name, wall clock)

    def locked_out(self, username: str) -> bool:
        failures, until = self._failures.get(username, (0, 0.0))
        return failures >= self.settings.login_max_failures and self.wall_time() < until

    def failed_login(self, username: str) -> None:
        failures, _ = self._failures.get(username, (0, 0.0))
        self._failures[username] = (failures + 1, self.wall_time() + self.settings.login_lockout_s)
        if len(self._failures) > 10_000:
            self._failures.clear()

    def me(self, who: Principal) -> dict[str, Any]:
        return {
            "username": who.user.username,
            "display_name": who.user.display_name,
            "role": who.user.role,
            "permissions": sorted(who.user.permissions),
            "csrf": who.session.csrf,
            "session_expires_at": datetime.fromtimestamp(who.session.expires_at, UTC).isoformat(),
        }


class SecurityMiddleware:
    """Security headers on every response; CSRF check on every state-changing request."""

    def __init__(self, app: ASGIApp, console: Console) -> None:
        self.app = app
        self.console = console

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        if scope["method"] in UNSAFE_METHODS:
            request = Request(scope)
            session = self.console.session_of(request)
            if not csrf_ok(
                request.headers.get(CSRF_HEADER), request.cookies.get(CSRF_COOKIE), session, self.console.signer
            ):
                who = self.console.principal(request)
                self.console.record(
                    request, who, "csrf", "denied", target=scope["path"], detail="missing or wrong CSRF token"
                )
                response = JSONResponse(
                    {"detail": {"error": "csrf", "message": "missing or wrong CSRF token"}}, status_code=403
                )
                await response(scope, receive, send_with_headers)
                return
        await self.app(scope, receive, send_with_headers)


def _error(status: int, code: str, message: str) -> HTTPException:
    return HTTPException(status_code=status, detail={"error": code, "message": message})


def _split(values: list[str]) -> list[str]:
    return [v for raw in values for v in raw.split(",") if v]


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def require_user(request: Request) -> Principal:
    who = console_of(request).principal(request)
    if who is None:
        raise _error(401, "unauthenticated", "sign in first")
    return who


def require(permission: Permission) -> Callable[[Request], Principal]:
    """A dependency: the signed-in user, who must hold ``permission`` (403, audited)."""

    def check(request: Request) -> Principal:
        who = require_user(request)
        if not who.user.can(permission):
            console_of(request).record(
                request, who, permission, "denied", target=request.url.path, detail=f"role {who.user.role}"
            )
            raise _error(403, "role", f"role {who.user.role} may not {permission}")
        return who

    return check


CurrentUser = Annotated[Principal, Depends(require_user)]
WarningActionName = Literal["acknowledge", "approve", "reject", "cancel"]


# ------------------------------------------------------------------ the factory


def create_app(
    bus: Bus,
    registry: GeoRegistry,
    settings: ConsoleSettings,
    *,
    clock: Clock | None = None,
    metrics_registry: CollectorRegistry | None = None,
    start_replay: StartReplay | None = None,
    users: UserStore | None = None,
    wall_time: Callable[[], float] = time.time,
    static_dir: Path = STATIC_DIR,
) -> FastAPI:
    """Build the console app. ``clock`` is event time (a replay passes its virtual clock);
    sessions and the audit log use the wall clock."""
    if users is None:
        if settings.users_file is None:
            msg = "ConsoleSettings.users_file is required when no UserStore is given"
            raise ValueError(msg)
        users = UserStore(settings.users_file)
    console = Console(
        bus,
        registry,
        settings,
        clock or SystemClock(),
        ConsoleMetrics(metrics_registry),
        users,
        start_replay,
        wall_time,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await console.runtime.start()
        try:
            yield
        finally:
            await console.runtime.close()

    app = FastAPI(
        title="earlywarn console",
        version="1",
        description="Duty officer's live view, approvals and acknowledgements.",
        docs_url=None,  # the Swagger UI loads from a CDN; /openapi.json is served
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.console = console
    app.add_middleware(SecurityMiddleware, console=console)
    app.mount("/static", StaticFiles(directory=static_dir), name="static")

    # ---------------------------------------------------------------- pages and ops

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(static_dir / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/healthz", tags=["ops"])
    def healthz() -> JSONResponse:
        """200 while the consumers run (503 otherwise), with the stream's last event id."""
        ok = console.runtime.healthy()
        return JSONResponse(
            {
                "status": "ok" if ok else "unhealthy",
                "last_event_id": console.hub.last_id,
                "warnings": len(console.model.warnings),
            },
            status_code=200 if ok else 503,
        )

    @app.get("/metrics", tags=["ops"])
    def metrics() -> Response:
        """Prometheus text format: ``earlywarn_console_*`` (see docs/console.md)."""
        return Response(console.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    # ---------------------------------------------------------------- session

    @app.get("/api/csrf", tags=["session"])
    def csrf(request: Request, response: Response) -> dict[str, str]:
        """A CSRF token (and the ``ew_csrf`` cookie) for the sign-in form; the session's own once signed in."""
        session = console.session_of(request)
        token = session.csrf if session is not None else request.cookies.get(CSRF_COOKIE, "")
        if session is None and not console.signer.anonymous_csrf_valid(token):
            token = console.signer.anonymous_csrf()
        response.set_cookie(
            CSRF_COOKIE, token, httponly=False, samesite="strict", secure=settings.cookie_secure, path="/"
        )
        return {"csrf": token}

    @app.post("/api/login", tags=["session"])
    async def login(request: Request, body: LoginBody, response: Response) -> dict[str, Any]:
        """Sign in: sets ``ew_session`` (HttpOnly) and ``ew_csrf``; 401 bad credentials, 429 locked out."""
        if console.locked_out(body.username):
            console.record(request, None, "login", "denied", actor=body.username, detail="locked out after failures")
            console.metrics.logins.labels("locked").inc()
            raise _error(429, "locked", "too many failed sign-ins; try again later")
        user = await asyncio.to_thread(console.users.authenticate, body.username, body.password)
        if user is None:
            console.failed_login(body.username)
            console.record(request, None, "login", "denied", actor=body.username, detail="wrong user name or password")
            console.metrics.logins.labels("failed").inc()
            raise _error(401, "bad_credentials", "wrong user name or password")
        console._failures.pop(body.username, None)
        cookie, session = console.signer.issue(user.username, console.wall_time())
        ttl = int(settings.session_ttl_s)
        response.set_cookie(
            SESSION_COOKIE,
            cookie,
            max_age=ttl,
            httponly=True,
            samesite="strict",
            secure=settings.cookie_secure,
            path="/",
        )
        response.set_cookie(
            CSRF_COOKIE,
            session.csrf,
            max_age=ttl,
            httponly=False,
            samesite="strict",
            secure=settings.cookie_secure,
            path="/",
        )
        who = Principal(user=user, session=session)
        console.record(request, who, "login", "ok", detail=f"session {session.sid}")
        console.metrics.logins.labels("ok").inc()
        return console.me(who)

    @app.post("/api/logout", tags=["session"])
    def logout(request: Request, response: Response, who: CurrentUser) -> dict[str, bool]:
        """Sign out: clears the cookies and revokes the session id on this instance."""
        response.delete_cookie(SESSION_COOKIE, path="/")
        response.delete_cookie(CSRF_COOKIE, path="/")
        console.revoke(who.session)
        console.record(request, who, "logout", "ok", detail=f"session {who.session.sid}")
        return {"signed_out": True}

    @app.get("/api/me", tags=["session"])
    def me(who: CurrentUser) -> dict[str, Any]:
        """The signed-in user: name, role, permissions, CSRF token, session expiry."""
        return console.me(who)

    # ---------------------------------------------------------------- read

    @app.get("/api/snapshot", tags=["read"])
    def snapshot(who: CurrentUser) -> dict[str, Any]:
        """Everything the UI shows, and ``last_event_id``: open ``/api/stream?last_event_id=`` with it."""
        now = console.now()
        model = console.model
        return {
            "last_event_id": console.hub.last_id,
            "now": iso(now),
            "warnings": model.list_warnings(now, limit=500),
            "townships": model.township_levels,
            "queue": model.approval_queue(now),
            "rejected": model.rejected(),
            "health": model.stations.summary(),
            "me": console.me(who),
            "replay": {"available": console.start_replay is not None, "scenarios": list(settings.replay_scenarios)},
            "cap_available": console.cap_available,
        }

    @app.get("/api/stream", tags=["read"])
    async def stream(
        request: Request, who: CurrentUser, last_event_id: Annotated[str | None, Query()] = None
    ) -> EventSourceResponse:
        """Server-sent events; resume with ``Last-Event-ID`` or ``?last_event_id=`` (event types: docs/console.md)."""
        start = parse_last_event_id(request.headers.get("last-event-id"), last_event_id)
        expires = who.session.expires_at

        async def events() -> AsyncIterator[bytes | ServerSentEvent]:
            console.metrics.sse_clients.inc()
            try:
                async for batch, frames in console.hub.batches(start, heartbeat_s=settings.stream_ping_s):
                    if console.wall_time() >= expires:
                        yield ServerSentEvent(data='{"reason":"session expired"}', event="session_expired", sep="\n")
                        return
                    if batch:
                        console.metrics.sse_events_sent.inc(len(batch))
                        yield frames  # pre-encoded frames: one write per batch
            finally:
                console.metrics.sse_clients.dec()

        return EventSourceResponse(
            events(),
            ping=int(settings.stream_ping_s),
            sep="\n",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @app.get("/api/geo", tags=["read"])
    async def geo(_who: CurrentUser) -> JSONResponse:
        """County outlines and township cells as SVG paths (our own geometry; no tiles)."""
        return JSONResponse(await console.geo(), headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/api/warnings", tags=["read"])
    def warnings(
        _who: CurrentUser,
        hazard: Annotated[list[str], Query()] = [],  # noqa: B006  (FastAPI copies query defaults)
        level: Annotated[list[str], Query()] = [],  # noqa: B006
        county: Annotated[list[str], Query()] = [],  # noqa: B006
        township: Annotated[str | None, Query(pattern=r"^\d{9}$")] = None,
        active: bool = False,
        limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    ) -> dict[str, Any]:
        """Warnings, newest first; filter by hazard, level, county (repeat or comma-separate), township, active."""
        now = console.now()
        items = console.model.list_warnings(
            now,
            hazards=_split(hazard),
            levels=_split(level),
            counties=_split(county),
            township=township,
            active_only=active,
            limit=limit,
        )
        return {"now": iso(now), "warnings": items}

    @app.get("/api/warnings/{warning_id}", tags=["read"])
    def warning_detail(warning_id: str, _who: CurrentUser) -> dict[str, Any]:
        """One warning: evidence, message history (CAP/JSON links), coverage, receipts, acknowledgements."""
        detail = console.model.detail(warning_id, console.now())
        if detail is None:
            raise _error(404, "unknown_warning", f"no warning {warning_id}")
        for item in detail["history"]:
            mid = item["message_id"]
            item["json_url"] = f"/api/warnings/{warning_id}/messages/{mid}"
            item["cap_url"] = f"/cap/{mid}.xml" if console.cap_available else None
        detail["townships"] = [
            {
                "code": c,
                "name_zh": t.name_zh if (t := console.towns.get(c)) else c,
                "population": t.population if t else None,
            }
            for c in detail["summary"]["township_codes"]
        ]
        return detail

    @app.get("/api/warnings/{warning_id}/messages/{message_id}", tags=["read"])
    def warning_message(warning_id: str, message_id: str, _who: CurrentUser) -> dict[str, Any]:
        """One message of a warning as its ``WarningMessage`` JSON (the approved copy if there is one)."""
        msg = console.model.message(warning_id, message_id)
        if msg is None:
            raise _error(404, "unknown_message", f"no message {message_id}")
        return msg.model_dump(mode="json")

    @app.get("/cap/{message_id}.xml", tags=["read"], response_class=Response)
    def cap(message_id: str, _who: CurrentUser) -> Response:
        """The message as CAP 1.2 XML, rendered by dispatch's ``render_cap`` (what dispatch sends)."""
        msg = console.model.find_message(message_id)
        if msg is None or not console.cap_available:
            raise _error(404, "unknown_message", f"no CAP for {message_id}")
        from services.dispatch.render.cap import render_cap

        return Response(render_cap(msg, console.towns), media_type="application/cap+xml; charset=utf-8")

    @app.get("/api/approvals", tags=["read"])
    def approvals(_who: CurrentUser) -> dict[str, Any]:
        """Held messages waiting for a second person, soonest deadline first, with ``remaining_s``."""
        now = console.now()
        return {"now": iso(now), "queue": console.model.approval_queue(now)}

    @app.get("/api/townships", tags=["read"])
    def townships(_who: CurrentUser) -> dict[str, Any]:
        """Township code → highest active level (townships without one are left out)."""
        return {"levels": console.model.township_levels}

    @app.get("/api/rejected", tags=["read"])
    def rejected(_who: CurrentUser) -> dict[str, Any]:
        """Rejected-input counts by reason and the most recent rejections (``obs.rejected``)."""
        return console.model.rejected()

    @app.get("/api/stations", tags=["read"])
    def stations(_who: CurrentUser) -> dict[str, Any]:
        """Station health per kind: ok, stale (late) and faulty (suppressed by the rules)."""
        return console.model.stations.summary()

    @app.get("/api/audit", tags=["read"])
    def audit(
        _who: Annotated[Principal, Depends(require("audit"))],
        limit: Annotated[int, Query(ge=1, le=5000)] = 200,
        actor: Annotated[str | None, Query(max_length=64)] = None,
    ) -> dict[str, Any]:
        """The audit log, newest first (approvers and admins); ``actor`` filters by user."""
        return {"entries": console.audit.tail(limit, actor)}

    # ---------------------------------------------------------------- actions

    async def act(
        request: Request,
        who: Principal,
        action: Action,
        warning_id: str | None,
        reason: str = "",
        manual: ManualWarning | None = None,
    ) -> JSONResponse:
        target = warning_id or (f"{manual.hazard}:{','.join(manual.township_codes)}" if manual else "")
        try:
            decision = decide(
                who.user,
                action,
                console.now(),
                warning=console.model.warnings.get(warning_id or ""),
                warning_id=warning_id,
                reason=reason,
                manual=manual,
            )
        except ActionRefused as refusal:
            outcome: Outcome = "invalid" if refusal.status in (404, 409, 422) else "denied"
            console.record(request, who, action, outcome, target=target, detail=f"{refusal.code}: {refusal.message}")
            raise _error(refusal.status, refusal.code, refusal.message) from refusal
        command = decision.command
        try:
            await console.runtime.publish_command(command, decision.key)
        except Exception as exc:
            console.record(
                request, who, action, "error", target=target, detail=repr(exc)[:300], command_id=command.command_id
            )
            raise _error(503, "publish_failed", "the command could not be published; try again") from exc
        detail = reason.strip() or (manual.headline if manual else "")
        console.record(request, who, action, "published", target=target, detail=detail, command_id=command.command_id)
        return JSONResponse(
            {"command_id": command.command_id, "status": "published", "key": decision.key}, status_code=202
        )

    @app.post("/api/warnings/{warning_id}/{action}", tags=["actions"], status_code=202)
    async def warning_action(
        warning_id: str,
        action: WarningActionName,
        request: Request,
        who: CurrentUser,
        body: Annotated[ReasonBody | None, Body()] = None,
    ) -> JSONResponse:
        """acknowledge | approve | reject | cancel (cancel and reject need ``reason``); 202 once on ``commands``."""
        return await act(request, who, action, warning_id, reason=body.reason if body else "")

    @app.post("/api/compose/check", tags=["actions"])
    def compose_check(draft: ComposeDraft, who: CurrentUser) -> dict[str, Any]:
        """Live check of a draft manual warning: population reached, each channel's text against its limits."""
        try:
            manual = ManualWarning(
                hazard=draft.hazard,
                level=draft.level,
                township_codes=tuple(draft.township_codes),
                headline=draft.headline or "-",
                description=draft.description,
                valid_for_s=draft.valid_for_s,
            )
        except ValidationError as exc:
            population, unknown = population_of(draft.township_codes, console.towns)
            return {
                "valid": False,
                "errors": [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()],
                "population": population,
                "townships": len(set(draft.township_codes)),
                "unknown_townships": unknown,
                "headline": count_segments(draft.headline).as_json(draft.headline),
                "description": count_segments(draft.description).as_json(draft.description),
                "channels": [],
            }
        result = check_manual(manual, who.user.username, console.now(), console.towns, console.checker)
        result["headline"] = count_segments(draft.headline).as_json(draft.headline)
        problems = []
        if not draft.headline.strip():
            problems.append("headline: required")
        if result["unknown_townships"]:
            problems.append(f"township_codes: unknown {', '.join(result['unknown_townships'])}")
        result["valid"] = not problems
        result["errors"] = problems
        return result

    @app.post("/api/warnings", tags=["actions"], status_code=202)
    async def issue_manual(request: Request, manual: ManualWarning, who: CurrentUser) -> JSONResponse:
        """Issue a manual warning (202: the command is on ``commands``); orange/red wait for approval."""
        unknown = [c for c in manual.township_codes if c not in console.towns]
        if unknown:
            console.record(request, who, "issue_manual", "invalid", detail=f"unknown townships {unknown}")
            raise _error(422, "unknown_township", f"unknown township codes: {', '.join(unknown)}")
        return await act(request, who, "issue_manual", None, reason=manual.description[:500], manual=manual)

    @app.post("/api/replay", tags=["actions"], status_code=202)
    async def replay(
        request: Request, body: ReplayBody, who: Annotated[Principal, Depends(require("replay"))]
    ) -> dict[str, Any]:
        """Start a scenario replay at ``speed`` × real time (duty officers and admins)."""
        if console.start_replay is None:
            console.record(request, who, "replay", "invalid", target=body.name, detail="no replay wired")
            raise _error(501, "no_replay", "scenario replay is not available in this deployment")
        if body.name not in settings.replay_scenarios:
            console.record(request, who, "replay", "invalid", target=body.name, detail="unknown scenario")
            raise _error(422, "unknown_scenario", f"unknown scenario {body.name!r}")
        try:
            started = console.start_replay(body.name, body.speed)
            if inspect.isawaitable(started):
                await started
        except Exception as exc:
            console.record(request, who, "replay", "error", target=body.name, detail=repr(exc)[:300])
            raise _error(500, "replay_failed", f"the replay did not start: {exc}") from exc
        console.record(request, who, "replay", "ok", target=body.name, detail=f"speed {body.speed:g}")
        return {"started": True, "name": body.name, "speed": body.speed}

    return app
