"""tools/check_reports.py (`make check-reports`): headless Chromium passes a good page and names each
problem of a bad one on its own line: a script that throws, an image that does not load, a page wider than the
screen, a request to the network, a figure without a caption. Skipped without Chromium."""

from __future__ import annotations

import base64
import io
from pathlib import Path

from report_check import check_reports as _check
from report_check import needs_chromium


def _png() -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (40, 20), (200, 30, 30)).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _page(folder: Path, name: str, body: str) -> Path:
    path = folder / f"{name}.html"
    path.write_text(f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{name}</title></head>"
                    f"<body>{body}</body></html>")
    return path


def test_help_and_a_missing_chromium(tmp_path):
    assert _check("--help").returncode == 0
    page = _page(tmp_path, "good", "<p>text</p>")
    res = _check("--out", tmp_path / "png", "--chromium", tmp_path / "no-chromium", page)
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.strip().count("\n") == 0 and "apt-get install chromium chromium-driver" in res.stderr


@needs_chromium
def test_a_good_page_passes_and_each_broken_page_is_named(tmp_path):
    png = _png()
    good = _page(tmp_path, "good", f"<h1>fine</h1><figure><img alt='box' src='data:image/png;base64,{png}'>"
                                   "<figcaption>A red box.</figcaption></figure><table><tr><td>1</td></tr></table>")
    out = tmp_path / "png"
    res = _check("--out", out, good)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout == ""
    shots = sorted(p.name for p in out.iterdir())
    assert shots == [f"{tmp_path.name}-good-1280x800.png", f"{tmp_path.name}-good-1366x768.png"]
    assert all((out / s).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for s in shots)

    caption = "<figcaption>caption</figcaption>"
    bad = {
        "throws": ("<p>x</p><script>throw new Error('boom in the report')</script>",
                   "JavaScript error: Error: boom in the report"),
        "broken": (f"<figure><img alt='b' src='data:image/png;base64,AAAA'>{caption}</figure>",
                   "image did not load (naturalWidth 0)"),
        "wide": ("<table style='width:3000px'><tr><td>wide</td></tr></table>", "px wide in a 1366 px viewport"),
        "network": (f"<figure><img alt='n' src='http://example.com/x.png'>{caption}</figure>",
                    "network request (the report must be self-contained): http://example.com/x.png"),
        "uncaptioned": (f"<img alt='alone' src='data:image/png;base64,{png}'>", "figure without a caption"),
    }
    pages = [_page(tmp_path, name, body) for name, (body, _) in bad.items()]
    res = _check("--out", out, "--viewport", "1366x768", good, *pages)
    assert res.returncode == 1, res.stdout + res.stderr
    lines = res.stdout.strip().splitlines()
    assert not [x for x in lines if x.startswith(str(good))]  # the good page stays good beside bad ones
    for page, (name, (_, message)) in zip(pages, bad.items()):
        mine = [x for x in lines if x.startswith(f"{page} 1366x768: ")]
        assert any(message in x for x in mine), (name, mine)
    wide = next(x for x in lines if x.startswith(f"{pages[2]} "))
    assert "(widest: <table>)" in wide and int(wide.split("page is ")[1].split()[0]) >= 3000
    # one problem per line: the pages with one problem have one line each
    for i in (0, 1, 2, 4):
        assert len([x for x in lines if x.startswith(f"{pages[i]} ")]) == 1, lines
