"""Weights kept in a device backend's memory for the length of a model call.

A device backend (``cuda``, ``cupy``) would otherwise copy every layer's weights from the host
on every forward: per batch of ``predict``/``evaluate``, per direction of a ``Bidirectional``,
per call of a shared layer. :class:`ResidentWeights` keeps one device copy per owner (an
``LSTMCell``) and hands it back for as long as

* a scope opened by :meth:`ResidentWeights.scope` (``Backend.keep_weights_resident()``) is
  open on this thread -- a model opens one around its ``fit``/``evaluate``/``predict`` loop,
  where only numlstm's own code changes weights between batches, and
* the owner's weight version (``LSTMCell._weights_version``, bumped by every numlstm path that
  changes weights: ``set_weights``, an optimizer step with its constraints, ``set_backend``,
  a user callback that ran) and the identity of its host arrays are unchanged.

Outside a scope nothing is kept and every call copies afresh, so a weight written in place
between two calls (``layer.kernel[0, 0] = 1.0``) is always seen. When a scope closes, its
copies are released (device memory is not held after the model call returns). A new version
is copied into the previous version's device arrays (no allocation), on the one stream every
kernel of the backend runs on, so the copy is ordered after the kernels that read the old
values.
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
    """Per-thread device copies of host weights, keyed by their owner (weakly).

    Parameters
    ----------
    upload : callable ``(host, into) -> device``
        Copy the host array ``host`` to the device; ``into`` is a device array of the same
        shape and dtype to copy into, or None (allocate one).

    Attributes
    ----------
    uploads : int
        Host-to-device copies made so far on this thread (for tests and benchmarks).
    """

    def __init__(self, upload: Callable):
        self.upload = upload
        self.depth = 0
        self.copies: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self.uploads = 0

    @contextlib.contextmanager
    def scope(self):
        """Keep copies until the outermost scope of this thread closes."""
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
            if self.depth == 0:
                self.copies.clear()

    def get(self, owner, version, hosts) -> tuple:
        """The device arrays for ``hosts`` (a tuple of C-contiguous host arrays) of
        ``owner`` at weight ``version``."""
        if self.depth == 0:
            return tuple(self._upload(host, None) for host in hosts)
        kept = self.copies.get(owner)
        if kept is not None and kept.version == version and len(kept.hosts) == len(hosts) \
                and all(a is b for a, b in zip(kept.hosts, hosts)):
            return kept.devices
        reuse = [None] * len(hosts)
        if kept is not None and len(kept.devices) == len(hosts):
            reuse = [old if old.shape == host.shape and old.dtype == host.dtype else None
                     for old, host in zip(kept.devices, hosts)]
        devices = tuple(self._upload(host, into) for host, into in zip(hosts, reuse))
        self.copies[owner] = _Copies(version, tuple(hosts), devices)
        return devices

    def _upload(self, host, into):
        self.uploads += 1
        return self.upload(host, into)


class KeepsWeightsResident:
    """``Backend.weights_for_call`` and ``keep_weights_resident`` for a device backend (put it
    before ``Backend`` among the bases). The backend sets ``self._resident``, a
    :class:`ResidentWeights` over its upload function, and says which arrays are already its
    own with ``_is_device_array``; those are used as they are (through ``asarray``)."""

    _resident: ResidentWeights

    def _is_device_array(self, array) -> bool:
        raise NotImplementedError

    def weights_for_call(self, owner, version, arrays) -> tuple:
        """Device copies of host weights, kept per owner within a
        :meth:`keep_weights_resident` scope; device arrays given are used as they are."""
        if any(self._is_device_array(array) for array in arrays):
            return tuple(self.asarray(array) for array in arrays)
        return self._resident.get(owner, version, arrays)

    def keep_weights_resident(self):
        return self._resident.scope()
