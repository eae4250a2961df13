"""HeaderRuns: the length of a run of equal record headers, found by strided compares."""
from __future__ import annotations

from array import array

import pytest

from pybpf.events.reader import HeaderRuns


@pytest.mark.parametrize("fmt", ["I", "Q"])
@pytest.mark.parametrize("step", [1, 3, 12])
@pytest.mark.parametrize("bad", [1, 2, 4095, 4096, 4097, 9000, None])
def test_run_length_stops_at_the_first_other_header(fmt, step, bad):
    n = 10000
    words = array(fmt, [7]) * (n * step + 5)
    for i in range(n * step):
        if i % step:
            words[i] = 99  # the words between headers do not matter
    if bad is not None:
        words[bad * step] = 7 | 1 << 30  # e.g. the discard bit
    runs = HeaderRuns(memoryview(words))
    assert runs.count(0, step, n, 7) == (n if bad is None else bad)
    assert runs.count(0, step, 1, 7) == 1
