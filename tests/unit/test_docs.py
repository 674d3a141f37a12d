"""Every flag a daemon declares is documented in docs/ (so the docs cannot fall behind)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mesos.agent.flags import FLAGS as AGENT_FLAGS
from mesos.cli.local import FLAGS as LOCAL_FLAGS
from mesos.flags import Flag
from mesos.master.flags import FLAGS as MASTER_FLAGS

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.mark.parametrize(
    ("doc", "flags"),
    [("master.md", MASTER_FLAGS), ("agent.md", AGENT_FLAGS), ("local-cluster.md", LOCAL_FLAGS)],
)
def test_every_flag_is_documented(doc: str, flags: list[Flag]) -> None:
    text = (DOCS / doc).read_text()
    missing = [f.name for f in flags if f"--{f.name}" not in text]
    assert missing == [], f"{doc} does not mention: {missing}"
