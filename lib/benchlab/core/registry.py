"""A small name -> object registry with duplicate errors and "did you mean" on a failed lookup."""

import difflib
from collections.abc import Callable, Iterator

from .errors import BenchlabError


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, object] = {}

    def add(self, name: str, obj: object) -> object:
        if name in self._items:
            raise BenchlabError(f"{self.kind} {name!r} is registered twice")
        self._items[name] = obj
        return obj

    def register(self, name: str) -> Callable:
        """Decorator form: `@MODELS.register("opt-tiny")`."""
        return lambda obj: self.add(name, obj)

    def get(self, name: str):
        try:
            return self._items[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._items, n=3)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            known = ", ".join(sorted(self._items))
            raise BenchlabError(f"unknown {self.kind} {name!r}{hint} (known: {known})") from None

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def items(self):
        return self._items.items()
