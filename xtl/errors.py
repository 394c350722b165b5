"""One exception family: every error a user can cause says what to do next."""

from __future__ import annotations


class XtlError(Exception):
    """Base class for errors caused by bad input; the CLI prints them as one line (exit 2)."""


class ModelSpecError(XtlError):
    """A model spec is neither an official name, a local folder, a GGUF file nor the demo model."""


class DemoModelError(XtlError):
    """The embedded demo model is missing or corrupted."""


class SiteError(XtlError):
    """Unknown site, bad head index or layer out of range."""


class PromptError(XtlError):
    """Empty, unreadable or too long prompt."""


class DataError(XtlError):
    """Malformed or mismatched dataset files."""


class StoreError(XtlError):
    """A results store that cannot be read or does not match the requested settings."""


class CallError(XtlError, TypeError):
    """A public function called in a form it no longer takes (``xtl.transplant``'s prompts by
    position); the message shows the call to write instead."""


class TrainingError(XtlError):
    """A fine-tuning run that cannot go on: its loss became NaN or inf, or its model does not
    support what was asked (gradient checkpointing)."""
