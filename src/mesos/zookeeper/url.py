"""ZooKeeper URLs the way Mesos reads ``--zk`` and ``--master``.

``zk://[user:password@]host1:port1[,host2:port2,...]/path`` names an ensemble and
the znode the masters meet under; the optional credentials become ZooKeeper
``digest`` auth. ``file:///some/file`` names a file whose content is such a URL (so
a secret need not appear on a command line). ``--master`` also accepts a plain
``host:port`` (or ``master@host:port``) for a single master.

Every malformed input raises :class:`ValueError` saying which part is wrong, so the
daemons can print it as a one-line flag error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_PORT = 2181

# A file:// URL may name a file holding another file:// URL; stop going round in circles.
_MAX_FILE_HOPS = 8


@dataclass(frozen=True)
class ZkUrl:
    """A parsed ``zk://`` URL: ensemble, znode path and optional digest credentials."""

    servers: tuple[tuple[str, int], ...]
    path: str
    credentials: tuple[str, str] | None = None

    @property
    def hosts(self) -> str:
        """The connect string kazoo takes: ``host1:port1,host2:port2``."""
        return ",".join(_join_host(host, port) for host, port in self.servers)

    @property
    def digest(self) -> str | None:
        """``user:password`` for ZooKeeper's digest scheme, or None."""
        return None if self.credentials is None else ":".join(self.credentials)

    def __str__(self) -> str:
        auth = f"{self.digest}@" if self.credentials is not None else ""
        return f"zk://{auth}{self.hosts}{self.path}"

    def redacted(self) -> str:
        """The URL with the password hidden, for logs and ``/flags``."""
        auth = f"{self.credentials[0]}:***@" if self.credentials is not None else ""
        return f"zk://{auth}{self.hosts}{self.path}"


def parse_zk_url(text: str) -> ZkUrl:
    """Parse a ``--zk`` value: ``zk://...`` or ``file://PATH`` holding one."""
    return _parse(text.strip(), hops=0)


def parse_master(text: str) -> ZkUrl | tuple[str, int]:
    """Parse a ``--master`` value: a ZooKeeper URL, or one master's ``(host, port)``.

    ``file://`` content may itself be either form, as in Mesos.
    """
    text = text.strip()
    for _ in range(_MAX_FILE_HOPS):
        if text.startswith("zk://"):
            return _parse(text, hops=0)
        if not text.startswith("file://"):
            return _parse_master_address(text)
        text = _read_url_file(text)
    raise ValueError(f"Too many nested file:// URLs in --master (more than {_MAX_FILE_HOPS})")


def _parse(text: str, hops: int) -> ZkUrl:
    if text.startswith("file://"):
        if hops >= _MAX_FILE_HOPS:
            raise ValueError(f"Too many nested file:// URLs (more than {_MAX_FILE_HOPS})")
        return _parse(_read_url_file(text), hops + 1)
    if not text.startswith("zk://"):
        raise ValueError(f"Expecting 'zk://' or 'file://' at the start of the URL: '{text}'")
    rest = text[len("zk://"):]
    slash = rest.find("/")
    authority, path = (rest, "/") if slash < 0 else (rest[:slash], rest[slash:])
    credentials: tuple[str, str] | None = None
    at = authority.rfind("@")
    if at >= 0:
        credentials = _parse_credentials(authority[:at], text)
        authority = authority[at + 1:]
    servers = tuple(_parse_server(item, text) for item in authority.split(","))
    return ZkUrl(servers=servers, path=_check_path(path, text), credentials=credentials)


def _read_url_file(text: str) -> str:
    path = text[len("file://"):]
    if not path:
        raise ValueError("Expecting a file name after 'file://'")
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        raise ValueError(f"Cannot read the URL in '{path}': {exc.strerror or exc}") from None


def _parse_credentials(auth: str, url: str) -> tuple[str, str]:
    user, sep, password = auth.partition(":")
    if not sep or not user or ":" in password:
        raise ValueError(f"Expecting 'user:password' before '@' in '{_redact(url)}'")
    return user, password


def _parse_server(item: str, url: str) -> tuple[str, int]:
    if not item:
        raise ValueError(f"Empty ZooKeeper server in '{_redact(url)}' (expecting host:port[,host:port])")
    if item.startswith("["):
        close = item.find("]")
        if close < 0:
            raise ValueError(f"Unclosed '[' in ZooKeeper server '{item}'")
        host, tail = item[1:close], item[close + 1:]
        if tail and not tail.startswith(":"):
            raise ValueError(f"Expecting ':port' after ']' in ZooKeeper server '{item}'")
        port_text = tail[1:] if tail else ""
    else:
        host, sep, port_text = item.partition(":")
        if sep and not port_text:
            raise ValueError(f"Missing port after ':' in ZooKeeper server '{item}'")
        if ":" in port_text:
            raise ValueError(f"Bad ZooKeeper server '{item}' (write IPv6 addresses as [addr]:port)")
    if not host:
        raise ValueError(f"Missing host in ZooKeeper server '{item}'")
    return host, _check_port(port_text, item) if port_text else DEFAULT_PORT


def _check_port(text: str, item: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"Bad port '{text}' in '{item}' (expecting 1-65535)")
    return int(text)


def _check_path(path: str, url: str) -> str:
    if path == "/":
        return path
    if path.endswith("/"):
        raise ValueError(f"The znode path in '{_redact(url)}' must not end with '/'")
    for part in path[1:].split("/"):
        if part in ("", ".", ".."):
            raise ValueError(f"Bad znode path '{path}' in '{_redact(url)}' (empty, '.' or '..' part)")
        if "\x00" in part:
            raise ValueError(f"Bad znode path '{path}': NUL character")
    return path


def _parse_master_address(text: str) -> tuple[str, int]:
    address = text.split("@", 1)[1] if "@" in text else text
    host, sep, port_text = address.rpartition(":")
    if not sep or not host:
        raise ValueError(
            f"Expecting --master as 'host:port', 'zk://...' or 'file://...', got '{text}'"
        )
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, _check_port(port_text, text)


def _join_host(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _redact(url: str) -> str:
    """``url`` with any password replaced, for error messages."""
    if not url.startswith("zk://"):
        return url
    rest = url[len("zk://"):]
    slash = rest.find("/")
    authority = rest if slash < 0 else rest[:slash]
    at = authority.rfind("@")
    if at < 0:
        return url
    user = authority[:at].partition(":")[0]
    return f"zk://{user}:***@{rest[at + 1:]}"
