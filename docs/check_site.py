"""Check the built documentation site: internal links, and every top-level page in a browser.

    python docs/check_site.py [docs/_build/html] [--chromium /usr/bin/chromium]

1. **Links inside the site.** Every ``href`` and ``src`` of every HTML page that points inside
   the site (no scheme, not ``mailto:``) must name an existing file, and its ``#fragment`` an
   ``id`` on that page. External links are listed, not fetched (CI reaches no external host).
2. **Pages in headless Chromium** (Debian's ``chromium``, driven by Playwright with that
   executable; no browser is downloaded): each top-level page of :data:`PAGES` is loaded from a
   local HTTP server; a console error, an uncaught page error, a failed request of the site's own
   files, a page whose main content is empty, or equations left as TeX (MathJax, bundled in the
   site, did not typeset them) fails the check.
3. **Screenshots** of the front page and one notebook page are written to
   ``<site>/../screenshots/`` (the CI artifact).

Exit status 0 when everything passes, 1 otherwise (each failure printed).
"""

from __future__ import annotations

import argparse
import functools
import http.server
import sys
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

#: The top-level pages, relative to the site's root.
PAGES = (
    "index.html",
    "getting_started.html",
    "user_guide/index.html",
    "gallery/index.html",
    "examples.html",
    "api.html",
    "validation.html",
    "design.html",
    "changelog.html",
)
#: Resolves when MathJax (bundled in the site) has typeset the page, at once on a page without it.
MATH_TYPESET = (
    "() => (window.MathJax && MathJax.startup && MathJax.startup.promise)"
    " ? MathJax.startup.promise.then(() => true) : true"
)


def notebook_page(site: Path) -> str:
    """The first example notebook's page that shows outputs (else the first): screenshot 2."""
    pages = sorted((site / "_generated" / "examples").glob("*.html"))
    with_outputs = [p for p in pages if 'class="cell_output' in p.read_text(encoding="utf-8")]
    chosen = (with_outputs or pages)[0]
    return chosen.relative_to(site).as_posix()


class _Links(HTMLParser):
    """The ids of a page and the links (href, src) it makes."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is None:
                continue
            if name in ("id", "name"):
                self.ids.add(value)
            elif name in ("href", "src") and not (tag == "link" and value.startswith("data:")):
                self.links.append(value)


def check_links(site: Path) -> tuple[list[str], int]:
    """Broken internal links of the site (messages) and the number of external links seen."""
    pages: dict[Path, _Links] = {}
    for page in sorted(site.rglob("*.html")):
        if "_static" in page.relative_to(site).parts:  # theme templates, not pages
            continue
        parser = _Links()
        parser.feed(page.read_text(encoding="utf-8"))
        pages[page.resolve()] = parser
    problems, external = [], 0
    for page, parser in pages.items():
        for link in parser.links:
            parts = urlsplit(link)
            if parts.scheme or link.startswith(("//", "mailto:", "javascript:")):
                external += 1
                continue
            target = page if not parts.path else (page.parent / unquote(parts.path)).resolve()
            if target.is_dir():
                target = target / "index.html"
            where = f"{page.relative_to(site.resolve())}: {link}"
            if not target.exists():
                problems.append(f"broken link {where} (no such file)")
            elif parts.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else set()
                if unquote(parts.fragment) not in ids:
                    problems.append(f"broken anchor {where}")
    return problems, external


def _serve(site: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """A local HTTP server of the site on a free port, in a thread."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # (no access log)
            pass

    handler = functools.partial(Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def _console(errors: list[str], base: str, message: object) -> None:
    """Keep a console error, unless it is an external resource that could not be reached.

    The site loads MathJax and nothing else from outside; CI machines reach no external host,
    so those loads fail there and say nothing about the site.
    """
    if message.type != "error":
        return
    url = (message.location or {}).get("url", "")
    if "ERR_NAME_NOT_RESOLVED" in message.text or (url and not url.startswith(base)):
        return
    errors.append(f"console error: {message.text} ({url})")


def check_pages(site: Path, chromium: str, shots: Path) -> list[str]:
    """Load each top-level page in headless Chromium; screenshots of two of them."""
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    server, base = _serve(site)
    shots.mkdir(parents=True, exist_ok=True)
    args = [  # a closed network: no background connections, no first-run work
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ]
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True, args=args)
            notebook = notebook_page(site)
            for page_name in (*PAGES, notebook):
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                errors: list[str] = []
                page.on("console", functools.partial(_console, errors, base))
                page.on("pageerror", lambda exc, e=errors: e.append(f"page error: {exc}"))
                page.on(
                    "requestfailed",
                    lambda r, e=errors: (
                        e.append(f"request failed: {r.url}") if r.url.startswith(base) else None
                    ),
                )
                response = page.goto(base + page_name, wait_until="load")
                if response is None or response.status != 200:
                    status = None if response is None else response.status
                    errors.append(f"HTTP status {status}")
                page.evaluate(MATH_TYPESET)  # (waits until MathJax has typeset the page)
                text = page.inner_text("main") if page.query_selector("main") else ""
                if len(text.strip()) < 200:
                    errors.append(f"main content has {len(text.strip())} characters")
                if "\\(" in text or "\\[" in text:
                    errors.append("equations left as TeX (MathJax did not typeset them)")
                if page_name == "index.html":
                    page.screenshot(path=str(shots / "front_page.png"), full_page=True)
                elif page_name == notebook:
                    page.screenshot(path=str(shots / "notebook_page.png"), full_page=True)
                problems += [f"{page_name}: {error}" for error in errors]
                print(f"  {page_name}: {'ok' if not errors else 'FAILED'}")
                page.close()
            browser.close()
    finally:
        server.shutdown()
    return problems


def main() -> int:
    """Run both checks on the built site; print the failures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", nargs="?", default="docs/_build/html")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--no-browser", action="store_true", help="links only")
    args = parser.parse_args()
    site = Path(args.site)
    if not (site / "index.html").exists():
        print(f"check_site: no site at {site} (build it first: see README.md)", file=sys.stderr)
        return 1
    problems, external = check_links(site)
    print(f"links: {len(problems)} broken inside the site; {external} external (not fetched)")
    if not args.no_browser:
        problems += check_pages(site, args.chromium, site.parent / "screenshots")
    for problem in problems:
        print("FAILED:", problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
