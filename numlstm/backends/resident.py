"""Weights kept in a device backend's memory for the length of a model call.

A device backend (``cuda``, ``cupy``) would otherwise copy every layer's weights from the host
on every forward: per batch of ``predict``/``evaluate``, per direction of a ``Bidirectional``,
per call of a shared layer. :class:`ResidentWeights` keeps one device copy per owner (an
``LSTMCell``) and hands it back for as long as

* the scope it was made in (``Backend.keep_weights_resident()``) is the innermost one open on
  this thread -- a model opens one around each ``fit`` epoch, ``evaluate`` and ``predict``
  and one per single-batch call, and
* the owner's weight version (``LSTMCell._weights_version``, bumped by every numlstm path that
  changes weights: ``set_weights``, an optimizer step with its constraints, ``set_backend``,
  and by the model after user code has run) and the identity of its host arrays are
  unchanged.

User code that a model call runs (a callback's hook, a generator's next batch) runs under
``Backend.suspend_resident_weights()``: inside it no copy is reused, so a model or layer it
calls copies the weights afresh (a nested ``predict`` opens a scope of its own), and after it
the model starts a new version, since it may have written weights in place. Outside every
scope nothing is kept and every call copies afresh, so a weight written in place between two
calls (``layer.kernel[0, 0] = 1.0``) is always seen. When a scope closes, its copies are
released (device memory is not held after the model call returns).

What is not covered: a custom loss or metric that writes weights in place (it runs between a
batch's forward and its backward, which reads the forward's copies, on every backend).

A new version is copied into the previous version's device arrays (no allocation), on the one
stream every kernel of the backend runs on, so the copy is ordered after the kernels that read
the old values.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from typing import Callable

__all__ = ["ResidentWeights", "KeepsWeightsResident"]


class _Copies:
    __slots__ = ("version", "hosts", "devices")

    def __init__(self, version, hosts, devices):
        self.version, self.hosts, self.devices = version, hosts, devices


class ResidentWeights(threading.local):
    """Per-thread device copies of host weights, in a stack of scopes, each keyed by owner
    (weakly).

    Parameters
    ----------
    upload : callable ``(host, into) -> device``
        Copy the host array ``host`` to the device; ``into`` is a device array of the same
        shape and dtype to copy into, or None (allocate one).

    Attributes
    ----------
    scopes : list
        The open scopes of this thread, innermost last: a ``WeakKeyDictionary`` of copies, or
        None where reuse is suspended.
    uploads : int
        Host-to-device copies made so far on this thread (for tests and benchmarks).
    """

    def __init__(self, upload: Callable):
        self.upload = upload
        self.scopes: list = []
        self.uploads = 0

    @contextlib.contextmanager
    def scope(self, join: bool = False):
        """Keep copies until this scope closes. With ``join``, an innermost scope that keeps
        copies is used instead of a new one."""
        if join and self.scopes and self.scopes[-1] is not None:
            yield
            return
        with self._pushed(weakref.WeakKeyDictionary()):
            yield

    def suspended(self):
        """No copy is reused (or kept) inside: for code numlstm does not know."""
        return self._pushed(None)

    @contextlib.contextmanager
    def _pushed(self, entry):
        self.scopes.append(entry)
        try:
            yield
        finally:
            self.scopes.pop()

    def get(self, owner, version, hosts) -> tuple:
        """The device arrays for ``hosts`` (a tuple of C-contiguous host arrays) of
        ``owner`` at weight ``version``."""
        copies = self.scopes[-1] if self.scopes else None
        if copies is None:
            return tuple(self._upload(host, None) for host in hosts)
        kept = copies.get(owner)
        if kept is not None and kept.version == version and len(kept.hosts) == len(hosts) \
                and all(a is b for a, b in zip(kept.hosts, hosts)):
            return kept.devices
        reuse = [None] * len(hosts)
        if kept is not None and len(kept.devices) == len(hosts):
            reuse = [old if old.shape == host.shape and old.dtype == host.dtype else None
                     for old, host in zip(kept.devices, hosts)]
        devices = tuple(self._upload(host, into) for host, into in zip(hosts, reuse))
        copies[owner] = _Copies(version, tuple(hosts), devices)
        return devices

    def _upload(self, host, into):
        self.uploads += 1
        return self.upload(host, into)


class KeepsWeightsResident:
    """``Backend.weights_for_call``, ``keep_weights_resident`` and
    ``suspend_resident_weights`` for a device backend (put it before ``Backend`` among the
    bases). The backend sets ``self._resident``, a :class:`ResidentWeights` over its upload
    function, and says which arrays are already its own with ``_is_device_array``; those are
    used as they are (through ``asarray``)."""

    _resident: ResidentWeights

    def _is_device_array(self, array) -> bool:
        raise NotImplementedError

    def weights_for_call(self, owner, version, arrays) -> tuple:
        """Device copies of host weights, kept per owner in the innermost
        :meth:`keep_weights_resident` scope; device arrays given are used as they are."""
        if any(self._is_device_array(array) for array in arrays):
            return tuple(self.asarray(array) for array in arrays)
        return self._resident.get(owner, version, arrays)

    def keep_weights_resident(self, join: bool = False):
        return self._resident.scope(join)

    def suspend_resident_weights(self):
        return self._resident.suspended()
