"""emrun: reproduce published experiments on EM and gradient descent for mixture models."""

__all__ = ["load_results"]


def __getattr__(name: str):
    # Lazy, so that importing emrun.cli can set thread limits before numpy is loaded.
    if name == "load_results":
        from emrun.store import load_results

        return load_results
    raise AttributeError(f"module 'emrun' has no attribute {name!r}")
