"""The fetcher on local files: names, extraction and its refusals, modes, owners, cache.

Sources here are ``file://`` URIs and plain paths (HTTP is in
tests/integration/test_fetcher_http.py). Every archive is built by the test, and the
refusal tests check that nothing appeared outside the sandbox, not only that an error
was raised.
"""

from __future__ import annotations

import gzip
import io
import os
import pwd
import stat
import tarfile
import zipfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from mesos.agent.fetcher import FLAGS, Fetcher, FetchError, archive_kind
from mesos.agent.fetcher_cache import FetcherCache
from mesos.flags import parse_flags
from mesos.v1 import mesos as v1

# --------------------------------------------------------------------------- helpers


class Box:
    """A sandbox, a cache dir, a source dir and an 'outside' dir that must stay empty."""

    def __init__(self, root: Path) -> None:
        self.sandbox = root / "sandbox"
        self.cache = root / "cache"
        self.src = root / "src"
        self.outside = root / "outside"
        for d in (self.sandbox, self.src, self.outside):
            d.mkdir()

    def outside_untouched(self) -> bool:
        return list(self.outside.iterdir()) == []


@pytest.fixture
def box(tmp_path: Path) -> Box:
    return Box(tmp_path)


@pytest.fixture
async def fetcher(box: Box) -> AsyncIterator[Fetcher]:
    f = Fetcher(str(box.cache), cache_size=1 << 20, stall_timeout=5.0)
    await f.recover()
    try:
        yield f
    finally:
        await f.close()


def uri(value: str | Path, **kw: object) -> v1.URI:
    return v1.URI(value=str(value), **kw)  # type: ignore[arg-type]


def add_bytes(tf: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    tf.addfile(info, io.BytesIO(data))


def add_link(tf: tarfile.TarFile, name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    tf.addfile(info)


def make_tar(path: Path, build: Callable[[tarfile.TarFile], None], mode: Any = "w") -> Path:
    """A tar built by ``build``; ``mode`` picks the compression ("w:gz", ...)."""
    with tarfile.open(path, mode) as tf:
        build(tf)
    return path


def good_tree(tf: tarfile.TarFile) -> None:
    info = tarfile.TarInfo("app/bin")
    info.type, info.mode = tarfile.DIRTYPE, 0o755
    tf.addfile(info)
    add_bytes(tf, "app/bin/run.sh", b"#!/bin/sh\necho hi\n", 0o4755)  # setuid dropped
    add_bytes(tf, "app/data.txt", b"payload")
    add_link(tf, "app/current", "bin")
    add_link(tf, "app/copy.txt", "app/data.txt", tarfile.LNKTYPE)


# --------------------------------------------------------------------------- flags and names


def test_flags_have_mesos_names_and_defaults() -> None:
    flags = parse_flags("mesos-agent", FLAGS, [], {})
    assert flags.fetcher_cache_size == 2 * 1024**3
    assert flags.fetcher_cache_dir == "/tmp/mesos/fetch"
    assert flags.fetcher_stall_timeout == 60.0
    f = Fetcher.from_flags(parse_flags("mesos-agent", FLAGS, [
        "--fetcher_cache_size=10MB", "--fetcher_cache_dir=/var/fc",
        "--fetcher_stall_timeout=5secs"]), "S1")
    assert (f.cache.directory, f.cache.capacity, f.stall_timeout) == (
        "/var/fc/slaves/S1", 10 << 20, 5.0)


@pytest.mark.parametrize(("name", "kind"), [
    ("a.tar", "tar"), ("a.tar.gz", "tar"), ("A.TGZ", "tar"), ("a.tar.bz2", "tar"),
    ("a.tbz2", "tar"), ("a.tar.xz", "tar"), ("a.txz", "tar"), ("a.zip", "zip"),
    ("a.gz", "gz"), ("a.txt", None), ("run.sh", None), (".gz", None),
])
def test_archive_kind_by_suffix(name: str, kind: str | None) -> None:
    assert archive_kind(name) == kind


@pytest.mark.parametrize(("value", "reason"), [
    ("hdfs://nn:8020/x.tar.gz", "unsupported scheme 'hdfs'"),
    ("s3://bucket/key", "unsupported scheme 's3'"),
    ("ftp://host/file", "unsupported scheme 'ftp'"),
    ("relative/path.txt", "relative paths are not supported"),
    ("file://otherhost/etc/hosts", "remote host"),
    ("http://127.0.0.1:9/dir/", "set output_file"),
])
async def test_unfetchable_uris_fail_before_writing(
    fetcher: Fetcher, box: Box, value: str, reason: str
) -> None:
    with pytest.raises(FetchError) as err:
        await fetcher.fetch([uri(value)], str(box.sandbox))
    assert err.value.uri == value
    assert reason in str(err.value) and value in str(err.value)
    assert list(box.sandbox.iterdir()) == []


@pytest.mark.parametrize("output", ["../escape.txt", "/etc/escape.txt", "a/../../b", "", "."])
async def test_output_file_must_stay_in_the_sandbox(
    fetcher: Fetcher, box: Box, output: str
) -> None:
    (box.src / "f.txt").write_text("x")
    if output == "":
        # An empty output_file means "not set" (protobuf default): the URI's name is used.
        [res] = await fetcher.fetch([uri(box.src / "f.txt", output_file="")], str(box.sandbox))
        assert res.path == str(box.sandbox / "f.txt")
        return
    with pytest.raises(FetchError, match="output_file"):
        await fetcher.fetch([uri(box.src / "f.txt", output_file=output)], str(box.sandbox))
    assert box.outside_untouched()
    assert not (box.sandbox.parent / "escape.txt").exists()


# --------------------------------------------------------------------------- plain files


async def test_file_uri_and_plain_path_are_copied(fetcher: Fetcher, box: Box) -> None:
    (box.src / "one.txt").write_text("one")
    (box.src / "two words.txt").write_text("two")
    results = await fetcher.fetch(
        [uri(box.src / "one.txt"), uri("file://" + str(box.src / "two%20words.txt")),
         uri(box.src / "one.txt", output_file="nested/dir/renamed.txt")],
        str(box.sandbox))
    assert (box.sandbox / "one.txt").read_text() == "one"
    assert (box.sandbox / "two words.txt").read_text() == "two"
    assert (box.sandbox / "nested" / "dir" / "renamed.txt").read_text() == "one"
    assert [r.cache for r in results] == ["off", "off", "off"]
    assert results[0].size == 3
    assert stat.S_IMODE((box.sandbox / "one.txt").stat().st_mode) == 0o644
    assert [p.name for p in box.sandbox.iterdir() if p.name.startswith(".fetching")] == []


async def test_missing_file_names_the_uri(fetcher: Fetcher, box: Box) -> None:
    missing = box.src / "nope.tar.gz"
    with pytest.raises(FetchError) as err:
        await fetcher.fetch([uri(missing)], str(box.sandbox))
    assert str(missing) in str(err.value) and "No such file" in str(err.value)


async def test_directory_source_is_refused(fetcher: Fetcher, box: Box) -> None:
    with pytest.raises(FetchError, match="not a regular file"):
        await fetcher.fetch([uri(box.src)], str(box.sandbox))


async def test_executable_sets_0755_and_skips_extraction(fetcher: Fetcher, box: Box) -> None:
    make_tar(box.src / "tool.tar", good_tree)
    (box.src / "run.sh").write_text("#!/bin/sh\n")
    await fetcher.fetch([uri(box.src / "tool.tar", executable=True),
                         uri(box.src / "run.sh", executable=True)], str(box.sandbox))
    for name in ("tool.tar", "run.sh"):
        assert stat.S_IMODE((box.sandbox / name).stat().st_mode) == 0o755
    assert not (box.sandbox / "app").exists()


async def test_extract_false_leaves_the_archive(fetcher: Fetcher, box: Box) -> None:
    make_tar(box.src / "a.tar.gz", good_tree, "w:gz")
    [res] = await fetcher.fetch([uri(box.src / "a.tar.gz", extract=False)], str(box.sandbox))
    assert res.extracted == ()
    assert sorted(p.name for p in box.sandbox.iterdir()) == ["a.tar.gz"]


# --------------------------------------------------------------------------- extraction


@pytest.mark.parametrize(("name", "mode"), [
    ("a.tar", "w"), ("a.tar.gz", "w:gz"), ("a.tgz", "w:gz"), ("a.tar.bz2", "w:bz2"),
    ("a.tar.xz", "w:xz"),
])
async def test_tarballs_are_extracted(fetcher: Fetcher, box: Box, name: str, mode: str) -> None:
    make_tar(box.src / name, good_tree, mode)
    [res] = await fetcher.fetch([uri(box.src / name)], str(box.sandbox))
    app = box.sandbox / "app"
    assert (app / "data.txt").read_bytes() == b"payload"
    assert (app / "copy.txt").read_bytes() == b"payload"
    assert os.readlink(app / "current") == "bin"
    assert (app / "current" / "run.sh").read_text().startswith("#!/bin/sh")
    assert stat.S_IMODE((app / "bin" / "run.sh").stat().st_mode) == 0o755  # no setuid
    assert (box.sandbox / name).exists()  # the archive stays, as in Mesos
    assert str(app / "data.txt") in res.extracted


async def test_zip_is_extracted_with_modes(fetcher: Fetcher, box: Box) -> None:
    with zipfile.ZipFile(box.src / "bundle.zip", "w") as zf:
        zf.writestr("bundle/readme.txt", "read me")
        script = zipfile.ZipInfo("bundle/start.sh")
        script.external_attr = (stat.S_IFREG | 0o755) << 16
        zf.writestr(script, "#!/bin/sh\n")
        zf.writestr("bundle/empty/", "")
    await fetcher.fetch([uri(box.src / "bundle.zip")], str(box.sandbox))
    assert (box.sandbox / "bundle" / "readme.txt").read_text() == "read me"
    assert stat.S_IMODE((box.sandbox / "bundle" / "start.sh").stat().st_mode) == 0o755
    assert (box.sandbox / "bundle" / "empty").is_dir()


async def test_lone_gz_is_decompressed_next_to_it(fetcher: Fetcher, box: Box) -> None:
    (box.src / "data.csv.gz").write_bytes(gzip.compress(b"a,b\n1,2\n"))
    [res] = await fetcher.fetch([uri(box.src / "data.csv.gz")], str(box.sandbox))
    assert (box.sandbox / "data.csv").read_bytes() == b"a,b\n1,2\n"
    assert res.extracted == (str(box.sandbox / "data.csv"),)


async def test_extraction_into_output_file_directory(fetcher: Fetcher, box: Box) -> None:
    make_tar(box.src / "a.tgz", good_tree, "w:gz")
    await fetcher.fetch([uri(box.src / "a.tgz", output_file="lib/pkg.tgz")], str(box.sandbox))
    assert (box.sandbox / "lib" / "app" / "data.txt").read_bytes() == b"payload"


@pytest.mark.parametrize("name", ["broken.tar.gz", "broken.zip", "broken.gz", "broken.tar"])
async def test_corrupt_archive_is_a_fetch_error(fetcher: Fetcher, box: Box, name: str) -> None:
    (box.src / name).write_bytes(b"\x1f\x8b this is not what it claims to be" * 20)
    with pytest.raises(FetchError, match=f"bad archive '{name}'"):
        await fetcher.fetch([uri(box.src / name)], str(box.sandbox))


async def test_encrypted_zip_member_is_a_bad_archive(fetcher: Fetcher, box: Box) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("secret.txt", "x")
    data = bytearray(buf.getvalue())
    # Set the "encrypted" flag bit in the local and the central header of the one member.
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.index(signature) + offset
        data[at] |= 0x01
    (box.src / "locked.zip").write_bytes(bytes(data))
    with pytest.raises(FetchError, match=r"bad archive 'locked\.zip'.*encrypted"):
        await fetcher.fetch([uri(box.src / "locked.zip")], str(box.sandbox))


def _abs_member(tf: tarfile.TarFile) -> None:
    add_bytes(tf, "/tmp/../OUTSIDE/abs.txt", b"x")


def _dotdot_member(tf: tarfile.TarFile) -> None:
    add_bytes(tf, "ok.txt", b"fine")
    add_bytes(tf, "a/../../outside/dotdot.txt", b"x")


def _abs_symlink_then_write(tf: tarfile.TarFile) -> None:
    add_link(tf, "evil", "/etc")
    add_bytes(tf, "evil/pwned", b"x")


def _relative_symlink_out(tf: tarfile.TarFile) -> None:
    add_link(tf, "evil", "../outside")
    add_bytes(tf, "evil/pwned", b"x")


def _symlink_through_dot(tf: tarfile.TarFile) -> None:
    # Textually "s/../outside" is "outside" (inside); really s is the sandbox, so
    # s/.. is its parent. Refused when the link is created.
    add_link(tf, "s", ".")
    add_link(tf, "evil", "s/../outside")
    add_bytes(tf, "evil/pwned", b"x")


def _symlink_retargeted_later(tf: tarfile.TarFile) -> None:
    # "evil" is harmless when created (s -> d), made to point out when "s" is
    # replaced by a link to "." afterwards; the final scan refuses it.
    info = tarfile.TarInfo("d")
    info.type = tarfile.DIRTYPE
    tf.addfile(info)
    add_link(tf, "s", "d")
    add_link(tf, "evil", "s/../outside")
    add_link(tf, "s", ".")


def _hardlink_out(tf: tarfile.TarFile) -> None:
    add_link(tf, "h", "../outside/secret", tarfile.LNKTYPE)


def _hardlink_abs(tf: tarfile.TarFile) -> None:
    add_link(tf, "h", "/etc/passwd", tarfile.LNKTYPE)


def _device(tf: tarfile.TarFile) -> None:
    info = tarfile.TarInfo("null")
    info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
    tf.addfile(info)


@pytest.mark.parametrize(("build", "why"), [
    (_abs_member, "absolute"),
    (_dotdot_member, "'..'"),
    (_abs_symlink_then_write, "absolute path '/etc'"),
    (_relative_symlink_out, "outside the sandbox"),
    (_symlink_through_dot, "outside the sandbox"),
    (_symlink_retargeted_later, "ends up pointing outside"),
    (_hardlink_out, "hard link 'h' points outside"),
    (_hardlink_abs, "hard link 'h' points outside"),
    (_device, "device"),
])
async def test_tar_traversal_is_refused(
    fetcher: Fetcher, box: Box, build: Callable[[tarfile.TarFile], None], why: str
) -> None:
    make_tar(box.src / "evil.tar", build)
    (box.outside / ".keep").write_text("")
    before = sorted(p.name for p in box.outside.iterdir())
    with pytest.raises(FetchError) as err:
        await fetcher.fetch([uri(box.src / "evil.tar")], str(box.sandbox))
    assert "refused to extract 'evil.tar'" in str(err.value) and why in str(err.value)
    assert str(box.src / "evil.tar") in str(err.value)
    assert sorted(p.name for p in box.outside.iterdir()) == before
    assert not (box.sandbox.parent / "OUTSIDE").exists()
    if build is _dotdot_member:  # names are all checked before the first write
        assert not (box.sandbox / "ok.txt").exists()
    # No symlink left in the sandbox resolves outside it.
    for path in box.sandbox.rglob("*"):
        if path.is_symlink():
            assert os.path.realpath(path).startswith(str(box.sandbox))


@pytest.mark.parametrize("case", ["dotdot", "absolute", "symlink"])
async def test_zip_traversal_is_refused(fetcher: Fetcher, box: Box, case: str) -> None:
    with zipfile.ZipFile(box.src / "evil.zip", "w") as zf:
        if case == "dotdot":
            zf.writestr(zipfile.ZipInfo("../outside/z.txt"), "x")
        elif case == "absolute":
            zf.writestr(zipfile.ZipInfo("/tmp/z-abs.txt"), "x")
        else:
            link = zipfile.ZipInfo("evil")
            link.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(link, str(box.outside))
            zf.writestr("evil/z.txt", "x")
    with pytest.raises(FetchError, match=r"refused to extract 'evil\.zip'"):
        await fetcher.fetch([uri(box.src / "evil.zip")], str(box.sandbox))
    assert box.outside_untouched()
    assert not Path("/tmp/z-abs.txt").exists()


async def test_fetched_file_replaces_a_symlink_without_following_it(
    fetcher: Fetcher, box: Box
) -> None:
    target = box.outside / "victim.txt"
    target.write_text("original")
    (box.sandbox / "conf.txt").symlink_to(target)
    (box.src / "conf.txt").write_text("new")
    await fetcher.fetch([uri(box.src / "conf.txt")], str(box.sandbox))
    assert target.read_text() == "original"
    assert not (box.sandbox / "conf.txt").is_symlink()
    assert (box.sandbox / "conf.txt").read_text() == "new"


async def test_output_file_through_an_outward_symlink_is_refused(
    fetcher: Fetcher, box: Box
) -> None:
    (box.sandbox / "lib").symlink_to(box.outside)
    (box.src / "f.txt").write_text("x")
    with pytest.raises(FetchError, match="outside the sandbox"):
        await fetcher.fetch([uri(box.src / "f.txt", output_file="lib/f.txt")], str(box.sandbox))
    assert box.outside_untouched()


# --------------------------------------------------------------------------- ownership


def _nobody() -> pwd.struct_passwd:
    if os.geteuid() != 0:
        pytest.skip("SKIPPED LOUDLY: chowning fetched files to another user needs root")
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        pytest.fail("this machine has no 'nobody' user to chown fetched files to")


async def test_files_are_chowned_to_the_task_user(fetcher: Fetcher, box: Box) -> None:
    nobody = _nobody()
    make_tar(box.src / "a.tar.gz", good_tree, "w:gz")
    [res] = await fetcher.fetch([uri(box.src / "a.tar.gz", output_file="sub/a.tar.gz")],
                                str(box.sandbox), user="nobody")
    paths = [Path(res.path), box.sandbox / "sub", *map(Path, res.extracted)]
    assert len(paths) >= 7
    for path in paths:
        st = path.lstat()
        assert (st.st_uid, st.st_gid) == (nobody.pw_uid, nobody.pw_gid), path
    # The sandbox itself belongs to whoever made it (the agent), untouched here.
    assert box.sandbox.stat().st_uid == 0


async def test_without_user_files_stay_the_agents(fetcher: Fetcher, box: Box) -> None:
    (box.src / "f.txt").write_text("x")
    [res] = await fetcher.fetch([uri(box.src / "f.txt")], str(box.sandbox))
    assert Path(res.path).stat().st_uid == os.geteuid()


async def test_unknown_user_is_a_fetch_error(fetcher: Fetcher, box: Box) -> None:
    if os.geteuid() != 0:
        pytest.skip("SKIPPED LOUDLY: user lookup only happens when the agent is root")
    (box.src / "f.txt").write_text("x")
    with pytest.raises(FetchError, match="user 'no-such-user-xyz' does not exist"):
        await fetcher.fetch([uri(box.src / "f.txt")], str(box.sandbox), user="no-such-user-xyz")


# --------------------------------------------------------------------------- cache with files


async def test_cache_hit_serves_a_deleted_source(fetcher: Fetcher, box: Box) -> None:
    src = box.src / "pkg.tgz"
    make_tar(src, good_tree, "w:gz")
    first = await fetcher.fetch([uri(src, cache=True)], str(box.sandbox))
    src.unlink()  # a hit must not read the source again
    other = box.sandbox.parent / "sandbox2"
    other.mkdir()
    second = await fetcher.fetch([uri(src, cache=True)], str(other))
    assert [first[0].cache, second[0].cache] == ["miss", "hit"]
    assert (other / "app" / "data.txt").read_bytes() == b"payload"
    assert len(fetcher.cache) == 1


async def test_lost_cache_file_falls_back_to_a_direct_fetch(fetcher: Fetcher, box: Box) -> None:
    (box.src / "f.txt").write_text("content")
    [first] = await fetcher.fetch([uri(box.src / "f.txt", cache=True)], str(box.sandbox))
    for path in box.cache.iterdir():
        path.unlink()
    (box.sandbox / "f.txt").unlink()
    [second] = await fetcher.fetch([uri(box.src / "f.txt", cache=True)], str(box.sandbox))
    assert (first.cache, second.cache) == ("miss", "bypass")
    assert (box.sandbox / "f.txt").read_text() == "content"
    assert len(fetcher.cache) == 0
    [third] = await fetcher.fetch([uri(box.src / "f.txt", cache=True)], str(box.sandbox))
    assert third.cache == "miss"


async def test_unwritable_cache_directory_is_a_fetch_error(box: Box) -> None:
    box.cache.write_text("a file where the cache directory should be")
    fetcher = Fetcher(str(box.cache), cache_size=1000)
    (box.src / "f.txt").write_text("x")
    with pytest.raises(FetchError, match=r"cannot store 'f\.txt'"):
        await fetcher.fetch([uri(box.src / "f.txt", cache=True)], str(box.sandbox))
    assert len(fetcher.cache) == 0
    assert [p.name for p in box.sandbox.iterdir()] == []


async def test_cache_key_includes_the_user(fetcher: Fetcher, box: Box) -> None:
    _nobody()
    (box.src / "f.txt").write_text("x")
    a = await fetcher.fetch([uri(box.src / "f.txt", cache=True)], str(box.sandbox))
    b = await fetcher.fetch([uri(box.src / "f.txt", cache=True)], str(box.sandbox), user="nobody")
    assert [a[0].cache, b[0].cache] == ["miss", "miss"]
    assert sorted(fetcher.cache.keys()) == [("", str(box.src / "f.txt")),
                                           ("nobody", str(box.src / "f.txt"))]


async def test_lru_eviction_with_a_tiny_cache(box: Box) -> None:
    fetcher = Fetcher(str(box.cache), cache_size=250, stall_timeout=5.0)
    await fetcher.recover()
    for name in "abcd":
        (box.src / name).write_bytes(name.encode() * 100)

    async def get(name: str) -> str:
        [res] = await fetcher.fetch([uri(box.src / name, cache=True)], str(box.sandbox))
        return res.cache

    assert [await get("a"), await get("b"), await get("a")] == ["miss", "miss", "hit"]
    assert await get("c") == "miss"  # evicts b, the least recently used
    assert [uri for _, uri in fetcher.cache.keys()]  # noqa: SIM118 == [str(box.src / "a"), str(box.src / "c")]
    assert len(list(box.cache.iterdir())) == 2  # b's file is gone from disk
    assert fetcher.cache.used == 200
    assert await get("b") == "miss"  # evicts a now
    assert await get("c") == "hit"
    (box.src / "big").write_bytes(b"z" * 300)
    assert await get("big") == "bypass"  # larger than the whole cache: fetched directly
    assert (box.sandbox / "big").stat().st_size == 300
    assert fetcher.cache.used == 200
    await fetcher.close()


async def test_recover_wipes_the_cache(box: Box) -> None:
    box.cache.mkdir()
    (box.cache / "stale").write_text("from a previous run")
    fetcher = Fetcher(str(box.cache), cache_size=100)
    await fetcher.recover()
    assert list(box.cache.iterdir()) == []


# --------------------------------------------------------------------------- cache bookkeeping


def test_cache_reserve_evicts_least_recently_used_only_when_it_then_fits() -> None:
    cache = FetcherCache("/c", 100)
    a, _ = cache.reserve(("", "a"), 40)
    b, _ = cache.reserve(("", "b"), 40)
    assert a is not None and b is not None
    cache.commit(a, 40)
    cache.commit(b, 40)
    assert cache.lookup(("", "a")) is a  # a is now most recently used
    c, victims = cache.reserve(("", "c"), 50)
    assert c is not None and victims == [b]
    assert cache.keys() == [("", "a"), ("", "c")]
    assert cache.used == 90


def test_cache_never_evicts_entries_in_use_or_unfinished() -> None:
    cache = FetcherCache("/c", 100)
    a, _ = cache.reserve(("", "a"), 60)
    assert a is not None
    # Unfinished (downloading): not a hit, and not evictable.
    assert cache.lookup(("", "a")) is None
    assert cache.reserve(("", "b"), 60) == (None, [])
    cache.commit(a, 60)
    cache.acquire(a)
    assert cache.reserve(("", "b"), 60) == (None, [])
    assert ("", "a") in cache
    cache.release(a)
    b, victims = cache.reserve(("", "b"), 60)
    assert b is not None and victims == [a]
    with pytest.raises(ValueError):
        cache.release(a)


def test_cache_refuses_entries_larger_than_itself() -> None:
    cache = FetcherCache("/c", 100)
    small, _ = cache.reserve(("", "s"), 10)
    assert small is not None
    cache.commit(small, 10)
    assert cache.reserve(("", "big"), 101) == (None, [])
    assert cache.keys() == [("", "s")]  # nothing evicted for an entry that cannot fit
    with pytest.raises(ValueError):
        cache.reserve(("", "s"), 1)


def test_cache_paths_are_unique_and_inside_the_directory() -> None:
    cache = FetcherCache("/c", 100)
    one, _ = cache.reserve(("", "http://h/x/pkg.tar.gz"), 1)
    two, _ = cache.reserve(("u", "http://h/x/pkg.tar.gz"), 1)
    assert one is not None and two is not None
    assert one.path != two.path
    assert os.path.dirname(one.path) == "/c" and one.path.endswith("pkg.tar.gz")
