"""The portability harness (`make portability`): re-run the chapters under perturbations that
change floating-point rounding but not the mathematics, and list every stored output that moves.

A stored output is a claim about mathematics, so it must not depend on which CPU, how many
threads, which BLAS kernel or which allowed JAX version computed it. Each perturbation below runs
``pytest --nbval`` over the chapters in a fresh process with its own environment; any cell whose
output differs from the stored one is reported, and the harness exits non-zero.

Perturbations (``--only`` picks a subset, ``--list`` prints them):

* ``sse42`` and ``avx2``: XLA:CPU limited to an older instruction set, which changes how
  reductions and matrix products are vectorised (``--xla_cpu_max_isa``);
* ``threads1``: one compute thread for XLA, Eigen and OpenBLAS, pinned to one core, against the
  several threads of a normal run (reductions split differently);
* ``openblas``: NumPy's OpenBLAS forced onto its oldest generic x86-64 kernel
  (``OPENBLAS_CORETYPE=Prescott``);
* ``oldest``: the oldest JAX, jaxlib, Flax and Optax that ``pyproject.toml`` allows, in a separate
  environment (``.venv-oldest``) built from ``requirements.txt`` with those four replaced by the
  lower bounds of ``pyproject.toml``. Building it checks that the lower bounds are true;
* ``gpu``: ``JAX_PLATFORMS=cuda``, only where a GPU is present (``--only gpu``).

Any other perturbation that changes rounding only (another machine, another BLAS, a GPU) should
pass too: the chapters print rounded claims, bounds and booleans, never round-off.

Perturbations joined by ``+`` run together in one pass: ``sse42+threads1+openblas`` changes the
instruction set, the thread count and the BLAS kernel at once (their environments are merged,
XLA flags appended). CI runs two such passes, ``sse42+threads1+openblas`` and ``oldest+avx2``,
which cover every perturbation in the time of two (``make portability-ci``).

Usage:
    python tests/portability.py [chapters/NN_x.ipynb ...] [--only sse42,avx2+oldest] [--list]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import subprocess
import sys
import time
import tomllib
import xml.etree.ElementTree as ET

ROOT = pathlib.Path(__file__).resolve().parents[1]
OLDEST = ROOT / ".venv-oldest"
# The packages whose oldest allowed version the `oldest` perturbation installs.
OLDEST_PACKAGES = ("jax", "jaxlib", "flax", "optax")


def _xla(flag: str) -> dict[str, str]:
    """Append an XLA flag to whatever XLA_FLAGS the caller already set."""
    return {"XLA_FLAGS": (os.environ.get("XLA_FLAGS", "") + " " + flag).strip()}


ONE_THREAD = {
    **_xla("--xla_cpu_multi_thread_eigen=false"),
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}

PERTURBATIONS: dict[str, tuple[str, dict[str, str]]] = {
    "sse42": ("XLA:CPU limited to SSE4.2", _xla("--xla_cpu_max_isa=SSE4_2")),
    "avx2": ("XLA:CPU limited to AVX2", _xla("--xla_cpu_max_isa=AVX2")),
    "threads1": ("one compute thread on one core", ONE_THREAD),
    "openblas": ("NumPy's OpenBLAS on its generic kernel",
                 {"OPENBLAS_CORETYPE": "Prescott"}),
    "oldest": ("oldest JAX/jaxlib/Flax/Optax that pyproject.toml allows", {}),
    "gpu": ("JAX on the GPU (where one is present)", {"JAX_PLATFORMS": "cuda"}),
}
DEFAULT = ("sse42", "avx2", "threads1", "openblas", "oldest")


def lower_bounds() -> dict[str, str]:
    """The ``>=`` lower bounds of ``pyproject.toml`` for the packages the harness downgrades."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    bounds = {}
    for dep in deps:
        m = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)\s*>=\s*([0-9][^,;\s]*)\s*", dep)
        if m and m.group(1).lower() in OLDEST_PACKAGES:
            bounds[m.group(1).lower()] = m.group(2)
    # jaxlib is not a direct dependency: the oldest jax goes with the jaxlib of its version.
    if "jax" in bounds:
        bounds.setdefault("jaxlib", bounds["jax"])
    missing = set(OLDEST_PACKAGES) - set(bounds)
    if missing:
        raise SystemExit(f"pyproject.toml has no '>=' lower bound for {sorted(missing)}")
    return bounds


def oldest_python() -> pathlib.Path:
    """Build (or reuse) .venv-oldest: requirements.txt pins, with the lower bounds swapped in."""
    bounds = lower_bounds()
    want = "\n".join(f"{k}=={v}" for k, v in sorted(bounds.items()))
    stamp = OLDEST / ".oldest-stamp"
    reqs = (ROOT / "requirements.txt").read_text()
    key = want + "\n---\n" + reqs
    py = OLDEST / "bin" / "python"
    if stamp.exists() and stamp.read_text() == key and py.exists():
        return py
    print(f"building {OLDEST.name} with {', '.join(want.splitlines())}", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(OLDEST)], check=True)
    kept = [line for line in reqs.splitlines()
            if line.strip() and not line.startswith("#")
            and re.split(r"[=<>!~ ]", line, 1)[0].lower() not in OLDEST_PACKAGES]
    constraints = OLDEST / "requirements-oldest.txt"
    constraints.write_text("\n".join(kept + want.splitlines()) + "\n")
    pip = [str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run(pip + ["-r", str(constraints)], check=True)
    subprocess.run(pip + ["--no-deps", "--no-build-isolation", "-e", str(ROOT)], check=True)
    got = subprocess.run([str(py), "-c", "import jax, jaxlib, flax, optax; print(jax.__version__, "
                          "jaxlib.__version__, flax.__version__, optax.__version__)"],
                         check=True, capture_output=True, text=True).stdout.split()
    expect = [bounds[k] for k in OLDEST_PACKAGES]
    if got != expect:
        raise SystemExit(f"{OLDEST.name} holds {got}, not the lower bounds {expect}")
    stamp.write_text(key)
    return py


def _failures(junit: pathlib.Path) -> list[tuple[str, str]]:
    """(test id, first lines of the difference) for every failed or errored nbval item."""
    out = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        for bad in list(case.findall("failure")) + list(case.findall("error")):
            text = (bad.get("message") or "") + "\n" + (bad.text or "")
            lines = [ln for ln in text.splitlines() if ln.strip()]
            diff = [ln for ln in lines if ln.lstrip().startswith(("-", "+"))
                    and not ln.lstrip().startswith(("---", "+++"))]
            out.append((f"{case.get('classname', '')}::{case.get('name', '')}",
                        "\n".join((diff or lines)[:6])))
    return out


def combined_env(name: str) -> tuple[str, dict[str, str]]:
    """The label and environment of ``name``, one perturbation or several joined by ``+``."""
    parts = name.split("+")
    isas = [p for p in parts if p in ("sse42", "avx2")]
    if len(isas) > 1:
        raise SystemExit(f"error: {name!r} combines two instruction-set limits ({isas}); "
                         "XLA keeps only the last, so run them separately")
    caller = os.environ.get("XLA_FLAGS", "")  # each XLA_FLAGS entry starts with these
    env: dict[str, str] = {}
    flags = []
    for part in parts:
        for k, v in PERTURBATIONS[part][1].items():
            if k == "XLA_FLAGS":
                flags.append(v[len(caller):].strip())
            else:
                env[k] = v
    if flags:
        env["XLA_FLAGS"] = " ".join([caller, *flags]).strip()
    return " + ".join(PERTURBATIONS[p][0] for p in parts), env


def run_one(name: str, chapters: list[str], python: pathlib.Path) -> tuple[list, float, int]:
    label, env_extra = combined_env(name)
    env = {**os.environ, **env_extra}
    env.setdefault("JAX_PLATFORMS", "cpu")
    env.setdefault("PYTHONHASHSEED", "0")
    junit = ROOT / f".portability-{name.replace('+', '-')}.xml"
    cmd = [str(python), "-m", "pytest", "--nbval", "-q", "-p", "no:cacheprovider",
           f"--junitxml={junit}", *chapters]
    if "threads1" in name.split("+") and sys.platform.startswith("linux"):
        cmd = ["taskset", "-c", "0", *cmd]
    print(f"\n== {name}: {label}", flush=True)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    tail = [ln for ln in proc.stdout.splitlines() if ln.strip()][-1:]
    print(f"   {' '.join(tail)}  ({elapsed:.0f} s)", flush=True)
    failures = _failures(junit) if junit.exists() else [("(pytest)", proc.stdout[-2000:])]
    junit.unlink(missing_ok=True)
    return failures, elapsed, proc.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("chapters", nargs="*", help="notebooks (default: chapters/*.ipynb)")
    parser.add_argument("--only", default=",".join(DEFAULT),
                        help="comma-separated perturbations, each one name or several joined "
                             "by '+' to run together (default: %(default)s)")
    parser.add_argument("--list", action="store_true", help="list the perturbations and exit")
    args = parser.parse_args(argv)
    if args.list:
        for k, (label, env) in PERTURBATIONS.items():
            print(f"{k:9s} {label}  {env or ''}")
        return 0
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [p for n in names for p in n.split("+") if p not in PERTURBATIONS]
    if unknown:
        print(f"error: unknown perturbation(s) {unknown}; choose from {list(PERTURBATIONS)}",
              file=sys.stderr)
        return 2
    chapters = args.chapters or sorted(str(p.relative_to(ROOT))
                                       for p in (ROOT / "chapters").glob("*.ipynb"))
    report = []
    for name in names:
        python = oldest_python() if "oldest" in name.split("+") else pathlib.Path(sys.executable)
        failures, elapsed, rc = run_one(name, chapters, python)
        if rc not in (0, 1) and not failures:
            failures = [("(pytest)", f"exit status {rc}")]
        report.append((name, failures, elapsed))
    print("\nPortability report (stored outputs that changed under each perturbation):")
    bad = 0
    for name, failures, elapsed in report:
        print(f"  {name:9s} {len(failures):3d} changed  ({elapsed:.0f} s)")
        for test_id, diff in failures:
            bad += 1
            print(f"      {test_id}")
            for ln in diff.splitlines():
                print(f"          {ln}")
    print(f"{'FAILED' if bad else 'OK'}: {bad} changed output(s) over {len(report)} "
          f"perturbation(s) and {len(chapters)} chapter(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
