"""Results of analyses as small frozen dataclasses (also readable by key, as dicts were)."""

from __future__ import annotations

from dataclasses import fields

__all__ = ["_Record"]


class _Record:
    """Attribute access, plus ``record["name"]`` for code written when these were dicts."""

    def __getitem__(self, name: str):
        if name not in self.keys():
            raise KeyError(name)
        return getattr(self, name)

    def keys(self) -> list[str]:
        return [f.name for f in fields(self)]

    def get(self, name: str, default=None):
        return getattr(self, name, default) if name in self.keys() else default

    def __contains__(self, name: object) -> bool:
        return name in self.keys() and getattr(self, str(name)) is not None

