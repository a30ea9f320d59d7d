"""Jin, Zhang, Balakrishnan, Wainwright & Jordan (NeurIPS 2016) as an emrun plug-in: the paper's
random initialisation and its EM, on emrun's Gaussian family (identity covariances) with its truth
options (equal weights, separated means: see jin2016.yaml). One file, no edit to emrun.

- Init scheme ``from_mixture``: each run's M centres are M points drawn i.i.d. from the true
  mixture (``ctx.truth``, pi [M] and mu [M, D]), each from the run's own generator; the weights
  are 1/M, as the paper's model knows them.
- Algorithm ``em_means``: EM on the means only, the weights held where they started (1/M). The
  family's EM step gives the new means mu_c = E[gamma_c x] / E[gamma_c], which do not depend on
  the weights' update; its new weights are dropped.
"""

import numpy as np

from emrun.plugins import register_algorithm, register_init_scheme


def from_mixture(ctx):
    """pi [R, M] = 1/M; mu [R, M, D]: M i.i.d. draws from the batch's true mixture per run."""
    pi = np.full((ctx.runs, ctx.m), 1.0 / ctx.m)
    mu = np.array([ctx.family.sample(ctx.truth.pi, ctx.truth.mu, ctx.m, rng).points for rng in ctx.generators])
    return pi, mu


from_mixture.families = ("gaussian",)  # it samples the family's mixture
register_init_scheme("from_mixture", from_mixture)


class MeansOnlyEM:
    name = "em_means"
    requires = "em"  # the family's em_step
    hyperparameters: dict = {}
    stopping = {"max_iter": 2000, "tol": 1.0e-6}

    def start(self, problem, pi, mu, params):
        return {}

    def update(self, problem, pi, mu, state, params):
        _, new_mu, loss = problem.em_step(pi, mu)
        return pi, new_mu, loss, state


register_algorithm(MeansOnlyEM())
