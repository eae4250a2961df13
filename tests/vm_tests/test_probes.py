"""In each VM kernel, pybpf.features agrees with the measured table in tests/vm/kernels.py."""
from __future__ import annotations

import pytest

from tests.vm.kernels import FEATURES, guest_kernel
from tests.vm.probes import PROBES

pytestmark = pytest.mark.skipif(guest_kernel() is None, reason="runs only in the VM runner's guest")


@pytest.mark.parametrize("feature", sorted(FEATURES))
def test_probe_matches_the_table(feature: str) -> None:
    expected = guest_kernel() in FEATURES[feature]
    support = PROBES[feature]()
    assert bool(support) == expected, f"{feature} on {guest_kernel()}: {support.reason or 'ok'}"
    if not support:
        assert support.reason
