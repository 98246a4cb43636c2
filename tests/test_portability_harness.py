"""The portability harness's combined perturbations (tests/portability.py), without running it."""

import importlib.util
import pathlib

import pytest

_spec = importlib.util.spec_from_file_location(
    "portability", pathlib.Path(__file__).with_name("portability.py"))
portability = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(portability)


def test_a_combined_pass_carries_every_part_of_its_environment():
    label, env = portability.combined_env("sse42+threads1+openblas")
    flags = env["XLA_FLAGS"].split()
    # both XLA settings survive, as separate flags (not glued together)
    assert "--xla_cpu_max_isa=SSE4_2" in flags
    assert "--xla_cpu_multi_thread_eigen=false" in flags
    assert env["OPENBLAS_CORETYPE"] == "Prescott" and env["OMP_NUM_THREADS"] == "1"
    assert label.count("+") == 2


def test_one_perturbation_is_its_own_environment():
    assert portability.combined_env("avx2")[1] == portability.PERTURBATIONS["avx2"][1]


def test_two_instruction_set_limits_are_refused():
    # XLA keeps only the last --xla_cpu_max_isa, so "sse42+avx2" would silently test AVX2 alone
    with pytest.raises(SystemExit, match="instruction-set"):
        portability.combined_env("sse42+avx2")
