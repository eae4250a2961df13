"""The session's leak check (tests/leaks.py) sees what a run leaves, and only that."""
from __future__ import annotations

import subprocess
import sys

from pybpf.maps import Map
from tests import leaks

HOLDER = """
import sys
from pybpf.maps import Map
m = Map.create("hash", 4, 4, 1, name="t_other")
print(m.id, flush=True)
sys.stdin.read()
"""


def test_a_map_left_open_is_reported_and_a_closed_one_is_not():
    before = leaks.Stock.take()
    m = Map.create("hash", 4, 4, 1, name="t_leakcheck")
    map_id = m.id
    try:
        report = leaks.check(before, settle=0.5)
        assert f"map id {map_id}: hash map 't_leakcheck'" in report
    finally:
        m.close()
    assert f"map id {map_id}" not in leaks.check(before, settle=5.0)


def test_objects_held_by_another_process_are_theirs():
    before = leaks.Stock.take()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        map_id = int(holder.stdout.readline())
        assert map_id in leaks.Stock.take().ids["map"]
        assert f"map id {map_id}" not in leaks.check(before, settle=0.5)
    finally:
        holder.communicate("")
