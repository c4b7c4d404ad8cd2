"""Damaged files: a DataCorruption naming the file, the rest of the database still opens, repair."""

from __future__ import annotations

import numpy as np
import pytest

import vecstore
from vecstore.engine.payloads import PAYLOAD_SUFFIX


def _build(path):
    db = vecstore.connect(path)
    bad = db.create_collection("bad", dim=3, metric="l2", attributes={"n": "int64"}, seal_rows=10)
    good = db.create_collection("good", dim=3, metric="l2")
    bad.upsert(np.arange(10), np.ones((10, 3)), {"n": np.arange(10)})  # sealed: seg-1
    bad.upsert(np.arange(10, 15), np.ones((5, 3)), {"n": np.arange(10, 15)})  # appendable, in the WAL
    good.upsert([1, 2], np.eye(3)[:2])
    segment = next(p for p in (bad.path / "segments").iterdir() if p.suffix == ".arrow")
    db.close()
    return segment


@pytest.mark.parametrize("damage", ["truncate", "flip", "remove"])
def test_damaged_segment_names_the_file_and_spares_the_rest(tmp_path, damage):
    segment = _build(tmp_path / "db")
    data = segment.read_bytes()
    if damage == "truncate":
        segment.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        middle = len(data) // 2
        segment.write_bytes(data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :])
    else:
        segment.unlink()
    db = vecstore.connect(tmp_path / "db")
    with pytest.raises(vecstore.DataCorruption, match=segment.name):
        db.collection("bad")
    assert db.collection("good").count() == 2  # the rest of the database opens and serves
    report = db.repair("bad")
    assert report == {"quarantined": [segment.name], "lost_rows": 10}
    col = db.collection("bad")
    assert col.count() == 5  # rows still in the write-ahead log survive
    assert sorted(col.get(np.arange(20)).column("id").to_pylist()) == list(range(10, 15))
    col.upsert([0], np.zeros((1, 3)), {"n": [0]})  # writable again
    db.close()


def test_orphan_files_from_a_crashed_seal_are_removed(tmp_path):
    segment = _build(tmp_path / "db")
    orphan = segment.with_name("seg-00000099.arrow")
    orphan.write_bytes(b"half written")
    (segment.parent / "seg-00000100.arrow.tmp").write_bytes(b"x")
    db = vecstore.connect(tmp_path / "db")
    assert db.collection("bad").count() == 15
    left = sorted(p.name for p in segment.parent.iterdir())
    assert [name for name in left if not name.endswith(PAYLOAD_SUFFIX)] == [segment.name]
    assert len(left) == 2  # and the segment's payload index
    db.close()


def test_a_failed_seal_does_not_fail_the_acknowledged_write(tmp_path, monkeypatch):
    from vecstore.engine import collection as collection_module

    db = vecstore.connect(tmp_path / "db")
    col = db.create_collection("c", dim=2, metric="l2", seal_rows=4)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(collection_module, "write_segment", disk_full)
    assert col.upsert([1, 2, 3, 4, 5], np.ones((5, 2))) == 5  # durable in the WAL: acknowledged
    assert col.count() == 5 and col.stats()["housekeeping_failures"] == 1
    assert "No space left" in col.describe()["last_housekeeping_error"]
    monkeypatch.undo()
    col.upsert([6], np.ones((1, 2)))  # the next write seals
    assert [s["segment"] for s in col.describe()["segments"]] == ["seg-2"]
    db.close()
    db = vecstore.connect(tmp_path / "db")
    assert db.collection("c").count() == 6
    db.close()
