"""The atlas PNG."""

from __future__ import annotations

from gliotype.atlases import render_atlases


def test_render_atlases_writes_a_png(aal, small_tracts, tmp_path):
    out = render_atlases(tmp_path / "figs" / "atlases.png", node_atlas=aal, tract_atlas=small_tracts)
    assert out == tmp_path / "figs" / "atlases.png"
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    assert [p.name for p in out.parent.iterdir()] == ["atlases.png"]  # no temporary file left
