"""Blocking HTTP to masters and agents, with every failure turned into one :class:`CliError`.

The CLI makes a handful of short requests per command, so it talks plain
``http.client`` rather than running an event loop. Redirects are followed by hand
(a bounded number of hops) because a standby master answers ``307`` to POSTs too,
which ``urllib`` refuses to follow.
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.parse
from collections.abc import Iterable, Iterator
from typing import Any

__all__ = ["AgentClient", "CliError", "HttpResponse", "MasterClient", "address_of_pid"]

MAX_REDIRECTS = 3


class CliError(Exception):
    """A failure to report as one line on stderr and exit status 1 (never a traceback)."""


def _one_line(text: str, limit: int = 500) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def address_of_pid(pid: str) -> str:
    """``host:port`` of a libprocess pid such as ``slave(1)@127.0.0.1:5051``."""
    return pid.rsplit("@", 1)[-1]


class HttpResponse:
    """A response whose body was read in full (``stream`` is not used)."""

    def __init__(self, status: int, reason: str, body: bytes, content_type: str) -> None:
        self.status = status
        self.reason = reason
        self.body = body
        self.content_type = content_type

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        try:
            return json.loads(self.body) if self.body else None
        except ValueError as exc:
            raise CliError(f"the server sent a body that is not JSON: {exc}") from None


class _Endpoint:
    """One ``host:port`` that answers HTTP; ``what`` names it in error messages."""

    def __init__(self, address: str, what: str, timeout: float) -> None:
        self.address = address
        self.what = what
        self.timeout = timeout

    def _connect(self, address: str) -> http.client.HTTPConnection:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise CliError(f"{self.what} address '{address}' is not HOST:PORT")
        return http.client.HTTPConnection(host.strip("[]"), int(port), timeout=self.timeout)

    def _send(self, method: str, path: str, body: bytes | None,
              headers: dict[str, str]) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """Send, following redirects; the caller reads and closes the response."""
        address = self.address
        for _ in range(MAX_REDIRECTS + 1):
            conn = self._connect(address)
            try:
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise CliError(self._unreachable(address, exc)) from None
            if response.status not in (301, 302, 303, 307, 308):
                return conn, response
            location = response.getheader("Location") or ""
            response.read()
            conn.close()
            target = urllib.parse.urlsplit(location)
            if not target.netloc:
                raise CliError(f"{self.what} at {address} redirected to '{location}', "
                               "which names no host")
            address = target.netloc
            if target.path and target.path != "/":
                path = target.path + (f"?{target.query}" if target.query else "")
        raise CliError(f"{self.what} at {self.address} redirected more than {MAX_REDIRECTS} times")

    def _unreachable(self, address: str, exc: BaseException) -> str:
        if isinstance(exc, socket.timeout | TimeoutError):
            reason = f"no answer within {self.timeout:g}s"
        elif isinstance(exc, OSError) and exc.strerror:
            reason = exc.strerror
        else:
            reason = str(exc) or type(exc).__name__
        return f"cannot reach the {self.what} at {address}: {reason}"

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> HttpResponse:
        conn, response = self._send(method, path, body, headers or {})
        try:
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise CliError(self._unreachable(self.address, exc)) from None
        finally:
            conn.close()
        return HttpResponse(response.status, response.reason, data,
                            response.getheader("Content-Type") or "")

    def stream(self, method: str, path: str, body: bytes,
               headers: dict[str, str]) -> tuple[HttpResponse, Iterator[bytes]]:
        """Send, then give the status and an iterator over the body as it arrives.

        A non-2xx answer is read in full and the iterator is empty.
        """
        conn, response = self._send(method, path, body, headers)
        head = HttpResponse(response.status, response.reason, b"",
                            response.getheader("Content-Type") or "")
        if not 200 <= response.status < 300:
            head.body = response.read()
            conn.close()
            return head, iter(())
        if conn.sock is not None:
            # The stream is up: a command may stay silent longer than any request timeout.
            conn.sock.settimeout(None)

        def chunks() -> Iterator[bytes]:
            try:
                while True:
                    try:
                        piece = response.read1(65536)
                    except (OSError, http.client.HTTPException) as exc:
                        raise CliError(self._unreachable(self.address, exc)) from None
                    if not piece:
                        return
                    yield piece
            finally:
                conn.close()

        return head, chunks()

    def send_stream(self, path: str, chunks: Iterable[bytes],
                    headers: dict[str, str]) -> HttpResponse:
        """POST a body that is sent as it is produced (chunked), then read the answer.

        For a streaming request such as ATTACH_CONTAINER_INPUT: ``chunks`` may block
        (on our stdin) for as long as it likes, so no timeout applies once connected.
        Not redirected: agents do not redirect.
        """
        conn = self._connect(self.address)
        try:
            conn.connect()
            if conn.sock is not None:
                conn.sock.settimeout(None)
            try:
                conn.request("POST", path, body=chunks, headers=headers, encode_chunked=True)
            except OSError:
                # The agent may have answered and closed before taking all of the body
                # (a refusal, or the container ended): its answer says why, if it can
                # still be read; if not, the broken pipe is the failure.
                try:
                    response = conn.getresponse()
                except (OSError, http.client.HTTPException):
                    pass
                else:
                    data = response.read()
                    return HttpResponse(response.status, response.reason, data,
                                        response.getheader("Content-Type") or "")
                raise
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise CliError(self._unreachable(self.address, exc)) from None
        finally:
            conn.close()
        return HttpResponse(response.status, response.reason, data,
                            response.getheader("Content-Type") or "")

    def get_json(self, path: str, query: dict[str, str] | None = None) -> Any:
        if query:
            path += "?" + urllib.parse.urlencode(query)
        response = self.request("GET", path)
        if response.status != 200:
            raise CliError(f"GET {path.split('?')[0]} on the {self.what} at {self.address} "
                           f"failed: {response.status} {response.reason}"
                           + (f": {_one_line(response.text())}" if response.body else ""))
        return response.json()

    def call(self, call: dict[str, Any]) -> Any:
        """``POST /api/v1`` with one operator call; the decoded answer (None when empty).

        Any non-2xx status becomes a :class:`CliError` that names the call and carries
        the server's own message; 501 says plainly the call is not supported yet.
        """
        name = str(call["type"])
        response = self.request("POST", "/api/v1", json.dumps(call).encode(),
                                {"Content-Type": "application/json",
                                 "Accept": "application/json"})
        if 200 <= response.status < 300:
            return response.json()
        raise CliError(call_error(self.what, self.address, name, response))


def call_error(what: str, address: str, name: str, response: HttpResponse) -> str:
    """The one-line message for an operator call that was answered with an error."""
    message = _one_line(response.text())
    if response.status == 501:
        return (f"the {what} at {address} does not support {name} yet "
                f"(501 Not Implemented){': ' + message if message else ''}")
    if what == "agent" and response.status in (404, 405) and message in (
            "", f"{response.status}: {response.reason}"):
        # The route itself is missing (the bare default body), not some named object.
        return (f"the agent at {address} has no operator API, which {name} needs "
                f"(POST /api/v1 answered {response.status} {response.reason})")
    return f"{name} failed: {response.status} {response.reason}{': ' + message if message else ''}"


class MasterClient(_Endpoint):
    def __init__(self, address: str, timeout: float) -> None:
        super().__init__(address, "master", timeout)


class AgentClient(_Endpoint):
    def __init__(self, address: str, timeout: float) -> None:
        super().__init__(address, "agent", timeout)
