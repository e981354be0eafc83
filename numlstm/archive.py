"""One-file, pickle-free storage of a JSON configuration plus named arrays, written atomically.

:func:`save_archive` and :func:`load_archive` are what ``model.save`` and
:func:`numlstm.load_model` are built on; they know nothing about models.

File format ``numlstm-model``, version 1
----------------------------------------
The file is a ZIP archive (members stored uncompressed; ZIP64 where sizes need it). Its
members are exactly:

``arrays/00000.npy``, ``arrays/00001.npy``, ...
    One member per array, numbered in the order of the header's ``"arrays"`` list, each in
    NumPy's ``.npy`` format (as written by ``numpy.lib.format.write_array`` with
    ``allow_pickle=False``; version 1.0, 2.0 or 3.0 headers). The arrays' own names live in the
    header, so any string can name an array.
``numlstm-model.json``
    The header: one UTF-8 JSON object with the keys

    ``"format"``
        the string ``"numlstm-model"``;
    ``"format_version"``
        the integer ``1``. A reader refuses versions it does not know;
    ``"writer"``
        informational, e.g. ``"numlstm 0.1.0"``; never interpreted;
    ``"config"``
        the caller's configuration: any JSON object (string keys; values objects, arrays,
        strings, numbers, true/false/null; Python's ``NaN``/``Infinity`` tokens are allowed);
    ``"config_sha256"``
        the SHA-256 (lowercase hex) of the canonical JSON text of ``"config"``:
        ``json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``
        encoded as UTF-8;
    ``"arrays"``
        a list with one object per array, in the order they were given, with the keys
        ``"name"`` (string, unique), ``"member"`` (``"arrays/NNNNN.npy"``), ``"dtype"``
        (NumPy's ``dtype.str``, e.g. ``"<f4"``, ``"|b1"``), ``"shape"`` (list of ints) and
        ``"sha256"`` (lowercase hex SHA-256 of the member's complete ``.npy`` bytes).

Allowed array dtypes are booleans, integers, unsigned integers, floats, complex numbers and
fixed-width byte/unicode strings (NumPy kinds ``b i u f c S U``); object and structured arrays
are refused when saving and when loading. A file can be inspected without numlstm, e.g. with
``zipfile`` and ``json``, or ``np.load(path)`` (keys ``arrays/00000`` ...).

Guarantees
----------
* Loading never runs code from the file: no pickle anywhere, ``allow_pickle=False`` on every
  array, and dtypes are checked against the allowed kinds before any data is read.
* Anything wrong raises :class:`numlstm.errors.ModelFileError` (a ``ValueError``) naming the
  file and the problem: missing, empty, not a ZIP file, truncated, a missing or unexpected
  member, an unreadable header, a wrong format name or an unknown version, a checksum that does
  not match (config or array), an array whose dtype or shape differs from the header's.
* Writing is atomic: the archive is written to a temporary file in the target's directory,
  flushed and ``fsync``-ed, then renamed over the target with ``os.replace`` (and the directory
  is ``fsync``-ed where the platform allows). A reader, or a crash at any moment, sees either
  the previous complete file (or none) or the new complete file, never a partial one.
* Saving to a symbolic link writes the file the link points to (the link stays a link), and
  replacing an existing file keeps its permission bits; a new file gets the usual mode
  (0o666 less the umask).
* Temporary files are named ``.<target name>.numlstm-tmp-<pid>-<random>``, or, where that
  would exceed the file system's name limit, ``.<hash of the target name>.numlstm-tmp-<pid>-
  <random>``. On an error they are removed. A writer holds an exclusive ``flock`` on its
  temporary file for as long as it writes. A process killed outright (e.g. ``SIGKILL``, power
  loss) cannot remove its own; on POSIX systems the next :func:`save_archive` to the same
  target removes those no process holds a lock on (a process id proves nothing: the writer
  may live in another PID namespace). Elsewhere they stay until removed by hand.

Limits when loading
-------------------
Members must be stored uncompressed: a compressed (DEFLATE, BZIP2, LZMA, ...) or encrypted
member is refused before anything is read, since it could expand to far more memory than the
file's size. So are a member whose stored and declared sizes differ, an array whose declared
dtype and shape need more bytes than its member holds or than the whole file, and a header
nested deeper than JSON can be parsed. The arrays of one file may declare at most
``max_bytes`` bytes in all (default :data:`DEFAULT_MAX_BYTES`, 4 GiB; pass a larger
``max_bytes=`` for a larger trusted file). What loading allocates is thus bounded by the
file's own size, and by ``max_bytes``.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import secrets
import stat
import zipfile

try:                                # POSIX: writers lock their temporary files
    import fcntl
except ImportError:                 # Windows: no stale-temporary cleanup at all
    fcntl = None
from pathlib import Path

import numpy as np

from .errors import ModelFileError
from .validation import check_int_at_least

__all__ = ["save_archive", "load_archive", "open_zip_archive", "write_file_atomically",
           "FORMAT_NAME", "FORMAT_VERSION", "HEADER_MEMBER", "DEFAULT_MAX_BYTES"]

#: The ``"format"`` value of every numlstm archive.
FORMAT_NAME = "numlstm-model"
#: The ``"format_version"`` this module writes, and the only one it reads.
FORMAT_VERSION = 1
#: The name of the JSON header member.
HEADER_MEMBER = "numlstm-model.json"

#: NumPy dtype kinds that can be stored (no objects, no structured records).
_ALLOWED_KINDS = frozenset("biufcSU")
#: The largest header accepted when loading: far above any model's, far below a memory bomb.
_MAX_HEADER_BYTES = 64 * 1024 * 1024
#: An .npy header (magic, version, length, dict) is padded to a multiple of 64 bytes; NumPy
#: itself warns above 10 kB. Members may exceed their array's data size by at most this.
_MAX_NPY_HEADER_BYTES = 1 << 16
#: The most bytes the arrays of one file may declare, unless the caller passes ``max_bytes``.
DEFAULT_MAX_BYTES = 4 << 30
_MEMBER_PATTERN = re.compile(r"arrays/\d{5,}\.npy")
_TEMP_MARKER = ".numlstm-tmp-"
#: The longest file name most file systems allow (POSIX NAME_MAX on Linux, macOS, ext4, APFS).
_NAME_MAX = 255
#: What a temporary name adds to its prefix: ``<pid>-<12 hex digits>``, pid up to 10 digits.
_TEMP_SUFFIX_MAX = 10 + 1 + 12


# -- saving -----------------------------------------------------------------------------------

def _check_path(path, argument: str = "path") -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{argument} must be a str or os.PathLike; got "
                        f"{type(path).__name__} {path!r}")
    text = os.fspath(path)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    if not text:
        raise ValueError(f"{argument} must name a file; got an empty path")
    return Path(text)


def _check_json_value(value, where: str) -> None:
    """Refuse anything that JSON would not give back as it was (numpy scalars, sets, non-str
    keys, which ``json`` silently turns into strings)."""
    if value is None or isinstance(value, (bool, str)):
        return
    if isinstance(value, (int, float)) and type(value) in (int, float, bool):
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"config keys must be strings; got {type(key).__name__} key "
                                f"{key!r} in {where}")
            _check_json_value(item, f"{where}[{key!r}]")
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_json_value(item, f"{where}[{index}]")
        return
    hint = " (convert NumPy scalars with .item())" if isinstance(value, np.generic) else ""
    raise TypeError(f"config values must be JSON types (dict, list, tuple, str, int, float, "
                    f"bool, None); got {type(value).__name__} {value!r} at {where}{hint}")


def _canonical_config(config) -> bytes:
    return json.dumps(config, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def _check_arrays(arrays) -> list[tuple[str, np.ndarray]]:
    if not isinstance(arrays, dict):
        raise TypeError(f"arrays must be a dict of str to numpy arrays; got "
                        f"{type(arrays).__name__}")
    checked = []
    for name, value in arrays.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"array names must be non-empty strings; got {name!r}")
        array = value if isinstance(value, np.ndarray) else np.asarray(value)
        if array.dtype.kind not in _ALLOWED_KINDS or array.dtype.fields is not None:
            raise TypeError(f"arrays[{name!r}] has dtype {array.dtype}, which cannot be saved "
                            f"without pickle; allowed: bool, integer, float, complex and "
                            f"fixed-width string arrays")
        checked.append((name, array))
    return checked


class _HashingWriter(io.RawIOBase):
    """A write-only stream that forwards to ``target`` and hashes what passes through."""

    def __init__(self, target):
        super().__init__()
        self._target = target
        self.sha256 = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        self.sha256.update(view)
        self._target.write(view)
        return len(view)


def _temp_prefix(target: Path) -> str:
    """The name prefix of ``target``'s temporary files: ``.<name>.numlstm-tmp-``, or with a
    hash of the name in its place where the full temporary name could exceed the file
    system's limit (a legal 250-character target name must still save)."""
    prefix = f".{target.name}{_TEMP_MARKER}"
    if len(os.fsencode(prefix)) + _TEMP_SUFFIX_MAX > _NAME_MAX:
        digest = hashlib.sha256(os.fsencode(target.name)).hexdigest()[:32]
        prefix = f".{digest}{_TEMP_MARKER}"
    return prefix


def _lock(fd: int, wait: bool) -> bool:
    """Take an exclusive ``flock`` on ``fd`` (released when the process dies, however it
    dies); False when ``wait`` is off and another open file holds it."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    except OSError:                 # a file system without flock: a writer goes on unlocked,
        return wait                 # a cleaner cannot prove a file stale and keeps it
    return True


def _open_temp(target: Path) -> tuple[int, Path]:
    """Create and lock the temporary file next to ``target`` (mode 0o666 less the umask, like
    any new file, rather than mkstemp's 0o600)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    prefix = _temp_prefix(target)
    while True:
        temp = target.with_name(f"{prefix}{os.getpid()}-{secrets.token_hex(6)}")
        try:
            fd = os.open(temp, flags, 0o666)
        except FileExistsError:     # a 48-bit random collision: draw again
            continue
        _lock(fd, wait=True)
        # A cleaner may have taken the file for stale between its creation and the lock: keep
        # it only if it is still linked under its name, else start over with a new one.
        try:
            if os.path.samestat(os.fstat(fd), os.stat(temp)):
                return fd, temp
        except OSError:
            pass
        os.close(fd)


def _remove_stale_temps(target: Path) -> None:
    """Remove temporary files of earlier saves to ``target`` that no writer holds a lock on
    (POSIX only). A file named with this process's id is left alone: where ``flock`` is
    emulated by per-process locks (NFS), another thread's lock would not show."""
    if fcntl is None:
        return
    prefix = _temp_prefix(target)
    own = f"{prefix}{os.getpid()}-"
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return
    for entry in entries:
        if not entry.name.startswith(prefix) or entry.name.startswith(own):
            continue
        try:
            fd = os.open(entry.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue
        try:
            if _lock(fd, wait=False):
                os.unlink(entry.path)      # no writer holds it: its process is gone
        except OSError:
            pass
        finally:
            os.close(fd)


def _fsync_directory(directory: Path) -> None:
    if not hasattr(os, "O_DIRECTORY"):
        return                      # Windows: directories cannot be opened for fsync
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:                 # some file systems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def _write_zip(handle, config, arrays: list[tuple[str, np.ndarray]]) -> None:
    entries = []
    with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for index, (name, array) in enumerate(arrays):
            member = f"arrays/{index:05d}.npy"
            info = zipfile.ZipInfo(member, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=array.nbytes > (1 << 30)) as stream:
                writer = _HashingWriter(stream)
                np.lib.format.write_array(writer, array, allow_pickle=False)
            entries.append({"name": name, "member": member, "dtype": array.dtype.str,
                            "shape": list(array.shape), "sha256": writer.sha256.hexdigest()})
        from . import __version__
        header = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
                  "writer": f"numlstm {__version__}", "config": config,
                  "config_sha256": hashlib.sha256(_canonical_config(config)).hexdigest(),
                  "arrays": entries}
        info = zipfile.ZipInfo(HEADER_MEMBER, date_time=(1980, 1, 1, 0, 0, 0))
        info.external_attr = 0o644 << 16
        zf.writestr(info, json.dumps(header, indent=1, ensure_ascii=False).encode("utf-8"))


def save_archive(path, config: dict, arrays: dict) -> Path:
    """Write ``config`` and ``arrays`` to one file at ``path``, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write (any extension; ``.npz`` is customary). Its directory must exist.
        An existing file is replaced only once the new one is complete and on disk, and keeps
        its permission bits; a symbolic link is followed (its target is written).
    config : dict
        JSON-compatible: string keys; values dict, list, tuple, str, int, float, bool, None.
        Tuples come back as lists. NumPy scalars are refused (use ``.item()``).
    arrays : dict of str to array-like
        Named arrays of kind bool, integer, unsigned, float, complex or fixed-width string, of
        any shape including 0-d and empty. Loaded back in this order with the same dtype
        (byte order included) and shape.

    Returns
    -------
    pathlib.Path
        ``path`` as a Path.

    Raises
    ------
    TypeError
        If ``config`` is not JSON-compatible or an array has a dtype that needs pickle (object,
        structured); nothing is written then.
    OSError
        If the directory is missing or not writable, or the disk is full; the target is then
        untouched and the temporary file removed.

    See the module docstring for the file format and the temporary-file naming.
    """
    target = _check_path(path)
    if not isinstance(config, dict):
        raise TypeError(f"config must be a dict; got {type(config).__name__}")
    _check_json_value(config, "config")
    config = json.loads(json.dumps(config))       # tuples -> lists: what a load returns
    checked = _check_arrays(arrays)
    return write_file_atomically(target, lambda handle: _write_zip(handle, config, checked))


def write_file_atomically(path, write) -> Path:
    """Create or replace the file ``path`` with what ``write(handle)`` writes to a binary
    handle, atomically: a temporary file next to ``path`` (named as the module docstring says),
    flushed and ``fsync``-ed, then renamed over ``path``. If ``write`` raises, the target is
    untouched and the temporary file removed. A symbolic link is followed (its target is
    written) and a replaced file keeps its permission bits. Returns ``path`` as a Path."""
    target = _check_path(path)
    if target.is_symlink():
        # Write the file the link points to; replacing the link itself would cut it loose.
        target = Path(os.path.realpath(target))
    directory = target.parent
    if not directory.is_dir():
        raise FileNotFoundError(f"cannot save to {os.fspath(target)!r}: directory "
                                f"{os.fspath(directory)!r} does not exist")
    try:
        kept_mode = stat.S_IMODE(os.stat(target).st_mode)
    except OSError:                 # a new file: the usual mode
        kept_mode = None
    _remove_stale_temps(target)
    fd, temp = _open_temp(target)
    try:
        if kept_mode is not None and hasattr(os, "fchmod"):
            os.fchmod(fd, kept_mode)
        # On POSIX the descriptor (and so the lock) stays open until the file has its final
        # name: an unlocked temporary file may be removed as stale by another save.
        with os.fdopen(fd, "wb", closefd=fcntl is None) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise
    finally:
        if fcntl is not None:
            os.close(fd)
    _fsync_directory(directory)
    return target


# -- loading ----------------------------------------------------------------------------------

def _read_member(zf: zipfile.ZipFile, name: str, limit: int, fail) -> bytes:
    info = zf.getinfo(name)
    if info.file_size > limit:
        fail(f"member {name!r} is {info.file_size} bytes, more than the {limit} its header "
             f"allows")
    try:
        data = zf.read(info)
    except zipfile.BadZipFile as error:      # CRC mismatch or a damaged local header
        fail(f"member {name!r} is damaged ({error})")
    except Exception as error:      # EOFError, zlib.error, NotImplementedError, ...
        fail(f"member {name!r} cannot be read ({type(error).__name__}: {error}); the file "
             f"may be truncated or damaged")
    if len(data) != info.file_size:
        fail(f"member {name!r} is truncated ({len(data)} of {info.file_size} bytes)")
    return data


def _parse_entry(entry, index: int, fail) -> tuple[str, str, np.dtype, tuple, str]:
    if not isinstance(entry, dict):
        fail(f"header entry arrays[{index}] is not an object")
    missing = [key for key in ("name", "member", "dtype", "shape", "sha256") if key not in entry]
    if missing:
        fail(f"header entry arrays[{index}] lacks {missing}")
    name, member, dtype_text, shape, digest = (entry[key] for key in
                                               ("name", "member", "dtype", "shape", "sha256"))
    if not isinstance(name, str) or not name:
        fail(f"header entry arrays[{index}] has an invalid name {name!r}")
    if not isinstance(member, str) or not _MEMBER_PATTERN.fullmatch(member):
        fail(f"array {name!r} has an invalid member name {member!r}")
    try:
        dtype = np.dtype(dtype_text) if isinstance(dtype_text, str) else None
    except Exception:               # TypeError, or SyntaxError from odd strings
        dtype = None
    if dtype is None or dtype.kind not in _ALLOWED_KINDS or dtype.fields is not None:
        fail(f"array {name!r} has a dtype that cannot be loaded without pickle or is "
             f"invalid: {dtype_text!r}")
    if not isinstance(shape, list) or not all(type(n) is int and n >= 0 for n in shape):
        fail(f"array {name!r} has an invalid shape {shape!r}")
    if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
        fail(f"array {name!r} has an invalid sha256 {digest!r}")
    return name, member, dtype, tuple(shape), digest


def _read_npy(data: bytes, name: str, dtype: np.dtype, shape: tuple, fail) -> np.ndarray:
    stream = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            header = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            header = np.lib.format.read_array_header_2_0(stream)
        else:
            # (3, 0): utf-8 field names. NumPy has no public reader for its header, and
            # read_array would allocate whatever shape it declares before reading the data.
            header = np.lib.format._read_array_header(stream, version)
    except Exception as error:      # ValueError, or SyntaxError from a mangled header dict
        fail(f"array {name!r} is not a valid .npy member ({error})")
    stored_shape, _, stored_dtype = header
    if stored_dtype != dtype or tuple(stored_shape) != shape:
        fail(f"array {name!r} holds dtype {stored_dtype.str} and shape "
             f"{tuple(stored_shape)}, but the header records dtype {dtype.str} and shape "
             f"{shape}")
    stream.seek(0)
    try:
        array = np.lib.format.read_array(stream, allow_pickle=False)
    except Exception as error:
        fail(f"array {name!r} cannot be read ({type(error).__name__}: {error})")
    if array.dtype != dtype or array.shape != shape:
        fail(f"array {name!r} holds dtype {array.dtype.str} and shape {array.shape}, but the "
             f"header records dtype {dtype.str} and shape {shape}")
    return array


def open_zip_archive(path, fail, kind: str) -> zipfile.ZipFile:
    """Open the ZIP file ``path`` for reading, or call ``fail(reason)`` (which must raise) with
    what is wrong: missing, a directory, unreadable, empty, truncated, or not a ZIP archive
    (then the reason says it is not a ``kind``, e.g. ``"numlstm model file"``)."""
    target = _check_path(path)
    try:
        size = os.stat(target).st_size
        if target.is_dir():
            fail("it is a directory, not a file")
    except FileNotFoundError:
        fail("no such file")
    except OSError as error:
        fail(f"cannot access it ({error.strerror or error})")
    if size == 0:
        fail("the file is empty")
    try:
        with open(target, "rb") as handle:
            start = handle.read(4)
    except OSError as error:
        fail(f"cannot open it ({error.strerror or error})")
    try:
        zf = zipfile.ZipFile(target, "r")
    except zipfile.BadZipFile:
        if start == b"PK\x03\x04":
            fail("the ZIP archive is truncated or damaged (no valid central directory)")
        fail(f"not a {kind} (not a ZIP archive)")
    except Exception as error:      # damaged directories raise NotImplementedError, struct.error...
        fail(f"the ZIP archive is damaged ({type(error).__name__}: {error})")
    return zf


def _check_member_infos(zf: zipfile.ZipFile, file_size: int, fail) -> None:
    """Refuse, before reading anything, members the format never writes: compressed or
    encrypted ones (their size in memory is not their size in the file) and ones whose
    stored and declared sizes differ or exceed the file."""
    for info in zf.infolist():
        if info.compress_type != zipfile.ZIP_STORED:
            fail(f"member {info.filename!r} is compressed (ZIP method {info.compress_type}); "
                 f"numlstm model files store members uncompressed, and a compressed member "
                 f"could expand to far more memory than the file's size")
        if info.flag_bits & 0x1:
            fail(f"member {info.filename!r} is encrypted")
        if info.file_size != info.compress_size or info.file_size > file_size:
            fail(f"member {info.filename!r} declares {info.file_size} bytes but stores "
                 f"{info.compress_size} in a file of {file_size} bytes")


def _check_declared_sizes(parsed, file_size: int, max_bytes: int, fail) -> None:
    """The arrays' declared dtypes and shapes must fit in the file, and in ``max_bytes``."""
    total = 0
    for name, _, dtype, shape, _ in parsed:
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes > file_size:
            fail(f"array {name!r} declares shape {shape} of {dtype.str}: {nbytes} bytes, more "
                 f"than the file's {file_size} bytes")
        total += nbytes
    if total > max_bytes:
        fail(f"its arrays declare {total} bytes in all, more than max_bytes={max_bytes}; "
             f"pass a larger max_bytes= to load it if the file is trusted")


def load_archive(path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[dict, dict]:
    """Read a file written by :func:`save_archive`, verifying everything before returning.

    Parameters
    ----------
    path : str or os.PathLike
    max_bytes : int, default DEFAULT_MAX_BYTES (4 GiB)
        The most bytes the file's arrays may declare in all (see "Limits when loading").

    Returns
    -------
    (config, arrays)
        ``config`` the saved dict (tuples saved became lists); ``arrays`` a dict of name to
        new, writable NumPy array, in the saved order, with the saved dtypes and shapes.

    Raises
    ------
    ModelFileError
        (a ``ValueError``) naming the file and what is wrong with it: it does not exist, is
        empty or a directory, is not a ZIP file or is truncated, lacks a member or has an
        unexpected one, has an unreadable header, a format name other than
        ``"numlstm-model"`` or an unknown version, a config or array whose SHA-256 differs
        from the recorded one, or an array whose dtype or shape differs from the recorded one;
        also a compressed or encrypted member, sizes that disagree or exceed the file or
        ``max_bytes``, or a header nested too deeply to parse.
    TypeError
        If ``path`` is not a str or os.PathLike (or ``max_bytes`` not an integer).
    """
    target = _check_path(path)
    max_bytes = check_int_at_least(max_bytes, "max_bytes", 0)
    shown = os.fspath(path)

    def fail(reason):
        # from None: the message already says what the underlying error was
        raise ModelFileError(shown, reason) from None

    with open_zip_archive(path, fail, "numlstm model file") as zf:
        size = os.stat(target).st_size
        _check_member_infos(zf, size, fail)
        names = zf.namelist()
        if len(set(names)) != len(names):
            fail("the ZIP archive has duplicate member names")
        if HEADER_MEMBER not in names:
            fail(f"not a numlstm model file: member {HEADER_MEMBER!r} is missing")
        raw = _read_member(zf, HEADER_MEMBER, _MAX_HEADER_BYTES, fail)
        try:
            header = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            fail(f"the header {HEADER_MEMBER!r} is not valid UTF-8 JSON ({error})")
        except RecursionError:
            fail(f"the header {HEADER_MEMBER!r} is nested too deeply to parse")
        if not isinstance(header, dict):
            fail(f"the header {HEADER_MEMBER!r} is not a JSON object")
        if header.get("format") != FORMAT_NAME:
            fail(f"not a numlstm model file: format is {header.get('format')!r}, expected "
                 f"{FORMAT_NAME!r}")
        version = header.get("format_version")
        if type(version) is not int:
            fail(f"the format version is missing or not an integer: {version!r}")
        if version != FORMAT_VERSION:
            newer = " (written by a newer numlstm?)" if version > FORMAT_VERSION else ""
            fail(f"unknown format version {version}{newer}; this numlstm reads version "
                 f"{FORMAT_VERSION}")
        config, entries = header.get("config"), header.get("arrays")
        if not isinstance(config, dict):
            fail("the header's 'config' is missing or not a JSON object")
        if not isinstance(entries, list):
            fail("the header's 'arrays' is missing or not a list")
        try:
            digest = hashlib.sha256(_canonical_config(config)).hexdigest()
        except RecursionError:
            fail("the header's 'config' is nested too deeply")
        if header.get("config_sha256") != digest:
            fail(f"checksum mismatch for the config: recorded "
                 f"{header.get('config_sha256')!r}, computed {digest!r}")

        parsed = [_parse_entry(entry, index, fail) for index, entry in enumerate(entries)]
        seen_names, seen_members = set(), set()
        for name, member, *_ in parsed:
            if name in seen_names:
                fail(f"the header names array {name!r} twice")
            if member in seen_members:
                fail(f"the header uses member {member!r} twice")
            seen_names.add(name)
            seen_members.add(member)
        _check_declared_sizes(parsed, size, max_bytes, fail)
        missing = sorted(seen_members.difference(names))
        if missing:
            fail(f"member {missing[0]!r} is missing (the file is truncated or damaged)")
        unexpected = sorted(set(names) - seen_members - {HEADER_MEMBER})
        if unexpected:
            fail(f"unexpected member {unexpected[0]!r}: the file was altered")

        arrays = {}
        for name, member, dtype, shape, recorded in parsed:
            nbytes = math.prod(shape) * dtype.itemsize
            data = _read_member(zf, member, nbytes + _MAX_NPY_HEADER_BYTES, fail)
            computed = hashlib.sha256(data).hexdigest()
            if computed != recorded:
                fail(f"checksum mismatch for array {name!r} (member {member!r}): recorded "
                     f"{recorded}, computed {computed}")
            arrays[name] = _read_npy(data, name, dtype, shape, fail)
    return config, arrays
