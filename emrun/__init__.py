"""emrun: reproduce published experiments on EM and gradient descent for mixture models.

``emrun.load_results(folder)`` and ``emrun.load_traces(folder)`` read a results folder as tidy
tables. Plug-ins register algorithms, model families, init schemes, claims and experiment kinds
through :mod:`emrun.plugins`.
"""

from emrun import env as _env

_env.kernel_cache()  # before numba is imported: compiled kernels are cached outside the source tree

__version__ = "0.2.0"
__all__ = ["load_results", "load_traces", "__version__"]


def __getattr__(name: str):
    # Lazy, so that importing emrun (or emrun.cli) can set thread limits before numpy is loaded.
    if name in ("load_results", "load_traces"):
        from emrun import results

        return getattr(results, name)
    raise AttributeError(f"module 'emrun' has no attribute {name!r}")
