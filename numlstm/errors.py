"""Exception types of numlstm.

User mistakes (bad shapes, unknown names, wrong dtypes) raise the built-in ``ValueError`` or
``TypeError``; the only numlstm-specific exception is :class:`BackendUnavailableError`.
"""

from __future__ import annotations


class BackendUnavailableError(RuntimeError):
    """A known backend cannot run on this machine.

    Attributes
    ----------
    backend : str
        The backend's name, e.g. ``"cupy"``.
    reason : str
        Why it cannot run here, e.g. ``"CuPy is not installed"``.
    fix : str
        What the user can do about it, e.g. ``"pip install 'numlstm[cupy]'"``.
    """

    def __init__(self, backend: str, reason: str, fix: str = ""):
        self.backend = backend
        self.reason = reason
        self.fix = fix
        message = f"the {backend!r} backend is not usable here: {reason}"
        if fix:
            message += f". To fix: {fix}"
        super().__init__(message)
