"""The built site, page by page, as a browser shows it.

The site is built once per session (the command of `make book`, into a temporary folder) and
every page listed in `_toc.yml` is opened in headless Chromium, which dumps the DOM after the
page's scripts ran and saves a screenshot. For each page the tests check that

* it loads: the DOM has the page's title (from the source's `# ` heading) in <title> and <h1>,
  the main article with all the source's `## ` sections, and every local file the page refers
  to (stylesheets, scripts, images, links) exists in the built site;
* its figures are there: every <img> in the article is a valid, non-empty PNG or SVG file of
  the site, and every figure a notebook stores (an image output the site shows) is among them;
* no stored output shows a traceback or stderr;
* the launch buttons of a notebook open *this* notebook: Colab at
  https://colab.research.google.com/github/<org>/<repo>/blob/<branch>/<path>.ipynb and Binder
  at https://mybinder.org/v2/gh/<org>/<repo>/<branch>?..., naming <path>.ipynb, where the
  repository and branch are `repository.url` and `repository.branch` in `_config.yml`;
* a page whose source has math loads MathJax from the site itself (`_static/mathjax`, no
  network: Chromium runs with every host name failing to resolve), and after the page's scripts
  ran every math element is typeset (holds an `mjx-container`) and no formula shows a MathJax
  error (`mjx-merror`: an undefined macro, a bad environment);
* each chapter notebook's markdown, rendered as plain Jupyter or Colab would (their math
  delimiters, none of the site's macros), typesets with no MathJax error: the notebook defines
  the macros it uses itself;
* its screenshot (1280x2400) is a non-empty PNG. Screenshots are kept in _build/screenshots/
  (the path is printed), to look at after a run.

Chromium is the `chromium` on PATH (or `chromium-browser`, `google-chrome`); the environment
variable DDPM_BOOK_CHROMIUM names another executable. Without one the tests are skipped, except
under CI=true, where they fail: CI must install it (see .ci/run). For example,
`CI=true DDPM_BOOK_CHROMIUM=/nonexistent pytest tests/test_site.py` must fail.
"""

from __future__ import annotations

import base64
import concurrent.futures
import hashlib
import json
import os
import pathlib
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import urllib.parse
import xml.etree.ElementTree as ET

import pytest
import yaml
from bs4 import BeautifulSoup

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
SCREENSHOTS = ROOT / "_build" / "screenshots"
WINDOW = (1280, 2400)
BUILD_TIMEOUT_S = 600
BROWSER_TIMEOUT_S = 90
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars",
    # Let the page's scripts (MathJax) finish before the DOM is dumped and the screenshot taken.
    "--virtual-time-budget=30000",
    # No network, even where there is one: everything the site needs must be in the site.
    "--host-resolver-rules=MAP * ~NOTFOUND",
]
# myst-nb's HTML priority: the first of these in an output's data is what the page shows.
RENDER_PRIORITY = [
    "application/vnd.jupyter.widget-view+json", "application/javascript", "text/html",
    "image/svg+xml", "image/png", "image/jpeg", "text/markdown", "text/latex", "text/plain",
]
IMAGE_MIMES = {"image/svg+xml", "image/png", "image/jpeg"}


# ---------------------------------------------------------------- pages and their sources

def _toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections"))
            walk(entry.get("chapters"))

    walk(toc.get("chapters"))
    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    return files


def _source(doc: str) -> pathlib.Path:
    path = ROOT / doc
    candidates = [path] if path.suffix in (".md", ".ipynb") else [ROOT / f"{doc}.ipynb", ROOT / f"{doc}.md"]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"_toc.yml lists {doc}, which has no .ipynb or .md source")


def _docname(doc: str) -> str:
    return re.sub(r"\.(md|ipynb)$", "", doc)


PAGES = [_docname(f) for f in _toc_files()]


def _markdown(src: pathlib.Path) -> str:
    """The page's MyST markdown: the .md file, or a notebook's markdown cells."""
    if src.suffix == ".ipynb":
        nb = json.loads(src.read_text())
        return "\n\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    text = src.read_text()
    return re.sub(r"\A---\n.*?\n---\n", "", text, flags=re.S)  # front matter


def _prose(markdown: str, spans: bool = True, bodies: bool = True) -> str:
    """Markdown without code blocks, without code spans (roles included) if not `spans`, and
    without the bodies of directives (which are markdown, e.g. exercises) if not `bodies`."""
    out, code, directives = [], None, []  # the open code fence; the open directive fences
    for line in markdown.splitlines():
        bare = line.strip()
        if code is not None:  # inside a code block: drop everything up to its closing fence
            if bare.startswith(code) and set(bare) == {code[0]}:
                code = None
            continue
        if directives and bare.startswith(directives[-1]) and set(bare) == {directives[-1][0]}:
            directives.pop()
            out.append(line)
            continue
        if directives and not bodies:
            m = re.match(r"^\s*(`{3,}|~{3,}|:{3,})\s*\{", line)
            if m:
                directives.append(m.group(1))
            continue
        m = re.match(r"^\s*(`{3,}|~{3,}|:{3,})\s*(\{([^}\s]+)\})?", line)
        if m:
            if m.group(2) and m.group(3) not in ("code", "code-block", "code-cell", "eval-rst", "raw"):
                directives.append(m.group(1))
                out.append(line)
                continue
            elif m.group(1)[0] != ":":
                code = m.group(1)
                continue
        out.append(line)
    text = "\n".join(out)
    return re.sub(r"(\{[^}\s]+\})?`[^`\n]+`", "", text) if spans else text


def _headings(markdown: str, level: int) -> list[str]:
    return re.findall(rf"^{'#' * level}\s+(.+?)\s*$", _prose(markdown, spans=False, bodies=False), re.M)


def _plain(text: str) -> str:
    """Letters and digits only, lowercase: enough to match a heading across its markup."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # [text](target) -> text
    text = re.sub(r"\{[^}\s]+\}`", "`", text)  # {role}`x` -> `x`
    return re.sub(r"[^0-9a-z]+", "", text.lower())


def _math_in(markdown: str) -> tuple[bool, bool]:
    """(inline math, display math) in the source's prose."""
    with_spans = _prose(markdown, spans=False)
    prose = _prose(markdown)
    display = bool(re.search(r"\$\$|^\s*\\begin\{", prose, re.M)
                   or re.search(r"^\s*(`{3,}|:{3,})\{math\}", with_spans, re.M))
    inline = bool(re.search(r"(?<![\\$])\$(?![\s$])[^$\n]+?(?<![\s\\])\$(?!\$)", prose)
                  or "{math}`" in with_spans)
    return inline, display


def _shown_figures(src: pathlib.Path) -> list[tuple[str, bytes]]:
    """The image outputs a notebook's page shows: (mime type, bytes)."""
    if src.suffix != ".ipynb":
        return []
    nb = json.loads(src.read_text())
    figures = []
    for cell in nb["cells"]:
        tags = set(cell.get("metadata", {}).get("tags", []))
        if cell["cell_type"] != "code" or tags & {"remove-cell", "remove-output", "remove_cell", "remove_output"}:
            continue
        for out in cell.get("outputs", []):
            if out["output_type"] not in ("display_data", "execute_result"):
                continue
            mime = next((m for m in RENDER_PRIORITY if m in out.get("data", {})), None)
            if mime in IMAGE_MIMES:
                data = out["data"][mime]
                data = "".join(data) if isinstance(data, list) else data
                figures.append((mime, data.encode() if mime == "image/svg+xml" else base64.b64decode(data)))
    return figures


# ---------------------------------------------------------------- images

def _image_size(path: pathlib.Path) -> tuple[float, float]:
    """(width, height) of a PNG or SVG file; AssertionError if it is neither, or broken."""
    data = path.read_bytes()
    if path.suffix.lower() == ".png":
        assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
        assert len(data) >= 33 and data[12:16] == b"IHDR", f"{path.name}: PNG without an IHDR header"
        width, height = struct.unpack(">II", data[16:24])
        assert b"IDAT" in data and b"IEND" in data[-12:], f"{path.name}: truncated PNG"
        return width, height
    if path.suffix.lower() == ".svg":
        root = ET.fromstring(data)
        assert root.tag.rsplit("}", 1)[-1] == "svg", f"{path.name} is not an SVG"

        def length(value):
            m = re.match(r"\s*([0-9.]+)", value or "")
            return float(m.group(1)) if m else None

        width, height = length(root.get("width")), length(root.get("height"))
        if width is None or height is None:
            box = [float(v) for v in re.split(r"[\s,]+", (root.get("viewBox") or "").strip()) if v]
            assert len(box) == 4, f"{path.name}: SVG with neither width/height nor viewBox"
            width, height = box[2], box[3]
        assert len(root), f"{path.name}: empty SVG"
        return width, height
    raise AssertionError(f"{path.name}: a figure must be PNG or SVG")


# ---------------------------------------------------------------- fixtures: build, browser

@pytest.fixture(scope="session")
def built_site(tmp_path_factory):
    """Build the site with `make book`'s command into a temporary folder; return its html/."""
    jb = pathlib.Path(sys.executable).parent / "jupyter-book"
    assert jb.exists(), f"{jb} not found: run the tests with the project's virtual environment"
    out = tmp_path_factory.mktemp("site")
    cmd = [str(jb), "build", str(ROOT), "--path-output", str(out),
           "--warningiserror", "--nitpick", "--keep-going"]
    env = dict(os.environ, JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"))
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        problems = [l for l in log.splitlines() if re.search(r"WARNING|ERROR|Error|Exception", l)]
        pytest.fail(f"`{' '.join(cmd)}` exited with {proc.returncode}:\n"
                    + "\n".join(problems[:40] or log.splitlines()[-40:]), pytrace=False)
    html = out / "_build" / "html"
    assert (html / "index.html").exists(), f"the build wrote no index.html:\n{log[-3000:]}"
    return html


def _find_chromium() -> tuple[str | None, str]:
    named = os.environ.get("DDPM_BOOK_CHROMIUM")
    candidates = [named] if named else ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"]
    for name in candidates:
        found = shutil.which(name)
        if found:
            return found, name
    return None, (f"DDPM_BOOK_CHROMIUM={named} is not an executable" if named
                  else "none of " + ", ".join(candidates) + " is on PATH")


@pytest.fixture(scope="session")
def chromium():
    exe, why = _find_chromium()
    if exe is None:
        msg = f"Chromium not found: {why} (Debian: apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{msg}. CI=true, so the site tests must run, not be skipped.", pytrace=False)
        pytest.skip(msg)
    return exe


class Browser:
    """Opens pages in headless Chromium, two at a time in the background, each once."""

    def __init__(self, exe: str, html: pathlib.Path, pages: list[str]):
        self.exe, self.html = exe, html
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
        self.lock = threading.Lock()
        self.jobs: dict[str, concurrent.futures.Future] = {}
        for page in pages:
            self._submit(page)

    def _submit(self, page):
        with self.lock:
            if page not in self.jobs:
                self.jobs[page] = self.pool.submit(self._open, page)
            return self.jobs[page]

    def _open(self, page: str) -> dict:
        file = self.html / f"{page}.html"
        shot = SCREENSHOTS / f"{page}.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        shot.unlink(missing_ok=True)
        with tempfile.TemporaryDirectory(prefix="chromium-profile-", ignore_cleanup_errors=True) as profile:
            cmd = [self.exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                   f"--window-size={WINDOW[0]},{WINDOW[1]}", f"--screenshot={shot}",
                   "--dump-dom", file.as_uri()]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                return {"file": file, "shot": shot, "rc": "timeout", "dom": "", "stderr": ""}
        start = proc.stdout.find("<")
        return {"file": file, "shot": shot, "rc": proc.returncode,
                "dom": proc.stdout[start:] if start >= 0 else "", "stderr": proc.stderr}

    def open(self, page: str) -> dict:
        return self._submit(page).result()

    def close(self):
        self.pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="module")
def browser(request, chromium, built_site):
    wanted = []  # the pages this run's selected tests open, in order, to open them in advance
    for item in request.session.items:
        page = getattr(getattr(item, "callspec", None), "params", {}).get("page")
        if pathlib.Path(str(item.path)) == pathlib.Path(__file__) and page and page not in wanted:
            wanted.append(page)
    b = Browser(chromium, built_site, wanted)
    yield b
    b.close()


class Page:
    def __init__(self, doc: str, rendered: dict, html: pathlib.Path):
        self.doc, self.html = doc, html
        self.file, self.shot = rendered["file"], rendered["shot"]
        self.source = _source(doc)
        self.markdown = _markdown(self.source)
        assert self.file.exists(), f"the build wrote no {self.file.relative_to(html)}"
        assert rendered["rc"] == 0, (f"Chromium exited with {rendered['rc']} on {self.file.name}:\n"
                                     + rendered["stderr"][-2000:])
        assert rendered["dom"], f"Chromium dumped no DOM for {self.file.name}"
        self.soup = BeautifulSoup(rendered["dom"], "html.parser")
        self.article = self.soup.select_one("main article") or self.soup.select_one("article")
        assert self.article is not None, f"{self.file.name}: no <article> (main content) in the DOM"

    def local(self, ref: str) -> pathlib.Path | None:
        """The site file a src/href refers to, or None if it is external or a same-page anchor."""
        parts = urllib.parse.urlsplit(ref)
        if parts.scheme == "file":
            return pathlib.Path(urllib.parse.unquote(parts.path))
        if parts.scheme or parts.netloc or not parts.path:
            return None
        return (self.file.parent / urllib.parse.unquote(parts.path)).resolve()


@pytest.fixture
def page(request, browser):
    doc = request.param
    return Page(doc, browser.open(doc), browser.html)


def pytest_generate_tests(metafunc):
    if "page" in metafunc.fixturenames:
        metafunc.parametrize("page", PAGES, ids=PAGES, indirect=True)


# ---------------------------------------------------------------- the tests

def test_every_page_has_a_source():
    for doc in _toc_files():
        _source(doc)


def test_page_loads(page):
    title = _headings(page.markdown, 1)
    assert title, f"{page.source.name} has no '# ' title"
    want = _plain(title[0])
    h1 = page.article.find("h1")
    assert h1 is not None, f"{page.doc}: no <h1> in the article"
    assert want in _plain(h1.get_text()), f"{page.doc}: <h1> is {h1.get_text()!r}, the source's title is {title[0]!r}"
    head = page.soup.title.get_text() if page.soup.title else ""
    assert want in _plain(head) and CONFIG["title"] in head, f"{page.doc}: <title> is {head!r}"
    text = page.article.get_text(" ", strip=True)
    assert len(text) >= 200, f"{page.doc}: the article holds only {len(text)} characters"
    sections = _headings(page.markdown, 2)
    # MathJax has typeset the math in headings by now: compare the words around it.
    h2 = []
    for h in page.article.find_all("h2"):
        h = BeautifulSoup(str(h), "html.parser")
        for m in h.select("mjx-container, .math"):
            m.decompose()
        h2.append(_plain(h.get_text()))
    for heading in sections:
        words = _plain(re.sub(r"\$[^$]*\$", " ", heading))
        assert any(words in h for h in h2), f"{page.doc}: section {heading!r} is not on the page"
    missing = []
    for tag, attr in (("link", "href"), ("script", "src"), ("img", "src"), ("a", "href")):
        for el in page.soup.find_all(tag):
            ref = el.get(attr)
            target = page.local(ref) if ref else None
            if target is not None and not target.exists():
                missing.append(f"<{tag} {attr}={ref!r}>")
    assert not missing, f"{page.doc} refers to files the site lacks: " + ", ".join(sorted(set(missing)))
    ids = {el.get("id") for el in page.soup.find_all(id=True)}
    dangling = sorted({a["href"] for a in page.article.find_all("a", href=True)
                       if a["href"].startswith("#") and len(a["href"]) > 1 and a["href"][1:] not in ids})
    assert not dangling, f"{page.doc}: links to anchors not on the page: {dangling}"


def test_figures_are_present_and_not_empty(page):
    shown = {}
    for img in page.article.find_all("img"):
        src = img.get("src", "")
        assert src and not src.startswith("data:"), f"{page.doc}: an <img> with src {src[:40]!r}"
        path = page.local(src)
        assert path is not None, f"{page.doc}: the figure {src} is not a file of the site"
        assert path.exists(), f"{page.doc}: the figure {src} does not exist in the site"
        assert path.stat().st_size > 0, f"{page.doc}: the figure {src} is an empty file"
        width, height = _image_size(path)
        assert width > 0 and height > 0, f"{page.doc}: the figure {src} is {width}x{height}"
        shown[hashlib.sha256(path.read_bytes()).hexdigest()] = src
    figures = _shown_figures(page.source)
    imgs = page.article.find_all("img")
    assert len(imgs) >= len(figures), f"{page.doc}: the notebook stores {len(figures)} figures, the page shows {len(imgs)}"
    for n, (mime, data) in enumerate(figures, 1):
        if mime != "image/svg+xml":
            assert hashlib.sha256(data).hexdigest() in shown, f"{page.doc}: stored figure {n} ({mime}) is not on the page"
    directives = len(re.findall(r"\{(?:figure|image|glue:figure)\}|!\[[^\]]*\]\(", _prose(page.markdown)))
    assert len(imgs) >= len(figures) + directives, (
        f"{page.doc}: {len(figures)} figure outputs and {directives} figure directives, but {len(imgs)} images")


def test_no_traceback_or_stderr(page):
    text = page.soup.body.get_text(" ") if page.soup.body else ""
    assert "Traceback" not in text, f"{page.doc}: the page shows a traceback: ...{text[text.find('Traceback'):][:300]}"
    bad = []
    for el in page.soup.find_all(class_=True):
        classes = " ".join(el.get("class")).lower()
        if ("traceback" in classes or "stderr" in classes
                or re.search(r"\boutput\b.*\berror\b|\berror\b.*\boutput\b", classes)):
            bad.append(f"<{el.name} class={classes!r}>: {el.get_text(' ', strip=True)[:120]!r}")
    assert not bad, f"{page.doc} shows error/stderr output:\n" + "\n".join(bad)


def _github() -> tuple[str, str]:
    url = urllib.parse.urlsplit(CONFIG["repository"]["url"])
    assert url.netloc == "github.com", f"repository.url {CONFIG['repository']['url']} is not on GitHub"
    path = url.path.strip("/").removesuffix(".git")
    assert path.count("/") == 1, f"repository.url {CONFIG['repository']['url']} is not <org>/<repo>"
    return path, CONFIG["repository"]["branch"]


def test_launch_buttons(page):
    org_repo, branch = _github()
    hrefs = [a["href"] for a in page.soup.find_all("a", href=True)]
    colab = [h for h in hrefs if "colab.research.google.com" in h]
    binder = [h for h in hrefs if "mybinder.org" in h]
    repo_buttons = [a["href"] for a in page.soup.select("a.btn-source-repository-button[href]")]
    if CONFIG.get("html", {}).get("use_repository_button"):
        assert repo_buttons, f"{page.doc}: no repository button"
    for h in repo_buttons:
        assert h.rstrip("/") == CONFIG["repository"]["url"].rstrip("/"), f"{page.doc}: repository button -> {h}"
    if page.source.suffix != ".ipynb":
        assert not colab, f"{page.doc} is not a notebook, yet links to Colab: {colab}"
        for h in binder:
            assert page.source.relative_to(ROOT).as_posix() in urllib.parse.unquote(h), f"{page.doc}: Binder -> {h}"
        return
    path = page.source.relative_to(ROOT).as_posix()
    want_colab = f"https://colab.research.google.com/github/{org_repo}/blob/{branch}/{path}"
    assert colab, f"{page.doc}: no Colab launch button"
    assert set(colab) == {want_colab}, f"{page.doc}: Colab links {colab}, want {want_colab}"
    want_binder = f"https://mybinder.org/v2/gh/{org_repo}/{branch}?"
    assert binder, f"{page.doc}: no Binder launch button"
    for h in binder:
        assert h.startswith(want_binder), f"{page.doc}: Binder link {h} does not start with {want_binder}"
        query = urllib.parse.unquote(urllib.parse.urlsplit(h).query)
        assert re.search(rf"(^|[/=]){re.escape(path)}($|&)", query), f"{page.doc}: Binder link {h} does not open {path}"


def _mathjax_errors(soup) -> list[str]:
    """Every formula MathJax could not typeset: a TeX error (`merror`) or an undefined control
    sequence, which MathJax 3 shows as red text (its `noundefined` extension)."""
    errors = [(el.get("data-mjx-error") or el.get_text(" "))[:120]
              for el in soup.select("mjx-merror, [data-mjx-error]")]
    errors += ["undefined " + el.get_text()[:60] for el in soup.select('mtext[mathcolor="red"]')]
    return errors


def test_math_typeset(page):
    inline, display = _math_in(page.markdown)
    maths = page.article.select(".math")
    if inline:
        assert page.article.select("span.math"), f"{page.doc}: the source has inline math, the page none"
    if display:
        assert page.article.select("div.math"), f"{page.doc}: the source has display math, the page none"
    if inline or display or maths:
        srcs = [s.get("src", "") for s in page.soup.find_all("script")]
        local = [s for s in srcs if "mathjax" in s.lower() and page.local(s) is not None]
        assert local, f"{page.doc}: no MathJax script served from the site; scripts: {srcs}"
        assert all(page.local(s).exists() for s in local), f"{page.doc}: MathJax file missing: {local}"
    # After the scripts ran, every math element holds MathJax's output, and none is an error.
    untyped = [el.get_text()[:60] for el in maths if not el.find("mjx-container")]
    assert not untyped, f"{page.doc}: {len(untyped)} of {len(maths)} formulas not typeset, e.g. {untyped[:3]}"
    errors = _mathjax_errors(page.article)
    assert not errors, f"{page.doc}: MathJax errors: {errors[:5]}"
    # dollar math that reached the page unparsed
    for el in page.article.select("pre, code, .math, script, .highlight, mjx-container"):
        el.decompose()
    raw = re.findall(r"\$\$?[^$\n]*\\[A-Za-z]+[^$\n]*\$", page.article.get_text(" "))
    assert not raw, f"{page.doc}: unparsed $...$ math on the page: {raw[:3]}"


# ---------------------------------------------------------------- notebooks as Jupyter shows them

def _mathjax_js() -> pathlib.Path:
    """The packaged MathJax 3 that the site serves (sphinx-mathjax-offline)."""
    import importlib.util
    spec = importlib.util.find_spec("sphinx-mathjax-offline")
    assert spec and spec.origin, "sphinx-mathjax-offline is not installed"
    return pathlib.Path(spec.origin).parent / "static" / "mathjax" / "tex-chtml.js"


_MATH = re.compile(r"\$\$.+?\$\$|\\begin\{(\w+\*?)\}.+?\\end\{\1\}|\$[^$\n]+?\$"
                   r"|\\\(.+?\\\)|\\\[.+?\\\]", re.S)


def _jupyter_html(markdown: str) -> str:
    """A markdown cell as Jupyter renders it: math set aside, markdown to HTML, math put back.

    Like Jupyter's own renderer, math inside code (fenced blocks, backticks) stays code, and
    everything else between $ $, $$ $$, \\( \\), \\[ \\] or \\begin{..}\\end{..} goes to MathJax.
    """
    from markdown_it import MarkdownIt
    import html as html_lib
    stash: list[str] = []
    out, pos = [], 0
    # Leave fenced code and inline code alone, protect math everywhere else.
    code = re.compile(r"^(`{3,}|~{3,}).*?^\1\s*$|`[^`\n]+`", re.S | re.M)
    for m in code.finditer(markdown):
        out.append(_MATH.sub(lambda k: stash.append(k.group(0)) or f"@@{len(stash) - 1}@@",
                             markdown[pos:m.start()]))
        out.append(m.group(0))
        pos = m.end()
    out.append(_MATH.sub(lambda k: stash.append(k.group(0)) or f"@@{len(stash) - 1}@@", markdown[pos:]))
    rendered = MarkdownIt("commonmark").enable("table").render("".join(out))
    return re.sub(r"@@(\d+)@@", lambda k: html_lib.escape(stash[int(k.group(1))]), rendered)


NOTEBOOKS = sorted((ROOT / "chapters").glob("*.ipynb"))


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_math_renders_in_plain_jupyter(nb_path, chromium, tmp_path):
    cells = json.loads(nb_path.read_text())["cells"]
    body = "\n".join(f'<div class="cell">{_jupyter_html("".join(c["source"]))}</div>'
                     for c in cells if c["cell_type"] == "markdown")
    page = tmp_path / "notebook.html"
    page.write_text(f"""<!DOCTYPE html><html><head><meta charset="utf-8">
<script>window.MathJax = {{tex: {{inlineMath: [["$", "$"], ["\\\\(", "\\\\)"]],
  displayMath: [["$$", "$$"], ["\\\\[", "\\\\]"]], processEscapes: true,
  processEnvironments: true}}}};</script>
<script defer src="{_mathjax_js().as_uri()}"></script></head><body>{body}</body></html>""")
    with tempfile.TemporaryDirectory(prefix="chromium-profile-", ignore_cleanup_errors=True) as profile:
        proc = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                               "--dump-dom", page.as_uri()],
                              capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S)
    soup = BeautifulSoup(proc.stdout[proc.stdout.find("<"):], "html.parser")
    typeset = soup.select("mjx-container")
    assert typeset, f"{nb_path.name}: MathJax typeset nothing (rc={proc.returncode})"
    errors = _mathjax_errors(soup)
    assert not errors, f"{nb_path.name}: {len(errors)} formulas fail in plain Jupyter, e.g. {errors[:5]}"


def test_screenshot(page, capsys):
    data = page.shot.read_bytes() if page.shot.exists() else b""
    assert data, f"{page.doc}: Chromium saved no screenshot at {page.shot}"
    assert _image_size(page.shot) == WINDOW, f"{page.doc}: screenshot is {_image_size(page.shot)}, want {WINDOW}"
    with capsys.disabled():
        print(f"\n    screenshot: {page.shot}")
