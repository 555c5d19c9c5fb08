"""The 2 mm template kept in gliotype's cache folder: nilearn's arrays to the bit, rebuilt when damaged."""

from __future__ import annotations

import logging

import numpy as np

from gliotype.atlases import template as template_module

load_uncached = template_module.load_template.__wrapped__  # past the in-process lru_cache


def _same(a, b) -> None:
    for name in ("t1", "gm", "wm", "brain_mask"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype == np.float32 and x.shape == y.shape
        assert x.tobytes() == y.tobytes(), name
    assert a.affine.dtype == b.affine.dtype == np.float64 and np.array_equal(a.affine, b.affine)


def test_the_cached_template_is_nilearns_to_the_bit(cache_root, monkeypatch):
    path = template_module.template_cache_file(2)
    assert path.parent == cache_root / "atlases" and not path.exists()
    first = load_uncached(2)  # from nilearn, then written
    assert path.exists()
    calls = []
    monkeypatch.setattr(template_module, "_from_nilearn", lambda r: calls.append(r))
    second = load_uncached(2)  # from the cache: nilearn is not asked
    assert calls == []
    _same(first, second)
    assert not second.t1.flags.writeable


def test_the_cache_holds_nilearns_arrays(cache_root):
    nilearn = template_module._from_nilearn(2)
    load_uncached(2)
    _same(template_module._read_cache(template_module.template_cache_file(2)), nilearn)


def test_a_damaged_cache_file_is_rebuilt(cache_root, caplog):
    path = template_module.template_cache_file(2)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not an npz")
    with caplog.at_level(logging.WARNING, logger="gliotype"):
        out = load_uncached(2)
    assert "unreadable" in caplog.text and path.name in caplog.text
    _same(out, template_module._from_nilearn(2))
    _same(template_module._read_cache(path), out)  # written again


def test_an_unwritable_cache_folder_is_skipped(cache_root):
    cache_root.mkdir()
    (cache_root / "atlases").write_text("a file where the folder should be")
    out = load_uncached(2)
    _same(out, template_module._from_nilearn(2))


def test_one_millimetre_is_not_cached(cache_root):
    load_uncached(1)
    assert not (cache_root / "atlases").exists()
