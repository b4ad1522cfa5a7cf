"""torchreid dataset classes of an engine, built and registered on first use.

An engine's dataset classes subclass torchreid's ``ImageDataset``, so building them loads
torchreid; :class:`LazyDatasets` builds them only when they are registered or looked up by class
name (which pickled dataset instances in spawned DataLoader workers need), so importing the
engine's readers stays light. Registration is idempotent.
"""
from __future__ import annotations

from typing import Callable, Iterable


class LazyDatasets:
    """``{torchreid name: class}`` built once by ``build``.

    Args:
        build: returns the classes by the names ``-s/-t`` take.
        class_names: the classes' ``__name__``s, so :meth:`by_class_name` can refuse anything
            else without building (and without loading torchreid).
    """

    def __init__(self, build: Callable[[], dict[str, type]], class_names: Iterable[str]) -> None:
        self._build = build
        self._classes: dict[str, type] = {}
        self.class_names = frozenset(class_names)

    def classes(self) -> dict[str, type]:
        """The classes, built on the first call."""
        if not self._classes:
            self._classes.update(self._build())
        return self._classes

    def by_class_name(self, module: str, name: str) -> type:
        """A class by its ``__name__`` (a module-level ``__getattr__`` of ``module``).

        Raises:
            AttributeError: for any other name, as a module would.
        """
        if name in self.class_names:
            for cls in self.classes().values():
                if cls.__name__ == name:
                    return cls
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    def register(self) -> list[str]:
        """Registers every class with torchreid (idempotent); returns the names."""
        from .._torchreid import register_image_dataset

        for name, cls in self.classes().items():
            register_image_dataset(name, cls)
        return list(self.classes())
