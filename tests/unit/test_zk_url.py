"""``--zk`` and ``--master`` URLs, parsed the way Mesos parses them."""

from __future__ import annotations

from pathlib import Path

import pytest

from mesos.zookeeper.group import leader_of, parse_member
from mesos.zookeeper.url import ZkUrl, parse_master, parse_zk_url


def test_hosts_path_and_defaults() -> None:
    url = parse_zk_url("zk://10.0.0.1:2181,10.0.0.2:2182,zk3/mesos/prod")
    assert url.servers == (("10.0.0.1", 2181), ("10.0.0.2", 2182), ("zk3", 2181))
    assert url.hosts == "10.0.0.1:2181,10.0.0.2:2182,zk3:2181"
    assert url.path == "/mesos/prod"
    assert url.credentials is None and url.digest is None
    assert parse_zk_url("zk://127.0.0.1:2181").path == "/"
    assert parse_zk_url("  zk://h:1/  ").path == "/"


def test_credentials_become_digest_auth_and_are_redacted() -> None:
    url = parse_zk_url("zk://jo:s3cr@t@h1:2181,h2:2181/mesos")
    # Everything before the last '@' is the credential.
    assert url.credentials == ("jo", "s3cr@t")
    assert url.digest == "jo:s3cr@t"
    assert url.hosts == "h1:2181,h2:2181"
    assert str(url) == "zk://jo:s3cr@t@h1:2181,h2:2181/mesos"
    assert "s3cr" not in url.redacted()


def test_ipv6_servers() -> None:
    url = parse_zk_url("zk://[::1]:2181,[fe80::2]/m")
    assert url.servers == (("::1", 2181), ("fe80::2", 2181))
    assert url.hosts == "[::1]:2181,[fe80::2]:2181"


def test_file_url_holds_the_real_url(tmp_path: Path) -> None:
    inner = tmp_path / "zk"
    inner.write_text("zk://u:p@127.0.0.1:2181/mesos\n")
    outer = tmp_path / "outer"
    outer.write_text(f"file://{inner}")
    assert parse_zk_url(f"file://{inner}") == ZkUrl((("127.0.0.1", 2181),), "/mesos", ("u", "p"))
    assert parse_zk_url(f"file://{outer}").path == "/mesos"
    loop = tmp_path / "loop"
    loop.write_text(f"file://{loop}")
    with pytest.raises(ValueError, match="nested file://"):
        parse_zk_url(f"file://{loop}")
    with pytest.raises(ValueError, match="Cannot read the URL in"):
        parse_zk_url(f"file://{tmp_path / 'missing'}")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("http://h:2181/mesos", "Expecting 'zk://' or 'file://'"),
        ("h:2181/mesos", "Expecting 'zk://' or 'file://'"),
        ("zk:///mesos", "Empty ZooKeeper server"),
        ("zk://h1:2181,,h2:2181/mesos", "Empty ZooKeeper server"),
        ("zk://h1:notaport/mesos", "Bad port 'notaport'"),
        ("zk://h1:70000/mesos", "Bad port '70000'"),
        ("zk://h1:/mesos", "Missing port"),
        ("zk://:2181/mesos", "Missing host"),
        ("zk://::1:2181/mesos", r"write IPv6 addresses as \[addr\]:port"),
        ("zk://[::1/mesos", "Unclosed"),
        ("zk://nopassword@h:2181/mesos", "Expecting 'user:password'"),
        ("zk://h:2181/mesos/", "must not end with '/'"),
        ("zk://h:2181/mesos//x", "empty, '.' or '..'"),
        ("zk://h:2181/mesos/../x", "empty, '.' or '..'"),
        ("file://", "Expecting a file name"),
    ],
)
def test_malformed_urls_name_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_zk_url(text)


def test_a_bad_url_never_echoes_the_password() -> None:
    with pytest.raises(ValueError) as info:
        parse_zk_url("zk://jo:hunter2@h:2181/mesos//x")
    assert "hunter2" not in str(info.value)


def test_master_flag_accepts_a_single_master_or_zookeeper(tmp_path: Path) -> None:
    assert parse_master("127.0.0.1:5050") == ("127.0.0.1", 5050)
    assert parse_master("master@10.1.2.3:5050") == ("10.1.2.3", 5050)
    assert parse_master("[::1]:5050") == ("::1", 5050)
    zk = parse_master("zk://h:2181/mesos")
    assert isinstance(zk, ZkUrl) and zk.path == "/mesos"
    holder = tmp_path / "master"
    holder.write_text("m1:5051\n")
    assert parse_master(f"file://{holder}") == ("m1", 5051)
    with pytest.raises(ValueError, match="Expecting --master as 'host:port'"):
        parse_master("localhost")
    with pytest.raises(ValueError, match="Bad port"):
        parse_master("h:http")


def test_members_and_the_leader_follow_mesos_naming() -> None:
    member = parse_member("json.info_0000000007")
    assert member is not None and (member.sequence, member.label) == (7, "json.info")
    assert parse_member("log_replicas") is None
    assert parse_member("json.info_99999999999") is None  # not an int32
    bare = parse_member("0000000003")
    assert bare is not None and (bare.sequence, bare.label) == (3, "")
    children = ["json.info_0000000012", "log_replicas", "info_0000000010", "json.info_0000000011"]
    leader = leader_of(children)
    assert leader is not None and leader.name == "info_0000000010"  # lowest, any label
    assert leader_of(["log_replicas"]) is None
