"""CLI tests need Debian's bpftool, the reference they are compared with."""
import pytest

from tests.links.netfixtures import cgroup, cgroup2_root, make_netns, netns  # noqa: F401


@pytest.fixture(scope="session", autouse=True)
def _bpftool(bpftool: str) -> None:
    """Every CLI test compares with bpftool: each fails (the fixture says why) without it."""
