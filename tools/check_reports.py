#!/usr/bin/env python3
"""Render HTML reports in headless Chromium as a person sees them, save full-page PNGs, and fail on what
such a person would find broken (``make check-reports``; not part of ``make test``).

For each report and each viewport (default 1366x768 and 1280x800) the page is loaded from disk and checked:

- a JavaScript error (an uncaught exception, ``console.error``, an error in the browser's log);
- a network request: anything but the report itself and ``data:`` URLs (a report must be self-contained);
- an image that did not load (``naturalWidth`` 0);
- a page wider than the viewport (``scrollWidth`` > the viewport's width);
- a figure (``img``, ``svg``, ``canvas``) without a caption: not inside a ``<figure>`` with a non-empty
  ``<figcaption>``.

One line per problem (``REPORT WxH: problem``); exit status 0 when there is none, 1 when there are, 2 when
Chromium is missing or a report cannot be read. The PNGs (``OUT/<name>-<W>x<H>.png``) are for looking at.

Chromium is driven through the DevTools protocol over a pipe (``--remote-debugging-pipe``): no driver, no
port, no Python package beyond the standard library. Every host name resolves to nothing, so a report that
reaches for the network fails fast instead of hanging.
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

INSTALL = "chromium not found: apt-get install chromium chromium-driver (or --chromium PATH)"
VIEWPORTS = ("1366x768", "1280x800")
CANDIDATES = ("/usr/lib/chromium/chromium", "chromium", "chromium-browser", "google-chrome", "chrome")
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
         "--disable-extensions", "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--mute-audio", "--no-pings", "--host-resolver-rules=MAP * ~NOTFOUND",
         "--remote-debugging-pipe", "--force-device-scale-factor=1")
LOAD_TIMEOUT = 60.0
SETTLE = 0.3  # seconds after the load event for late requests and errors

# What the page itself says: the images that did not load, the width, the figures without a caption.
PAGE_JS = r"""
(() => {
  const describe = (el) => {
    const alt = el.getAttribute('alt') || el.getAttribute('aria-label') || el.id || '';
    let src = el.getAttribute('src') || '';
    if (src.startsWith('data:')) src = src.slice(0, 30) + '...';
    return '<' + el.tagName.toLowerCase() + (alt ? ' "' + alt.slice(0, 40) + '"' : '') + (src ? ' ' + src.slice(0, 60) : '') + '>';
  };
  const broken = [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(describe);
  const figures = [...document.querySelectorAll('img, svg, canvas')]
    .filter(el => !(el.tagName.toLowerCase() === 'svg' && el.parentElement && el.parentElement.closest('svg')))
    .filter(el => el.getAttribute('aria-hidden') !== 'true' && el.getAttribute('role') !== 'presentation')
    .filter(el => {
      const fig = el.closest('figure');
      const cap = fig && fig.querySelector('figcaption');
      return !(cap && cap.textContent.trim());
    }).map(describe);
  const root = document.documentElement;
  const width = Math.max(root.scrollWidth, document.body ? document.body.scrollWidth : 0);
  const view = window.innerWidth;
  let widest = '';
  if (width > view) {
    let best = null, right = view;
    for (const el of document.body.querySelectorAll('*')) {
      const r = el.getBoundingClientRect().right + window.scrollX;
      if (r > right + 0.5 && (!best || !best.contains(el))) { best = el; right = r; }
    }
    if (best) widest = '<' + best.tagName.toLowerCase() + (best.className ? ' class="' + best.className + '"' : '') + '>';
  }
  return {broken, figures, width, view, widest, height: Math.max(root.scrollHeight, document.body ? document.body.scrollHeight : 0)};
})()
"""


class ChromiumMissing(RuntimeError):
    pass


def find_chromium(given: str | None) -> str:
    """The Chromium executable: ``given``, ``$CHROMIUM``, Debian's binary, then the usual names on the PATH."""
    for name in ([given] if given else [os.environ.get("CHROMIUM"), *CANDIDATES]):
        if not name:
            continue
        path = name if os.path.isabs(name) else shutil.which(name)
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
        if given:
            break
    raise ChromiumMissing(INSTALL)


class Browser:
    """A headless Chromium driven over the DevTools pipe (file descriptors 3 and 4 of the child)."""

    def __init__(self, executable: str):
        self.profile = tempfile.TemporaryDirectory(prefix="check-reports-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def pipes_to_3_and_4():  # in the child: high copies first, so dup2 never meets its own number
            a = fcntl.fcntl(to_child_r, fcntl.F_DUPFD_CLOEXEC, 10)
            b = fcntl.fcntl(from_child_w, fcntl.F_DUPFD_CLOEXEC, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen([executable, *FLAGS, f"--user-data-dir={self.profile.name}", "about:blank"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     close_fds=False, preexec_fn=pipes_to_3_and_4)
        os.close(to_child_r)
        os.close(from_child_w)
        self._messages: queue.Queue = queue.Queue()
        self._pending: list[dict] = []
        self._id = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(self._from_child, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                self._messages.put(None)
                return
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                self._messages.put(json.loads(raw))

    def _next(self, deadline: float) -> dict | None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        try:
            msg = self._messages.get(timeout=left)
        except queue.Empty:
            raise TimeoutError from None
        if msg is None:
            raise RuntimeError("chromium exited")
        return msg

    def call(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 60.0):
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_child, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._next(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})
            self._pending.append(reply)

    def events(self, session: str, until: str | None = None, timeout: float = 0.0) -> list[dict]:
        """The events of ``session`` so far; with ``until``, waiting (up to ``timeout``) for that one."""
        deadline = time.monotonic() + timeout
        seen = [m for m in self._pending if m.get("sessionId") == session]
        self._pending = [m for m in self._pending if m.get("sessionId") != session]
        while until is None or not any(m.get("method") == until for m in seen):
            try:
                msg = self._next(deadline)
            except TimeoutError:
                if until is not None:
                    raise
                break
            (seen if msg.get("sessionId") == session else self._pending).append(msg)
        return seen

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_child, self._from_child):
            try:
                os.close(fd)
            except OSError:
                pass
        self.profile.cleanup()


def _event_problems(events: list[dict], page_url: str) -> list[str]:
    problems = []
    for m in events:
        method, p = m.get("method"), m.get("params", {})
        if method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            text = (d.get("exception") or {}).get("description") or d.get("text", "")
            problems.append(f"JavaScript error: {text.splitlines()[0] if text else 'uncaught exception'}")
        elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            args = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
            problems.append(f"JavaScript console.{p['type']}: {args[:200]}")
        elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error" \
                and p["entry"].get("source") != "network":  # network failures are named as requests below
            problems.append(f"browser error: {p['entry'].get('text', '')[:200]}")
        elif method == "Network.requestWillBeSent":
            url = p.get("request", {}).get("url", "")
            if url.split(":", 1)[0] in ("data", "about", "blob") or url.split("#")[0] == page_url:
                continue
            problems.append(f"network request (the report must be self-contained): {url[:200]}")
    return list(dict.fromkeys(problems))


def check_page(browser: Browser, report: Path, width: int, height: int, png: Path) -> list[str]:
    """Load ``report`` at ``width`` x ``height``, write its full-page PNG, return its problems."""
    url = report.resolve().as_uri()
    target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    try:
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.call(f"{domain}.enable", session=session)
        browser.call("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1,
                                                            "mobile": False}, session=session)
        browser.events(session)  # forget about:blank
        browser.call("Page.navigate", {"url": url}, session=session)
        events = browser.events(session, until="Page.loadEventFired", timeout=LOAD_TIMEOUT)
        time.sleep(SETTLE)
        events += browser.events(session)
        page = browser.call("Runtime.evaluate", {"expression": PAGE_JS, "returnByValue": True},
                            session=session)["result"]["value"]
        events += browser.events(session)
        problems = _event_problems(events, url)
        problems += [f"image did not load (naturalWidth 0): {d}" for d in page["broken"]]
        if page["width"] > width:
            problems.append(f"page is {page['width']} px wide in a {width} px viewport"
                            + (f" (widest: {page['widest']})" if page["widest"] else ""))
        problems += [f"figure without a caption (<figure> with a <figcaption>): {d}" for d in page["figures"]]
        shot = browser.call("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True, "fromSurface": True,
            "clip": {"x": 0, "y": 0, "width": max(width, page["width"]), "height": max(height, page["height"]),
                     "scale": 1}}, session=session)
        png.write_bytes(base64.b64decode(shot["data"]))
        return problems
    finally:
        browser.call("Target.closeTarget", {"targetId": target})


def _viewport(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)x(\d+)", text)
    if not m:
        raise argparse.ArgumentTypeError(f"viewport {text!r} is not WIDTHxHEIGHT")
    return int(m[1]), int(m[2])


def _names(reports: list[Path]) -> list[str]:
    """A PNG name per report: its folder and file name (``results-report``), numbered when two are equal."""
    names = []
    for r in reports:
        base = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{r.resolve().parent.name}-{r.stem}")
        name, k = base, 2
        while name in names:
            name, k = f"{base}-{k}", k + 1
        names.append(name)
    return names


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog="Exit status: 0 no problem, 1 problems "
                                 "(one line each), 2 Chromium missing or a report not readable.")
    ap.add_argument("reports", nargs="+", type=Path, help="HTML reports to check")
    ap.add_argument("--out", type=Path, required=True, help="folder for the full-page PNGs")
    ap.add_argument("--viewport", type=_viewport, action="append",
                    help=f"WIDTHxHEIGHT, repeatable (default {' and '.join(VIEWPORTS)})")
    ap.add_argument("--chromium", help="the Chromium executable (default: $CHROMIUM, then chromium on the PATH)")
    args = ap.parse_args(argv)
    viewports = args.viewport or [_viewport(v) for v in VIEWPORTS]
    try:
        executable = find_chromium(args.chromium)
    except ChromiumMissing as exc:
        print(exc, file=sys.stderr)
        return 2
    unreadable = [r for r in args.reports if not r.is_file()]
    if unreadable:
        print(f"report not found: {unreadable[0]}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    browser = Browser(executable)
    problems = []
    try:
        for report, name in zip(args.reports, _names(args.reports)):
            for width, height in viewports:
                png = args.out / f"{name}-{width}x{height}.png"
                try:
                    found = check_page(browser, report, width, height, png)
                except TimeoutError:
                    found = [f"did not finish loading within {LOAD_TIMEOUT:.0f} s"]
                problems += [f"{report} {width}x{height}: {p}" for p in found]
    except (RuntimeError, OSError) as exc:  # Chromium did not start or died: not a finding about the reports
        print(f"chromium failed ({executable}): {exc}", file=sys.stderr)
        return 2
    finally:
        browser.close()
    for line in problems:
        print(line)
    n = len(args.reports) * len(viewports)
    print(f"{len(problems)} problem(s) in {n} rendering(s); PNGs in {args.out}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
