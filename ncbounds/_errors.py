"""The single exception family of ncbounds and its warning class (DESIGN.md, "Errors")."""

from __future__ import annotations

__all__ = ["NCBoundsError", "NCBoundsWarning"]


class NCBoundsError(ValueError):
    """Bad input at a public boundary of ncbounds.

    The message names the offending argument, what was expected and what was received.
    It is a :class:`ValueError`, so ``except ValueError`` keeps working.
    """


class NCBoundsWarning(UserWarning):
    """A degenerate but meaningful case (for example two coinciding class means,
    whose CDNV is reported as +inf)."""
