"""The master's own files (its log at ``/master/log``) through ``/files/*`` and the
operator calls LIST_FILES and READ_FILE, with a real master started with --log_dir."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from mesos.testing.cluster import Cluster, http_json

pytestmark = pytest.mark.slow


def post(master: str, body: dict[str, Any]) -> tuple[int, Any]:
    request = urllib.request.Request(f"http://{master}/api/v1", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_masters_log_is_served(tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    with Cluster(tmp_path, agents=0, master_flags=[f"--log_dir={log_dir}"]) as c:
        base = f"http://{c.master_url}"
        log = (log_dir / "mesos-master.log").read_bytes()
        assert b"Master" in log

        (entry,) = http_json(f"{base}/files/browse?path=/master")
        assert entry["path"] == "/master/log" and entry["size"] >= len(log)
        read = http_json(f"{base}/files/read?path=/master/log&offset=0&length=20")
        assert read == {"data": log[:20].decode(), "offset": 0}

        code, body = post(c.master_url, {"type": "LIST_FILES", "list_files": {"path": "/master/log"}})
        assert code == 200 and body["list_files"]["file_infos"][0]["path"] == "/master/log"
        code, body = post(c.master_url, {"type": "READ_FILE", "read_file": {
            "path": "/master/log", "offset": 0, "length": 10}})
        assert code == 200 and base64.b64decode(body["read_file"]["data"]) == log[:10]

        # Nothing else is served, and bad requests say what is wrong.
        assert status_of(f"{base}/files/read?path=/etc/passwd&offset=0") == 404
        assert status_of(f"{base}/files/read?path=/master/log&offset=x") == 400
        assert status_of(f"{base}/files/browse") == 400
        code, text = post(c.master_url, {"type": "READ_FILE", "read_file": {"path": "/master/log"}})
        assert code == 400 and "offset" in text
        code, text = post(c.master_url, {"type": "LIST_FILES", "list_files": {"path": "/nope"}})
        assert code == 404


def test_a_master_without_log_dir_serves_no_files(tmp_path: Path) -> None:
    with Cluster(tmp_path, agents=0) as c:
        assert status_of(f"http://{c.master_url}/files/read?path=/master/log&offset=0") == 404
        assert http_json(f"http://{c.master_url}/files/browse?path=/master") == []
