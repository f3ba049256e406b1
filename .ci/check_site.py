"""Load every page of the built site in headless Chromium and fail on what a reader would see.

    python .ci/check_site.py site [--chromium /usr/bin/chromium] [--driver /usr/bin/chromedriver]

Per page, at a 1280 × 900 window, after MathJax has typeset it:

- JavaScript errors in the console (uncaught exceptions, failed loads), and MathJax error nodes
  (an unknown macro or environment shows as red text mid-sentence);
- code and output blocks wider than their box (the reader would have to scroll sideways);
- internal vocabulary in the rendered text: our own file numbers for the papers and issue talk
  (users know papers by authors and titles, see the References page).

Serves the site over HTTP (as a host would; ``file://`` pages behave differently) and prints
every problem with its page before failing.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import re
import sys
import threading
from pathlib import Path
from typing import Any

VOCABULARY = [
    re.compile(r"\bseeds?[\s-]*0\d\d\b", re.I),
    re.compile(r"\bseed-specs?\b", re.I),
    re.compile(r"\bspec\s*§", re.I),
    re.compile(r"\b(this|the|that) issue\b", re.I),
    re.compile(r"\bissue[\s-]*#?\d+\b", re.I),
    # "the seed" as the name of a paper ("the seed writes the product ..."), not a random seed
    re.compile(r"\b(the|this|our) seeds? (paper|text|writes|says|defines|specifies|calls)\b", re.I),
]

# Blocks wider than their box, the first line of each; MathJax error nodes, their text.
MEASURE = """
const wide = [];
for (const pre of document.querySelectorAll(".md-typeset pre")) {
  if (pre.closest("details:not([open])")) continue;
  const code = pre.querySelector("code");
  const box = code && getComputedStyle(code).display === "block" ? code : pre;
  if (box.scrollWidth > box.clientWidth + 1) {
    wide.push(box.innerText.split("\\n")[0].slice(0, 80) +
              ` (${box.scrollWidth} px in ${box.clientWidth} px)`);
  }
}
const errors = [...document.querySelectorAll("mjx-merror, [data-mjx-error], .MathJax_Error")]
  .map(node => node.getAttribute("data-mjx-error") || node.textContent);
return {wide: wide, mathjax: errors, text: document.title + "\\n" + document.body.innerText};
"""

WAIT_FOR_MATHJAX = """
const done = arguments[arguments.length - 1];
const ready = () => window.MathJax && MathJax.startup && MathJax.startup.promise;
if (!ready()) { done(false); return; }
MathJax.startup.promise.then(() => done(true), () => done(false));
"""


def pages(site: Path) -> list[str]:
    return sorted(
        str(p.relative_to(site).parent).replace("\\", "/")
        for p in site.rglob("index.html")
        if "assets" not in p.parts
    )


def serve(site: Path) -> tuple[http.server.ThreadingHTTPServer, int]:
    handler = functools.partial(QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def browser(chromium: str, driver: str) -> Any:
    # Imported here so that the vocabulary list can be read without selenium (the tests do).
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options)


def check(site: Path, chromium: str, driver_path: str) -> list[str]:
    server, port = serve(site)
    driver = browser(chromium, driver_path)
    driver.set_script_timeout(30)
    problems: list[str] = []
    try:
        for page in pages(site):
            url = f"http://127.0.0.1:{port}/{'' if page == '.' else page + '/'}"
            driver.get(url)
            driver.execute_async_script(WAIT_FOR_MATHJAX)
            found = driver.execute_script(MEASURE)
            name = "/" if page == "." else f"/{page}/"
            for entry in driver.get_log("browser"):
                if entry["level"] == "SEVERE":
                    problems.append(f"{name}: console error: {entry['message']}")
            problems += [f"{name}: MathJax error: {text}" for text in found["mathjax"]]
            problems += [f"{name}: block wider than its box: {line}" for line in found["wide"]]
            text = " ".join(found["text"].split())
            for pattern in VOCABULARY:
                for match in pattern.finditer(text):
                    start = max(0, match.start() - 40)
                    problems.append(
                        f"{name}: internal vocabulary {match.group(0)!r}: "
                        f"…{text[start : match.end() + 40]}…"
                    )
    finally:
        driver.quit()
        server.shutdown()
    return problems


# A page with one defect of each kind: the check must report every one (run by --self-test, so
# that a check that silently stopped seeing anything cannot pass CI).
DEFECTS = """<!doctype html><html><head><title>defects</title></head><body>
<div class="md-typeset" style="width: 300px">
<pre><code>{wide}</code></pre>
<p>As seed 003 says, and as this issue notes.</p>
<mjx-merror data-mjx-error="Unknown environment 'psmallmatrix'">psmallmatrix</mjx-merror>
</div>
<script>throw new Error("boom from the self-test");</script>
</body></html>
"""


def self_test(chromium: str, driver: str) -> int:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "index.html").write_text(DEFECTS.format(wide="x" * 400), encoding="utf-8")
        problems = check(Path(tmp), chromium, driver)
    expected = {
        "console error": "boom from the self-test",
        "MathJax error": "psmallmatrix",
        "block wider than its box": "xxxx",
        "internal vocabulary 'seed 003'": "seed 003",
        "internal vocabulary 'this issue'": "this issue",
    }
    missing = [
        kind
        for kind, text in expected.items()
        if not any(kind in problem and text in problem for problem in problems)
    ]
    if missing:
        print(f"self-test: the check missed {missing}; it reported {problems}", file=sys.stderr)
        return 1
    print(f"self-test: all {len(expected)} planted defects reported")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", type=Path, nargs="?")
    parser.add_argument("--self-test", action="store_true", help="check a page of planted defects")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--driver", default="/usr/bin/chromedriver")
    args = parser.parse_args()
    if args.self_test:
        return self_test(args.chromium, args.driver)
    if args.site is None:
        parser.error("give the built site's directory (or --self-test)")
    problems = check(args.site, args.chromium, args.driver)
    for problem in problems:
        print(problem, file=sys.stderr)
    count = len(pages(args.site))
    if problems:
        print(f"{len(problems)} problems on {count} pages", file=sys.stderr)
        return 1
    print(
        f"{count} pages checked in headless Chromium: no console or MathJax errors, no block "
        "wider than its box, no internal vocabulary"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
