"""Sites: which activation a transplant reads at the source layer and writes at the target layer.

A light module (no torch), so that the CLI can check a ``--site`` before loading a model.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from xtl.errors import SiteError

__all__ = ["SITES", "SOURCE_HOOKS", "Site"]

SITES: dict[str, str] = {
    "attn": "blocks.{layer}.hook_attn_out",
    "attn-authors": "blocks.{layer}.hook_attn_out",
    "mlp": "blocks.{layer}.hook_mlp_out",
    "block": "blocks.{layer}.hook_resid_post",
    "heads": "blocks.{layer}.attn.hook_z",
}
"""Site name -> TransformerLens hook written at the target layer. For Gemma, ``attn``/``mlp``
are *after* the post-sublayer RMSNorm, i.e. exactly the tensor added to the residual stream."""

SOURCE_HOOKS: dict[str, str] = {"attn-authors": "blocks.{layer}.hook_resid_mid"}
"""Sites whose captured activation comes from another hook than the one they write.

``attn-authors`` reproduces the authors' released attention wrapper: the stored attention
output is later changed in place by the residual add, so what they transplant is the source's
residual stream after attention (``h_s + a_s``), written over the target's attention output
(the target's own residual is then added: ``h_t + h_s + a_s``)."""


@dataclass(frozen=True)
class Site:
    """Which activation is transplanted: ``attn``, ``mlp``, ``block``, a set of ``heads``, or
    ``attn-authors`` (the authors' released attention variant, see :data:`SOURCE_HOOKS`)."""

    kind: str
    heads: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.kind not in SITES:
            close = difflib.get_close_matches(str(self.kind).lower(), list(SITES), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise SiteError(f"unknown site {self.kind!r}; use one of {', '.join(SITES)}.{hint}")
        if self.kind == "heads" and not self.heads:
            raise SiteError("site 'heads' needs head indices, e.g. Site('heads', (0, 3)) or 'heads:0,3'")
        if self.kind != "heads" and self.heads:
            raise SiteError(f"head indices only apply to site 'heads', not {self.kind!r}")

    @classmethod
    def parse(cls, spec: "str | Site") -> "Site":
        """``"mlp"`` -> Site('mlp'); ``"heads:0,3"`` -> Site('heads', (0, 3))."""
        if isinstance(spec, Site):
            return spec
        kind, _, heads = str(spec).partition(":")
        if kind == "heads" and heads:
            try:
                return cls("heads", tuple(int(h) for h in heads.split(",")))
            except ValueError as exc:
                raise SiteError(f"bad head list {heads!r}; write e.g. heads:0,3") from exc
        return cls(kind)

    def hook_name(self, layer: int) -> str:
        """The hook written at target layer ``layer``."""
        return SITES[self.kind].format(layer=layer)

    def source_hook_name(self, layer: int) -> str:
        """The hook read at source layer ``layer`` (the written one, except for ``attn-authors``)."""
        return SOURCE_HOOKS.get(self.kind, SITES[self.kind]).format(layer=layer)

    @property
    def target_kind(self) -> str:
        """What the site replaces at the target: ``attn-authors`` writes the attention output."""
        return "attn" if self.kind == "attn-authors" else self.kind

    def __str__(self) -> str:
        return self.kind if self.heads is None else f"heads:{','.join(map(str, self.heads))}"


