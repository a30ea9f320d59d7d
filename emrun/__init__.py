"""emrun: reproduce published experiments on EM and gradient descent for mixture models."""

__all__ = ["load_results", "load_traces"]


def __getattr__(name: str):
    # Lazy, so that importing emrun.cli can set thread limits before numpy is loaded.
    if name in __all__:
        from emrun import store

        return getattr(store, name)
    raise AttributeError(f"module 'emrun' has no attribute {name!r}")
