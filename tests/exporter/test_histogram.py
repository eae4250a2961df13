"""Kernel buckets to Prometheus buckets, as ebpf_exporter maps them."""
from __future__ import annotations

import pytest

from pybpf.exporter.config import Histogram
from pybpf.exporter.histogram import parse_bucket, transform


def h(**kw) -> Histogram:
    return Histogram("h", "H", **kw)


def test_exp2_backfilled_cumulative_with_sum():
    buckets, count, total = transform(h(bucket_type="exp2", bucket_min=0, bucket_max=4,
                                        bucket_multiplier=0.5),
                                      {1.0: 3, 3.0: 2, 5.0: 40})   # 5 = bucket_max + 1: the sum
    assert buckets == [(0.5, 0), (1.0, 3), (2.0, 3), (4.0, 5), (8.0, 5)]
    assert count == 5 and total == 20.0


def test_exp2zero_first_bucket_counts_zeros():
    buckets, count, _ = transform(h(bucket_type="exp2zero", bucket_min=0, bucket_max=3),
                                  {0.0: 1, 1.0: 1, 3.0: 2})
    assert buckets == [(0.0, 1), (1.0, 2), (2.0, 2), (4.0, 4)] and count == 4


def test_linear_and_values_above_max_ignored():
    buckets, count, _ = transform(h(bucket_type="linear", bucket_min=1, bucket_max=3,
                                    bucket_multiplier=10), {0.0: 9, 2.0: 1, 3.0: 1})
    assert buckets == [(10.0, 0), (20.0, 1), (30.0, 2)] and count == 2


def test_fixed_keys_are_bounds():
    buckets, count, total = transform(h(bucket_type="fixed", bucket_keys=[1, 5, 10],
                                        bucket_multiplier=1), {5.0: 2, 10.0: 1, 11.0: 33})
    assert buckets == [(1.0, 0), (5.0, 2), (10.0, 3)] and count == 3 and total == 33


@pytest.mark.parametrize("text, value", [("12", 12), ("0x1f", 31), ("017", 15), ("0", 0),
                                         ("0b101", 5)])
def test_bucket_labels_parse_as_go(text, value):
    assert parse_bucket(text) == value
