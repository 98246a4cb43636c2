"""Book-level checks: the table of contents, and each chapter notebook as a document."""

from __future__ import annotations

import json
import pathlib
import re

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
MIN_CHECKED = 10  # any chapter
# Chapters 1-5 keep at least the checked cells they had when issue 8 counted them.
MIN_CHECKED_BY_CHAPTER = {"01": 20, "02": 18, "03": 16, "04": 11, "05": 20}


def _toc_files():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        for ch in part.get("chapters", []):
            files.append(ch["file"])
            files += [s["file"] for s in ch.get("sections", [])]
    return files


def _is_ignored(cell) -> bool:
    src = "".join(cell.get("source", ""))
    tags = cell.get("metadata", {}).get("tags", [])
    return any(m in src for m in ("NBVAL_IGNORE_OUTPUT", "NBVAL_SKIP")) or any(
        t in tags for t in ("nbval-ignore-output", "nbval-skip"))


def _load(nb_path):
    return json.loads(nb_path.read_text())


def test_toc_and_chapter_files_agree():
    listed = _toc_files()
    for f in listed:
        matches = list(ROOT.glob(f + ".*")) if not pathlib.Path(f).suffix else [ROOT / f]
        assert any(m.suffix in (".md", ".ipynb") for m in matches), f"_toc.yml lists {f}, which does not exist"
    listed_nbs = {f for f in listed if (ROOT / (f + ".ipynb")).exists()}
    for nb in CHAPTERS:
        assert str(nb.relative_to(ROOT).with_suffix("")) in listed_nbs, f"{nb.name} is not in _toc.yml"


@pytest.mark.parametrize("nb_path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_is_a_clean_executed_document(nb_path):
    nb = _load(nb_path)
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    counts = [c["execution_count"] for c in code]
    assert all(isinstance(n, int) for n in counts), "every code cell must have been executed"
    assert counts == list(range(1, len(code) + 1)), "cells must be executed once, in order, from a fresh kernel"
    address = re.compile(r"\b0x[0-9a-f]{6,}\b")
    machine_path = re.compile(r"(/work/|/home/|/root/|/tmp/|/Users/|[A-Z]:\\\\)")
    for c in code:
        for out in c.get("outputs", []):
            assert out["output_type"] != "error", f"stored error in cell: {''.join(c['source'])[:80]}"
            text = json.dumps({k: v for k, v in out.get("data", {}).items() if not k.startswith("image/")}) + "".join(out.get("text", ""))
            assert "Traceback" not in text
            assert not address.search(text), f"memory address in an output of: {''.join(c['source'])[:80]}"
            assert not machine_path.search(text), f"machine path in an output of: {''.join(c['source'])[:80]}"
            if out["output_type"] == "stream":
                assert out["name"] != "stderr", f"stored stderr (not compared by nbval) in: {''.join(c['source'])[:80]}"


@pytest.mark.parametrize("nb_path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_keeps_enough_checked_outputs(nb_path):
    code = [c for c in _load(nb_path)["cells"] if c["cell_type"] == "code"]
    checked = [c for c in code if c.get("outputs") and not _is_ignored(c)
               and any(o["output_type"] in ("stream", "execute_result", "display_data") for o in c["outputs"])]
    floor = MIN_CHECKED_BY_CHAPTER.get(nb_path.name[:2], MIN_CHECKED)
    assert len(checked) >= floor, f"{nb_path.name} has only {len(checked)} checked code cells (at least {floor})"


@pytest.mark.parametrize("nb_path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_has_goals_exercises_and_summary(nb_path):
    text = "\n".join("".join(c["source"]) for c in _load(nb_path)["cells"] if c["cell_type"] == "markdown"
                     and "remove-cell" not in c.get("metadata", {}).get("tags", []))
    assert text.lstrip().startswith("# "), "a chapter opens with its title"
    assert "What you will learn" in text
    assert "```{exercise}" in text or "````{exercise}" in text
    assert "{solution}" in text
    assert re.search(r"^## Summary", text, re.M)


@pytest.mark.parametrize("nb_path", CHAPTERS, ids=lambda p: p.name)
def test_every_figure_has_a_caption(nb_path):
    for c in _load(nb_path)["cells"]:
        if c["cell_type"] != "code" or _is_ignored(c):
            continue
        if any("image/png" in o.get("data", {}) for o in c.get("outputs", [])):
            caption = c.get("metadata", {}).get("mystnb", {}).get("figure", {}).get("caption", "")
            assert caption.strip(), f"figure without a caption in: {''.join(c['source'])[:80]}"


# The widest code line the site's content column shows without cutting it off: with the code
# font of _static/custom.css, a 1280-pixel window shows 89 columns of a ruler line in a code
# cell (checked on a headless-Chromium screenshot; the theme's own font showed 79).
MAX_CODE_COLUMNS = 88


@pytest.mark.parametrize("nb_path", CHAPTERS, ids=lambda p: p.name)
def test_code_cells_fit_the_page(nb_path):
    long = [(line[:40] + "...", len(line))
            for c in _load(nb_path)["cells"] if c["cell_type"] == "code"
            for line in "".join(c["source"]).splitlines() if len(line) > MAX_CODE_COLUMNS]
    assert not long, f"{nb_path.name}: {len(long)} code lines wider than {MAX_CODE_COLUMNS}: {long[:3]}"
