"""Plain-text error answers in the shape Mesos gives them, and request helpers."""

from __future__ import annotations

from aiohttp import web

from mesos.errors import ConflictError, ForbiddenError, MesosError, NotFoundError, ValidationError

JSON = "application/json"


def text(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message, content_type="text/plain")


def bad_request(message: str) -> web.Response:
    return text(400, message)


def from_error(exc: MesosError) -> web.Response:
    """Map an error category to its status code; the message goes in the body."""
    if isinstance(exc, ValidationError):
        return text(400, str(exc))
    if isinstance(exc, NotFoundError):
        return text(404, str(exc))
    if isinstance(exc, ConflictError):
        return text(409, str(exc))
    if isinstance(exc, ForbiddenError):
        return text(403, str(exc))
    return text(500, str(exc))


def check_post_json(request: web.Request) -> web.Response | None:
    """The checks Mesos makes before it parses a v1 call; None when all pass."""
    if request.method != "POST":
        return web.Response(status=405, text="Expecting POST", headers={"Allow": "POST"})
    content_type = request.headers.get("Content-Type")
    if content_type is None:
        return bad_request("Expecting 'Content-Type' to be present")
    if content_type.split(";")[0].strip() != JSON:
        if content_type.split(";")[0].strip() == "application/x-protobuf":
            return text(415, "Protobuf requests are not supported; use 'application/json'")
        return text(415, f"Expecting 'Content-Type' of {JSON}")
    return None


def accepts_json(request: web.Request) -> bool:
    accept = request.headers.get("Accept")
    if not accept:
        return True
    return any(part.split(";")[0].strip() in (JSON, "*/*", "application/*") for part in accept.split(","))
