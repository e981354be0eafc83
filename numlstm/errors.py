"""Exception types of numlstm.

User mistakes (bad shapes, unknown names, wrong dtypes) raise the built-in ``ValueError`` or
``TypeError``. numlstm's own exceptions subclass the built-in a user would catch anyway:

* :class:`BackendUnavailableError` (``RuntimeError``): a backend cannot run on this machine;
* :class:`ModelFileError` (``ValueError``): a saved model file is missing, damaged or not one;
* :class:`MissingExtraError` (``ImportError``): an optional dependency is not installed;
* :class:`DatasetUnavailableError` (``OSError``): a data set's files are not in the cache
  and cannot be downloaded (or were downloaded damaged).
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


class ModelFileError(ValueError):
    """A model file cannot be read: missing, not a numlstm archive, truncated or tampered with.

    Attributes
    ----------
    path : str
        The file, as given by the caller.
    reason : str
        What is wrong, e.g. ``"checksum mismatch for array 'layer0/kernel'"``.
    """

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot load model file {self.path!r}: {reason}")

    def __reduce__(self):
        # Exceptions are pickled by re-calling __init__ with self.args (here: the message);
        # keep (path, reason) so that the error survives a multiprocessing boundary intact.
        return type(self), (self.path, self.reason)


class MissingExtraError(ImportError):
    """An optional dependency of one feature is not installed.

    Attributes
    ----------
    extra : str
        The name of numlstm's extra that installs it, e.g. ``"datasets"``.
    package : str
        The missing package, e.g. ``"scikit-learn"``.
    feature : str
        What needs it, e.g. ``"numlstm.datasets.digits"``.
    name : str
        The module that failed to import, e.g. ``"sklearn"`` (``ImportError.name``).
    """

    def __init__(self, extra: str, package: str, feature: str, module: str | None = None):
        self.extra = extra
        self.package = package
        self.feature = feature
        super().__init__(f"{feature} needs {package}, which is not installed. To fix: "
                         f'pip install "numlstm[{extra}]" (or pip install {package})',
                         name=module or package)

    def __reduce__(self):
        return type(self), (self.extra, self.package, self.feature, self.name)


class DatasetUnavailableError(OSError):
    """A data set's files are neither in the cache folder nor downloadable (no network, a
    mirror down, or every copy fetched was damaged). The message says which files to place
    where, by hand.

    Attributes
    ----------
    dataset : str
        E.g. ``"mnist"``.
    folder : str
        The cache folder the files are looked for in.
    reason : str
        What failed, e.g. each mirror's error.
    """

    def __init__(self, dataset: str, folder, reason: str, message: str):
        self.dataset = dataset
        self.folder = str(folder)
        self.reason = reason
        super().__init__(message)

    def __reduce__(self):
        return type(self), (self.dataset, self.folder, self.reason, str(self))
