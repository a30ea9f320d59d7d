"""Projected heavy-ball GD (Polyak's momentum) as an emrun plug-in: one file, no edit to emrun.

Each iteration takes a gradient step plus a multiple of the last move, then the family's projection
(weights onto the simplex; for Bernoulli mixtures, means clipped to [0, 1]):

    x(t+1) = P( x(t) - step * grad l(x(t)) + momentum * (x(t) - x(t-1)) ),   x(-1) = x(0).

With momentum 0 it is emrun's projected GD, step for step. It runs on every family that offers
gradients (both built-in ones), in emrun's batched numpy loop; the grid can vary ``step`` and
``momentum`` like any hyperparameter.
"""

from emrun.plugins import register_algorithm


class HeavyBall:
    name = "heavy_ball"
    requires = "gradient"  # the family must offer gradient() and project()
    hyperparameters = {"step": 0.02, "momentum": 0.5}
    stopping = {"max_iter": 10000, "tol": 1.0e-7}  # GD's rule in the paper

    def start(self, problem, pi, mu, params):
        """The previous point of every trial: at the start, the start itself (no move yet)."""
        return {"previous_pi": pi.copy(), "previous_mu": mu.copy()}

    def update(self, problem, pi, mu, state, params):
        grad_pi, grad_mu, loss = problem.gradient(pi, mu)
        step, momentum = params["step"], params["momentum"]
        new_pi, new_mu = problem.project(pi - step * grad_pi + momentum * (pi - state["previous_pi"]),
                                         mu - step * grad_mu + momentum * (mu - state["previous_mu"]))
        return new_pi, new_mu, loss, {"previous_pi": pi, "previous_mu": mu}


register_algorithm(HeavyBall())
