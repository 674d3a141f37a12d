"""Secrets never leave through the flags' one rendering (``Flags.as_dict``): URL
passwords are masked in every value, ``secret`` flags show only where they came from."""

from __future__ import annotations

from pathlib import Path

import pytest

from mesos.flags import Flag, parse_flags, redact_credentials

FLAGS = [
    Flag("zk", str, None, "ZooKeeper URL."),
    Flag("master", str, None, "Master."),
    Flag("credential", str, None, "Credential.", secret=True),
    Flag("port", int, 5050, "Port."),
]


@pytest.mark.parametrize(("text", "shown"), [
    ("zk://user:secret@h1:2181,h2:2181/mesos", "zk://user:********@h1:2181,h2:2181/mesos"),
    ("zk://u:pa/ss:w@h:2181/m", "zk://u:********@h:2181/m"),
    ("zk://h:2181/mesos", "zk://h:2181/mesos"),
    ("zk://user@h:2181/mesos", "zk://user@h:2181/mesos"),
    ("127.0.0.1:5050", "127.0.0.1:5050"),
    ("zk://a:b@h/x,http://c:d@e/f", "zk://a:********@h/x,http://c:********@e/f"),
    # The ZooKeeper URL parser takes the last '@' before the first '/': so does this.
    ("zk://ops:p@ss@h:2181/mesos", "zk://ops:********@h:2181/mesos"),
    ("zk://ops:p@s:s@h1:2181,h2:2181/m zk://u:v@h/n",
     "zk://ops:********@h1:2181,h2:2181/m zk://u:********@h/n"),
    # A '/' then more '@': everything to the last '@' is hidden, never less.
    ("zk://u:p/a@b@h/x", "zk://u:********@h/x"),
    ("zk://u:p/a@b@h/x,zk://v:q@i/y", "zk://u:********@h/x,zk://v:********@i/y"),
    ("zk://u:x://y@h/z", "zk://u:********@h/z"),
])
def test_redact_credentials(text: str, shown: str) -> None:
    assert redact_credentials(text) == shown


def test_as_dict_and_repr_hide_secrets(tmp_path: Path) -> None:
    cred = tmp_path / "cred"
    cred.write_text("principal topsecret\n")
    zk_file = tmp_path / "zk"
    zk_file.write_text("zk://ops:hunter2@127.0.0.1:2181/mesos\n")
    flags = parse_flags("prog", FLAGS, [
        f"--zk=file://{zk_file}", "--master=zk://ops:hunter2@127.0.0.1:2181/m",
        f"--credential=file://{cred}"])
    # The values themselves are intact for the daemon's own use.
    assert flags.zk == "zk://ops:hunter2@127.0.0.1:2181/mesos"
    assert flags.credential == "principal topsecret"
    shown = flags.as_dict()
    assert shown == {"zk": "zk://ops:********@127.0.0.1:2181/mesos",
                     "master": "zk://ops:********@127.0.0.1:2181/m",
                     "credential": f"file://{cred}", "port": "5050"}
    assert "hunter2" not in repr(flags) and "topsecret" not in repr(flags)


def test_secret_given_inline_is_masked() -> None:
    flags = parse_flags("prog", FLAGS, ["--credential=principal topsecret"])
    assert flags.as_dict()["credential"] == "********"
