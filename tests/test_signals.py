"""Stopping a sweep by signal (issue 30): Ctrl-C inside the compiled kernel with one worker,
SIGTERM and SIGHUP like Ctrl-C, exit status 128 + the signal everywhere, and the kernel run in
chunks that change no result. The sweeps drive the real CLI, signalled from outside as a terminal
or a scheduler would."""

import numpy as np
import pytest

from emrun.models import bernoulli as b
from tests.test_bernoulli import random_problem


def _run(data, pi, mu, algorithm, max_iter, tol, chunk, step=None, em_update="simultaneous", boundary="exact"):
    from emrun.algorithms import Problem

    problem = Problem(b, data, em_update, boundary)
    return b.KERNEL.run(problem, pi, mu, algorithm, {"step": step}, max_iter, tol, chunk=chunk)


@pytest.mark.parametrize("algorithm,step,em_update,boundary,tol", [
    ("em", None, "simultaneous", "exact", 1e-4), ("em", None, "ecm", "exact", 1e-4),
    ("em", None, "authors", "exact", 1e-4), ("gd", 0.5, "simultaneous", "exact", 1e-5),
    ("gd", 0.5, "simultaneous", "as_published", 1e-5)])
@pytest.mark.parametrize("samples", [0, 300])
def test_the_kernel_run_in_chunks_gives_the_bits_of_one_long_call(algorithm, step, em_update, boundary, tol, samples):
    data, pi, mu = random_problem(3, 4, 12, 17, samples)
    whole = _run(data, pi, mu, algorithm, 300, tol, 300, step, em_update, boundary)
    statuses = set(whole[3])
    # Trials converge (or diverge) in the middle of chunks and others are capped: lanes are handed over.
    assert "capped" in statuses and len(statuses) > 1, statuses
    for chunk in (1, 7, 64):
        parts = _run(data, pi, mu, algorithm, 300, tol, chunk, step, em_update, boundary)
        for got, expected in zip(parts, whole, strict=True):
            np.testing.assert_array_equal(got, expected)


def test_a_loss_increase_is_counted_across_a_chunk_boundary():
    # The start of tests/test_bernoulli.py's authors' EM whose loss rises at its second iteration:
    # with one iteration per call, the comparison is with the loss the call before returned.
    data = b.PatternSet(np.array([[0.0, 0.0, 1.0], [1.0, 1.0, 1.0]]), np.array([0.2, 0.8]))
    pi = np.array([[0.0320955453110559, 9.999990017533518e-07, 0.9653095962101699, 0.0025938584797725157]])
    mu = np.array([[[0.0001, 0.9681080178649106, 0.0001], [0.9913450107715981, 0.8213514866226732, 0.9999],
                    [0.7241389817373795, 0.9909490766809207, 0.9999],
                    [0.9333275181826143, 0.9970427034351972, 0.9017455488400362]]])
    whole, parts = (_run(data, pi, mu, "em", 500, 1e-12, chunk, em_update="authors") for chunk in (500, 1))
    assert list(whole[5]) == list(parts[5]) == [1]
    for got, expected in zip(parts, whole, strict=True):
        np.testing.assert_array_equal(got, expected)


def test_the_default_chunk_is_bounded_work_and_at_least_one_iteration():
    from emrun.models.bernoulli_chunks import CHUNK_WORK, chunk_iterations

    assert chunk_iterations(1, 4, 2, 2, 1) == CHUNK_WORK // 16
    assert chunk_iterations(10_000, 65_536, 5, 16, 6) == 1
