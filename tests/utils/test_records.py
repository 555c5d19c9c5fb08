"""Completion records: a cached file is reused only with its recorded size and sha256 (issue 14, case 5)."""

from __future__ import annotations

import json
import logging

import pytest

from gliotype.utils.records import holds_key, record_digest, records_key, reusable_record, write_record


@pytest.fixture
def stage(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"\x01" * 1000)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "table.csv").write_text("a,b\n1,2\n")
    write_record(tmp_path / "record.json", "k1", ["weights.bin", "sub/table.csv"], note="hello")
    return tmp_path


def test_an_unchanged_stage_is_reused_with_its_fields(stage):
    meta = reusable_record(stage / "record.json", "k1")
    assert meta["note"] == "hello"
    assert meta["files"]["weights.bin"]["bytes"] == 1000 and len(meta["files"]["sub/table.csv"]["sha256"]) == 64


@pytest.mark.parametrize("damage, problem", [
    (lambda f: f.write_bytes(f.read_bytes()[:500]), "500 bytes, recorded 1000"),  # truncated
    (lambda f: f.write_bytes(b"\x02" * 1000), "content differs"),  # same size, other bytes
    (lambda f: f.unlink(), "missing"),
])
def test_a_changed_file_is_named_and_not_reused(stage, caplog, damage, problem):
    damage(stage / "weights.bin")
    with caplog.at_level(logging.WARNING):
        assert reusable_record(stage / "record.json", "k1", what="patient P7") is None
    assert "patient P7: cached file weights.bin changed since it was written" in caplog.text
    assert problem in caplog.text and "building it again" in caplog.text


def test_another_key_an_old_record_or_a_broken_one_is_never_reused(stage, caplog):
    with caplog.at_level(logging.WARNING):
        assert reusable_record(stage / "record.json", "k2") is None
    assert caplog.text == ""  # a new key is a new stage, not a damaged file
    (stage / "old.json").write_text(json.dumps({"key": "k1"}))  # written before files were recorded
    assert reusable_record(stage / "old.json", "k1") is None
    (stage / "broken.json").write_text('{"key": "k1", "fi')
    assert reusable_record(stage / "broken.json", "k1") is None
    assert reusable_record(stage / "absent.json", "k1") is None


def test_files_relative_to_another_root(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "t1.nii.gz").write_bytes(b"abc")
    write_record(tmp_path / "done.json", "k", ["t1.nii.gz"], root=tmp_path / "out")
    assert reusable_record(tmp_path / "done.json", "k", root=tmp_path / "out") is not None
    assert reusable_record(tmp_path / "done.json", "k") is None  # looked for beside the record


def test_the_digest_follows_key_and_content_not_timings(stage):
    base = record_digest(stage / "record.json")
    meta = json.loads((stage / "record.json").read_text())
    (stage / "record.json").write_text(json.dumps({**meta, "seconds": 12.5, "note": "other"}))
    assert record_digest(stage / "record.json") == base  # what it says besides key and files: not part
    (stage / "weights.bin").write_bytes(b"\x03" * 10)
    write_record(stage / "record.json", "k1", ["weights.bin", "sub/table.csv"])
    assert record_digest(stage / "record.json") != base  # same key, other content
    assert record_digest(stage / "nothing.json") == "absent"
    a, b = stage / "record.json", stage / "nothing.json"
    assert records_key([a, b]) != records_key([b, a]) and records_key([a, b]) == records_key([a, b])


def test_holds_key_reads_the_key_only(tmp_path):
    """holds_key: the record's key, whatever its files (reusable_record checks them when it is read);
    a missing, broken or non-object record holds no key."""
    path = tmp_path / "record.json"
    (tmp_path / "gone.bin").write_bytes(b"x")
    write_record(path, "k1", ["gone.bin"])
    (tmp_path / "gone.bin").unlink()
    assert holds_key(path, "k1") and not holds_key(path, "k2")
    assert reusable_record(path, "k1") is None  # the file it lists is gone
    assert not holds_key(tmp_path / "missing.json", "k1")
    for text in ("{broken", '["k1"]'):
        path.write_text(text)
        assert not holds_key(path, "k1")
