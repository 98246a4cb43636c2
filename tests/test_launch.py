"""The ways a reader launches a chapter: Colab (first cell) and Binder (binder/)."""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
REPO_URL = CONFIG["repository"]["url"].rstrip("/")
BRANCH = CONFIG["repository"]["branch"]


def _pins(path: pathlib.Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        assert sep, f"{path.name}: '{line}' is not an exact pin"
        pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def _first_code_cell(nb_path):
    nb = json.loads(nb_path.read_text())
    return next(c for c in nb["cells"] if c["cell_type"] == "code")


def test_repository_is_configured_once():
    assert REPO_URL.startswith("https://github.com/") and BRANCH == "main"
    assert CONFIG["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert CONFIG["launch_buttons"]["binderhub_url"] == "https://mybinder.org"


@pytest.mark.parametrize("nb_path", CHAPTERS, ids=lambda p: p.name)
def test_first_code_cell_installs_ddpm_lib_only_on_colab(nb_path):
    cell = _first_code_cell(nb_path)
    src = "".join(cell["source"])
    assert 'if "google.colab" in sys.modules:' in src, "the install must be guarded"
    install = f"git+{REPO_URL}@{BRANCH}"
    assert install in src, f"the cell must install {install} (the repository in _config.yml)"
    assert "-e" not in re.findall(r'"(-\S+)"', src) and "--editable" not in src, "Colab needs a non-editable install"
    assert cell["outputs"] == [], "locally the cell prints nothing, so its stored output is empty"
    # Run it here, with subprocess.run replaced: outside Colab it must not install anything.
    probe = (
        "import subprocess, sys\n"
        "subprocess.run = lambda *a, **k: (_ for _ in ()).throw(SystemExit('tried to install'))\n"
        + src
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout == "", result.stderr or result.stdout


def test_binder_installs_the_pinned_requirements_and_ddpm_lib():
    binder = ROOT / "binder"
    assert _pins(binder / "requirements.txt") == _pins(ROOT / "requirements.txt")
    post = (binder / "postBuild").read_text()
    assert post.startswith("#!") and "set -e" in post and re.search(r"pip install (--no-deps )?\.$", post, re.M)
    assert (binder / "postBuild").stat().st_mode & 0o111, "postBuild must be executable"
    runtime = (binder / "runtime.txt").read_text().strip()
    want = ".".join((ROOT / ".python-version").read_text().strip().split(".")[:2])
    assert runtime == f"python-{want}"


def test_package_metadata_uses_lower_bounds_only():
    text = (ROOT / "pyproject.toml").read_text()
    deps = re.search(r"dependencies = \[(.*?)\]", text, re.S).group(1)
    for dep in re.findall(r'"([^"]+)"', deps):
        assert "==" not in dep and "[" not in dep, f"{dep}: Colab needs loose lower bounds, no pins or extras"


def test_readme_badges_point_at_the_configured_repository():
    readme = (ROOT / "README.md").read_text()
    slug = REPO_URL.removeprefix("https://github.com/")
    first = CHAPTERS[0].relative_to(ROOT).as_posix()
    assert f"https://colab.research.google.com/github/{slug}/blob/{BRANCH}/{first}" in readme
    assert f"https://mybinder.org/v2/gh/{slug}/{BRANCH}?urlpath=tree/{first}" in readme
