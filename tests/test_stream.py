"""Streaming a Parquet data set: the same rows, statistics and errors as in memory, in bounded memory."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from dlcli.data.fit_pass import FitSums, combine_fit_sums
from dlcli.data.preprocess import feature_statistics, fit_labels
from dlcli.data.stream import ParquetFeed
from dlcli.errors import DlcliError

FEATURES = ["row", "a", "b", "count"]
PART_ROWS = [230, 170, 101]  # three parts, cut into row groups of 40 rows and remainders


def write_parts(folder: Path, part_rows=PART_ROWS, seed: int = 0) -> list[Path]:
    """Parts of a table whose float ``row`` feature numbers its rows, to follow each row through an epoch."""
    rng, start, paths = np.random.default_rng(seed), 0, []
    for i, rows in enumerate(part_rows):
        row = np.arange(start, start + rows)
        table = pa.table({
            "row": row.astype(np.float64),
            "a": rng.normal(3.0, 2.0, rows).astype(np.float32),
            "b": rng.normal(-1e3, 50.0, rows),
            "count": rng.integers(0, 9, rows),
            "label": rng.choice(np.array(["signal", "background"]), rows),
            "flag": rng.integers(0, 2, rows).astype(np.float32) * 2 + 1,  # labels 1.0 and 3.0
            "energy": rng.gamma(2.0, 10.0, rows),
        })
        paths.append(folder / f"part-{i:05d}.parquet")
        pq.write_table(table, paths[-1], row_group_size=40)
        start += rows
    return paths


@pytest.fixture
def parts(tmp_path: Path) -> list[Path]:
    return write_parts(tmp_path)


def fitted(source, standardize: bool = False, **kwargs) -> ParquetFeed:
    settings = dict(features=FEATURES, target="label", seed=7, validation_split=0.2, test_split=0.1,
                    shuffle_buffer=100)
    feed = ParquetFeed(source, **{**settings, **kwargs})
    feed.fit(feed.fit_sums(), standardize=standardize)
    return feed


def epoch(feed: ParquetFeed, number: int, start: int = 0, rows: int = 64) -> list:
    return list(feed.chunks(number, start, rows))


def train_ids(feed: ParquetFeed) -> list[int]:
    return sorted(feed.split_tables("train")["train"].column("row").to_numpy().astype(int).tolist())


def test_every_training_row_is_served_once_per_epoch_and_padding_weighs_nothing(parts):
    feed = fitted(ds.dataset([str(p) for p in parts], format="parquet"))
    for number in (1, 2):
        chunks = epoch(feed, number)
        assert len(chunks) == -(-feed.largest_share // 64) and all(len(c.x) == 64 for c in chunks)
        x, w = np.concatenate([c.x for c in chunks]), np.concatenate([c.w for c in chunks])
        assert sorted(x[w == 1, 0].astype(int).tolist()) == train_ids(feed)
        assert (w[:feed.local_examples] == 1).all() and (w[feed.local_examples:] == 0).all()
        assert set(x[w == 0, 0].astype(int)) <= set(train_ids(feed))  # padding: real training rows
    feed.close()


@pytest.mark.parametrize("start", [1, 3, 5])
def test_chunks_from_a_start_are_the_tail_of_the_whole_epoch(parts, start):
    feed = fitted(parts, standardize=True)
    whole, tail = epoch(feed, 3), epoch(feed, 3, start)
    assert len(tail) == len(whole) - start
    for a, b in zip(whole[start:], tail):
        np.testing.assert_array_equal(a.x, b.x)
        np.testing.assert_array_equal(a.y, b.y)
        np.testing.assert_array_equal(a.w, b.w)


def test_order_is_fixed_by_the_seed_and_changes_each_epoch(parts):
    first, again = fitted(parts), fitted(parts)
    order = lambda feed, number: np.concatenate([c.x[:, 0] for c in epoch(feed, number)])  # noqa: E731
    np.testing.assert_array_equal(order(first, 1), order(again, 1))
    assert not np.array_equal(order(first, 1), order(first, 2))
    shuffled = order(fitted(parts, seed=8), 1)
    assert not np.array_equal(order(first, 1), shuffled)


def test_rows_are_shuffled_across_row_groups_within_a_window(parts):
    feed = fitted(parts, shuffle_buffer=10_000)  # one window: the whole share
    first = epoch(feed, 1, rows=40)[0].x[:, 0].astype(int)
    assert len(set(first // 40)) > 5  # one chunk draws on many row groups, not one


def test_statistics_equal_the_in_memory_fit_and_combine_across_processes(parts):
    whole = fitted(parts, standardize=True, offsets={"b": 1000.0}, scales={"b": 0.1})
    train = whole.split_tables("train")["train"]
    raw = whole.raw
    mean, std = feature_statistics(raw.table_features(train, "train"))
    np.testing.assert_allclose(whole.preprocessing.mean, mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(whole.preprocessing.std, std, rtol=1e-12)
    classes, index = fit_labels(train.column("label").to_numpy(zero_copy_only=False), None, None, "label")
    assert whole.preprocessing.task == "classification"
    assert (whole.preprocessing.classes, whole.preprocessing.label_index) == (classes, index)

    shares = [ParquetFeed(parts, features=FEATURES, target="label", seed=7, validation_split=0.2, test_split=0.1,
                          process=p, processes=2, offsets={"b": 1000.0}, scales={"b": 0.1}) for p in (0, 1)]
    sent = [FitSums.decode(share.fit_sums().encode()) for share in shares]  # as gathered from other processes
    for share in shares:
        pre = share.fit(combine_fit_sums(sent), standardize=True)
        np.testing.assert_allclose(pre.mean, mean, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(pre.std, std, rtol=1e-12)
        assert pre.classes == classes


@pytest.mark.parametrize("target, task", [("flag", "classification"), ("energy", "regression")])
def test_targets_reach_the_chunks_encoded_as_in_memory(parts, target, task):
    feed = fitted(parts, target=target)
    assert feed.preprocessing.task == task
    raw = pq.read_table(parts)  # the parts in order: row i is the i-th row read
    expected = feed.preprocessing.encode_target(raw.column(target).to_numpy(), "all")
    for chunk in epoch(feed, 1):
        np.testing.assert_array_equal(chunk.y, expected[chunk.x[:, 0].astype(int)])


def test_process_shares_are_disjoint_and_cover_the_data_set(parts):
    whole = fitted(parts)
    shares = [fitted(parts, process=p, processes=3) for p in range(3)]
    units = [{(u.path, u.row_group) for u in share.units} for share in shares]
    everything = {(u.path, u.row_group) for u in whole.units}
    assert sum(map(len, units)) == len(whole.units) and set().union(*units) == everything
    for split in ("train", "val", "test"):
        ids = [row for share in shares for row in share.split_tables(split)[split].column("row").to_pylist()]
        # a row's split depends on the seed and its place, not on the number of processes
        assert sorted(ids) == sorted(whole.split_tables(split)[split].column("row").to_pylist())
    assert all(share.largest_share == max(s.local_examples for s in shares) for share in shares)
    assert all(share.examples == whole.local_examples for share in shares)
    counts = [len(epoch(share, 1)) for share in shares]
    assert len(set(counts)) == 1  # every process serves as many chunks


def test_held_out_rows_are_model_ready_arrays(parts):
    feed = fitted(parts, standardize=True)
    held = feed.held_out()
    assert set(held) == {"val", "test"}
    total, rounding = sum(u.rows for u in feed.units), len(feed.units)  # counts are rounded per row group
    assert abs(len(held["val"][0]) - 0.2 * total) < rounding and abs(len(held["test"][0]) - 0.1 * total) < rounding
    x, y = held["val"]
    assert x.dtype == np.float32 and x.shape[1] == len(FEATURES) and y.dtype == np.int32
    assert set(np.unique(y)) <= {0, 1}
    assert feed.local_examples + sum(len(v[0]) for v in held.values()) == total
    resumed = ParquetFeed(parts, features=FEATURES, target="label", seed=7, validation_split=0.2, test_split=0.1,
                          preprocessing=feed.preprocessing)  # no fit pass: the rows are read again, the same
    for split, (x, y) in resumed.held_out().items():
        np.testing.assert_array_equal(x, held[split][0])
        np.testing.assert_array_equal(y, held[split][1])


def test_a_missing_value_names_the_column_and_the_part(tmp_path):
    paths = write_parts(tmp_path)
    table = pq.read_table(paths[1])
    a = table.column("a").to_numpy().copy()
    a[50] = np.nan
    pq.write_table(table.set_column(1, "a", pa.array(a)), paths[1], row_group_size=40)
    with pytest.raises(DlcliError, match=r"part-00001\.parquet.*column 'a'.*data\.stream = false"):
        ParquetFeed(paths, features=FEATURES, target="label", seed=7).fit_sums()


def test_missing_value_policies_are_refused_when_streaming(parts):
    with pytest.raises(DlcliError, match=r'data\.missing = "mean" is not available when streaming'):
        ParquetFeed(parts, features=FEATURES, target="label", seed=7, missing="mean")


def test_a_part_without_a_column_is_named(tmp_path):
    paths = write_parts(tmp_path)
    pq.write_table(pq.read_table(paths[2]).drop_columns(["b"]), paths[2])
    with pytest.raises(DlcliError, match=r"part-00002\.parquet' has no column\(s\) 'b'"):
        ParquetFeed(paths, features=FEATURES, target="label", seed=7)


def test_a_part_damaged_mid_epoch_is_named_and_the_reader_stops(tmp_path):
    paths = write_parts(tmp_path, part_rows=[400, 400, 400])
    feed = fitted(paths, validation_split=0.0, test_split=0.0)
    data = bytearray(paths[1].read_bytes())
    data[4:len(data) // 2] = np.random.default_rng(0).integers(0, 256, len(data) // 2 - 4, np.uint8).tobytes()
    paths[1].write_bytes(bytes(data))  # footer intact: only reading its row groups fails
    with pytest.raises(DlcliError, match=r"part-00001\.parquet.*row group \d+ cannot be read"):
        epoch(feed, 1)
    assert not reading_threads()


def test_close_stops_the_background_reader_promptly(parts):
    feed = fitted(parts, shuffle_buffer=40)
    chunks = feed.chunks(1, 0, 8)
    next(chunks)
    assert reading_threads()
    began = time.perf_counter()
    feed.close()
    assert not reading_threads() and time.perf_counter() - began < 1.0


def reading_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(("dlcli-prefetch", "dlcli-read")) and t.is_alive()]
