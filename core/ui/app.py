"""The ASGI app: the page (``static/``), the JSON API under ``/api/...``, and the access checks.

Access: bound to a loopback address, requests must name a loopback host (``Host:`` header), which
stops a web page elsewhere from reaching the server through DNS rebinding. Bound wider, every
request must carry the token printed at start: ``?token=...`` (the page then keeps it in a
cookie), or the ``X-Lamina-Token`` header. Every response body is masked: values of the server's
secret-named environment variables become ``***``, as in task logs (:mod:`lamina.redaction`).
"""

from __future__ import annotations

import hmac
import json
import mimetypes
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import LaminaError, NotFound
from ..redaction import redact, secret_values
from .queries import BadRequest, UIData, check_relative

STATIC = Path(__file__).with_name("static")
TOKEN_COOKIE = "lamina_ui_token"
TOKEN_HEADER = "x-lamina-token"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


class Masker:
    """Replaces secret values (and their JSON-escaped forms) in response bodies."""

    def __init__(self, secrets: list[bytes] | None = None) -> None:
        found = list(secrets if secrets is not None else secret_values())
        escaped = [json.dumps(s.decode("utf-8", "replace"), ensure_ascii=False)[1:-1].encode() for s in found]
        self.secrets = sorted({*found, *escaped}, key=len, reverse=True)

    def text(self, value: str) -> str:
        return redact(value.encode(), self.secrets).decode() if self.secrets else value

    def body(self, data: bytes) -> bytes:
        return redact(data, self.secrets) if self.secrets else data


class MaskedJSON(JSONResponse):
    masker: Masker = Masker([])

    def render(self, content: Any) -> bytes:
        return self.masker.body(json.dumps(content, ensure_ascii=False, default=str).encode("utf-8"))


def _int(request: Request, name: str, default: int | None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer, got {raw!r}") from None


def build_app(data: UIData, *, token: str | None = None, masker: Masker | None = None) -> Starlette:
    """The app over ``data``; with ``token`` every request must present it."""
    mask = masker or Masker()
    json_response = type("JSON", (MaskedJSON,), {"masker": mask})

    def api(handler: Callable[[Request], Any]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            from starlette.concurrency import run_in_threadpool

            try:
                result = await run_in_threadpool(handler, request)
            except NotFound as e:
                return json_response({"error": str(e)}, status_code=404)
            except BadRequest as e:
                return json_response({"error": str(e)}, status_code=400)
            except (LaminaError, ValueError) as e:
                return json_response({"error": str(e)}, status_code=400)
            if isinstance(result, Response):
                return result
            return json_response(result)

        return endpoint

    def task_args(r: Request) -> tuple[str, str, str, int | None]:
        p = r.path_params
        return p["run_id"], p["step"], p["task_id"], _int(r, "attempt", None)

    def runs(r: Request) -> Any:
        q = r.query_params
        return data.runs(
            flow=q.get("flow") or None,
            status=q.get("status") or None,
            tags=[t for t in q.getlist("tag") if t],
            user=q.get("user") or None,
            limit=_int(r, "limit", 50),  # type: ignore[arg-type]
            offset=_int(r, "offset", 0),  # type: ignore[arg-type]
        )

    def download(r: Request) -> Response:
        run_id, step, task_id, attempt = task_args(r)
        name = r.path_params["name"]
        ref, path = data.artifact(run_id, step, task_id, name, attempt)
        filename = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{task_id}-{name}.{ref.serializer}")
        headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
        if path is not None:
            return FileResponse(path, media_type="application/octet-stream", headers=headers)
        return Response(data.artifact_bytes(ref.key), media_type="application/octet-stream", headers=headers)

    def compare(r: Request) -> Any:
        q = r.query_params
        runs = [x for x in ",".join(q.getlist("runs")).split(",") if x]
        branches = [x for x in ",".join(q.getlist("branches")).split(",") if x]
        if branches:
            if not q.get("flow"):
                raise BadRequest("comparing branches needs the flow: ?flow=FLOW&branches=A,B")
            runs += data.latest_of_branches(q["flow"], branches)
        return data.compare(runs)

    def code_file(r: Request) -> Any:
        return data.code_file(r.path_params["run_id"], check_relative(r.path_params["path"]))

    def page(_: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    def refuse(r: Request) -> Response:
        return json_response({"error": f"refused: no such API path {r.url.path!r}"}, status_code=404)

    task = "/api/runs/{run_id}/tasks/{step}/{task_id}"
    routes = [
        Route("/", page),
        Route("/api/flows", api(lambda r: data.flows())),
        Route("/api/runs", api(runs)),
        Route("/api/runs/{run_id}", api(lambda r: data.run(r.path_params["run_id"]))),
        Route("/api/runs/{run_id}/metrics", api(lambda r: data.metrics(r.path_params["run_id"]))),
        Route("/api/runs/{run_id}/code", api(lambda r: data.code(r.path_params["run_id"]))),
        Route("/api/runs/{run_id}/code/{path:path}", api(code_file)),
        Route(task, api(lambda r: data.task(*task_args(r)))),
        Route(task + "/logs", api(lambda r: data.logs(*task_args(r)))),
        Route(task + "/artifacts/{name}", api(download)),
        Route("/api/compare", api(compare)),
        Route("/api/{rest:path}", refuse),
        Mount("/static", StaticFiles(directory=STATIC, follow_symlink=False), name="static"),
    ]
    middleware = [Middleware(_Guard, token=token, masker=mask)]
    mimetypes.add_type("text/javascript", ".js")
    return Starlette(routes=routes, middleware=middleware)


def _hostname(header: str) -> str:
    """The host part of a ``Host:`` header (``[::1]:8080`` -> ``[::1]``)."""
    if header.startswith("["):
        return header.split("]")[0] + "]"
    return header.rsplit(":", 1)[0]


class _Guard(BaseHTTPMiddleware):
    """Host check on loopback, token check when bound wider, and a strict content policy."""

    def __init__(self, app: Any, token: str | None, masker: Masker) -> None:
        super().__init__(app)
        self.token = token
        self.masker = masker

    async def dispatch(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        set_cookie = False
        if self.token is None:
            if _hostname(request.headers.get("host") or "") not in LOOPBACK_HOSTS:
                return Response("refused: this server answers only to 127.0.0.1 / localhost\n", status_code=403)
        else:
            given = (
                request.query_params.get("token")
                or request.headers.get(TOKEN_HEADER)
                or request.cookies.get(TOKEN_COOKIE)
                or ""
            )
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                return Response(
                    "refused: this server needs the token printed by `lamina ui` (?token=...)\n", status_code=401
                )
            set_cookie = request.query_params.get("token") is not None
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "connect-src 'self'; frame-ancestors 'none'"
        )
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        if set_cookie and self.token is not None:
            response.set_cookie(TOKEN_COOKIE, self.token, httponly=True, samesite="strict")
        return response
