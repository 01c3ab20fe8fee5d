"""The XenStore stand-in: a directory tree that several node processes read, write and watch.

Xen keeps its domains' configuration in xenstored, a tree of keys such as
/local/domain/1/device/vif/0/mac. Here the tree is a directory: a key is a
file holding its value, a key with children is a directory (its value is
empty). A write goes to a temporary file renamed into place, so a reader
sees the old value or the new one, never half of one. A watch is inotify on
the directories under the watched path, awaited from trio.

Anyone who can write the directory can put anything in it, so nothing is
trusted: every path component is opened without following symlinks, a value
is a regular file of at most MAX_VALUE bytes of UTF-8 text, and whatever
breaks these rules is refused with a StoreError naming the key.
"""

import ctypes
import errno
import os
import re
import shutil
import stat
import struct

import trio

MAX_VALUE = 4096  # bytes of a value: xenstored's XENSTORE_PAYLOAD_MAX
MAX_PATH = 3072  # characters of a path: XENSTORE_ABS_PATH_MAX
MAX_WATCHED_DIRS = 1024  # directories one watch follows at most
_COMPONENT = re.compile(r"[A-Za-z0-9_@-]+")  # xenstored's characters, but for '/'; never a dot first
ENV = "RUMPNET_XENSTORE"


class StoreError(OSError):
    """A key that cannot be read or written, with the errno xenstored would give."""


def default_root():
    """Where the store lives when neither --xenstore nor RUMPNET_XENSTORE says."""
    given = os.environ.get(ENV)
    if given:
        return given
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return os.path.join(runtime, "rumpnet", "xenstore")
    return os.path.join("/tmp", f"rumpnet-{os.getuid()}", "xenstore")


def split(path):
    """A key path ("/local/domain/0") as its components; StoreError when it is not one."""
    if not isinstance(path, str) or not path.startswith("/") or len(path) > MAX_PATH:
        raise StoreError(errno.EINVAL, f"{path!r}: not a key path (/name/name..., at most {MAX_PATH} characters)")
    parts = [p for p in path.split("/") if p]
    for part in parts:
        if not _COMPONENT.fullmatch(part):
            raise StoreError(errno.EINVAL, f"{path}: {part!r} is not a key name (letters, digits, _ - @)")
    return parts


def join(*parts):
    return "/" + "/".join(str(p).strip("/") for p in parts if str(p).strip("/"))


class XenStore:
    """The tree under one root directory; every method takes a key path such as /local/domain/0."""

    def __init__(self, root):
        self.root = os.path.abspath(root)

    def ensure(self):
        """Make the root (and its parents) if missing; StoreError if it cannot be used."""
        try:
            os.makedirs(self.root, mode=0o755, exist_ok=True)
            fd = self._open_dir([], create=False)
            os.close(fd)
        except OSError as e:
            code = errno.ENOTDIR if e.errno == errno.EEXIST else e.errno  # a file where the directory should be
            raise StoreError(code, f"{self.root}: cannot use as a XenStore: {os.strerror(code)}") from None

    # -- walking without following links ----------------------------------------------

    def _open_dir(self, parts, create=False):
        """A descriptor of the directory of parts, each component opened with O_NOFOLLOW."""
        try:
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError as e:
            raise StoreError(e.errno, f"{self.root}: {os.strerror(e.errno)}") from None
        try:
            for n, part in enumerate(parts):
                if create:
                    try:
                        os.mkdir(part, 0o755, dir_fd=fd)
                    except FileExistsError:
                        pass
                try:
                    child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                except OSError as e:
                    where = join(*parts[:n + 1])
                    if e.errno in (errno.ENOTDIR, errno.ELOOP):
                        raise StoreError(errno.ENOTDIR, f"{where}: has a value, not children "
                                                        "(or is not a key: a link or a special file)") from None
                    raise StoreError(e.errno, f"{where}: {os.strerror(e.errno)}") from None
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd

    # -- the operations -----------------------------------------------------------------

    def read(self, path):
        """The value of a key, as text; StoreError (ENOENT when it does not exist)."""
        parts = split(path)
        if not parts:
            return ""
        parent = self._open_dir(parts[:-1])
        try:
            try:
                fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=parent)
            except OSError as e:
                if e.errno == errno.ELOOP:
                    raise StoreError(errno.EINVAL, f"{path}: a symbolic link, not a key") from None
                raise StoreError(e.errno, f"{path}: {os.strerror(e.errno)}") from None
        finally:
            os.close(parent)
        try:
            info = os.fstat(fd)
            if stat.S_ISDIR(info.st_mode):
                return ""
            if not stat.S_ISREG(info.st_mode):
                raise StoreError(errno.EINVAL, f"{path}: not a key (a special file)")
            data = os.read(fd, MAX_VALUE + 1)
        finally:
            os.close(fd)
        if len(data) > MAX_VALUE:
            raise StoreError(errno.E2BIG, f"{path}: value longer than {MAX_VALUE} bytes")
        try:
            text = data.decode()
        except UnicodeDecodeError:
            raise StoreError(errno.EILSEQ, f"{path}: value is not UTF-8 text") from None
        if "\0" in text:
            raise StoreError(errno.EILSEQ, f"{path}: value holds a NUL byte")
        return text

    def write(self, path, value):
        """Set a key (making its parents), atomically: a temporary file renamed over the old value."""
        parts = split(path)
        data = value.encode() if isinstance(value, str) else bytes(value)
        if not parts:
            raise StoreError(errno.EISDIR, "/: the root has no value")
        if len(data) > MAX_VALUE or b"\0" in data:
            raise StoreError(errno.E2BIG if len(data) > MAX_VALUE else errno.EINVAL,
                             f"{path}: a value is at most {MAX_VALUE} bytes of text without NUL")
        parent = self._open_dir(parts[:-1], create=True)
        temporary = f".new-{os.getpid()}-{os.urandom(4).hex()}"
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=parent)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            try:
                os.rename(temporary, parts[-1], src_dir_fd=parent, dst_dir_fd=parent)
            except OSError as e:
                os.unlink(temporary, dir_fd=parent)
                what = "has children" if e.errno in (errno.EISDIR, errno.ENOTEMPTY) else os.strerror(e.errno)
                raise StoreError(e.errno, f"{path}: {what}") from None
        finally:
            os.close(parent)

    def mkdir(self, path):
        """Make a key with no value that can hold children (xenstore-write's parents, `xenstore-mkdir`)."""
        os.close(self._open_dir(split(path), create=True))

    def ls(self, path):
        """The names of a key's children, sorted; what is not a key (a dot file, a link) is left out."""
        fd = self._open_dir(split(path))
        try:
            names = os.listdir(fd)
        finally:
            os.close(fd)
        return sorted(n for n in names if _COMPONENT.fullmatch(n))

    def is_dir(self, path):
        try:
            os.close(self._open_dir(split(path)))
            return True
        except StoreError:
            return False

    def get(self, path, default=None):
        """read(), or default when the key is missing or unreadable (for the drivers' polling)."""
        try:
            return self.read(path)
        except StoreError:
            return default

    def rm(self, path):
        """Remove a key and everything under it; a missing key is not an error (xenstore-rm)."""
        parts = split(path)
        if not parts:
            raise StoreError(errno.EINVAL, "/: the root cannot be removed")
        try:
            parent = self._open_dir(parts[:-1])
        except StoreError as e:
            if e.errno == errno.ENOENT:
                return
            raise
        try:
            for _ in range(10):  # a node may be writing under it meanwhile: its temporary files come and go
                try:
                    os.unlink(parts[-1], dir_fd=parent)
                    return
                except FileNotFoundError:
                    return
                except IsADirectoryError:
                    pass
                try:
                    shutil.rmtree(parts[-1], dir_fd=parent)  # fd-based: follows no link inside
                    return
                except OSError as e:
                    if e.errno not in (errno.ENOENT, errno.ENOTEMPTY):
                        raise StoreError(e.errno, f"{path}: cannot remove: {os.strerror(e.errno)}") from None
            raise StoreError(errno.EBUSY, f"{path}: cannot remove: keys keep appearing under it")
        finally:
            os.close(parent)

    def walk(self, path, limit=10000):
        """(path, value) of a key and every key under it, depth first, at most limit of them."""
        stack = [path]
        while stack and limit > 0:
            key = stack.pop()
            limit -= 1
            try:
                yield key, self.read(key)
            except StoreError as e:
                yield key, e
                continue
            if self.is_dir(key):
                stack.extend(join(key, name) for name in reversed(self.ls(key)))

    def watch(self, path):
        return Watch(self, path)


# -- watches -----------------------------------------------------------------------------

IN_MODIFY = 0x002
IN_ATTRIB = 0x004
IN_CLOSE_WRITE = 0x008
IN_MOVED_FROM = 0x040
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_IGNORED = 0x8000
IN_ONLYDIR = 0x01000000
IN_DONT_FOLLOW = 0x02000000
_MASK = IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_DELETE_SELF | IN_ATTRIB
_EVENT = struct.Struct("iIII")
_BUFFER = 64 * 1024

_libc = ctypes.CDLL(None, use_errno=True)
_libc.inotify_init1.argtypes = [ctypes.c_int]
_libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]


class Watch:
    """xenstored's watch on a path: wakes for any change to it or to a key under it.

    inotify watches one directory at a time, so the watch follows every
    directory under the path (at most MAX_WATCHED_DIRS) and the nearest one
    above it that exists, and looks again whenever one is made or removed.
    As in Xen, the first `changes()` reports the path itself at once.
    """

    def __init__(self, store, path):
        self.store = store
        self.path = path
        self.parts = split(path)
        self.fd = _libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            err = ctypes.get_errno()
            raise StoreError(err, f"inotify_init1: {os.strerror(err)}")
        self.dirs = {}  # watch descriptor -> key path of the directory
        self.first = True
        self._follow()

    def _add(self, key):
        where = os.path.join(self.store.root, *split(key))
        wd = _libc.inotify_add_watch(self.fd, os.fsencode(where), _MASK | IN_ONLYDIR | IN_DONT_FOLLOW)
        if wd >= 0:
            self.dirs[wd] = key
        return wd >= 0

    def _follow(self):
        """Watch the nearest existing directory at or above the path, and every one under it."""
        for depth in range(len(self.parts), -1, -1):
            key = join(*self.parts[:depth])
            if self.store.is_dir(key):
                break
        self._add(key)
        if depth < len(self.parts):
            return
        pending = [key]
        while pending and len(self.dirs) < MAX_WATCHED_DIRS:
            key = pending.pop()
            try:
                names = self.store.ls(key)
            except StoreError:
                continue
            for name in names:
                child = join(key, name)
                if self.store.is_dir(child) and self._add(child):
                    pending.append(child)

    def _under(self, key):
        parts = split(key)
        return parts[:len(self.parts)] == self.parts

    def _read_events(self):
        """The key paths the queued events name (under the watched path), following new directories."""
        changed, rescan = [], False
        while True:
            try:
                data = os.read(self.fd, _BUFFER)
            except BlockingIOError:
                break
            offset = 0
            while offset + _EVENT.size <= len(data):
                wd, mask, _, length = _EVENT.unpack_from(data, offset)
                name = data[offset + _EVENT.size:offset + _EVENT.size + length].rstrip(b"\0").decode(errors="replace")
                offset += _EVENT.size + length
                if mask & IN_IGNORED:
                    self.dirs.pop(wd, None)
                    continue
                if wd not in self.dirs or (name and not _COMPONENT.fullmatch(name)):
                    continue  # a temporary file of a write, or a name that is not a key
                if mask & (IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE_SELF):
                    rescan = True
                key = join(self.dirs[wd], name) if name else self.dirs[wd]
                if self._under(key) and key not in changed:
                    changed.append(key)
        if rescan:
            before = set(self.dirs.values())
            self._follow()
            if not changed and set(self.dirs.values()) != before:
                changed.append(self.path)  # the path (or a directory on the way to it) appeared or went
        return changed

    async def changes(self):
        """The keys changed since the last call (the watched path itself the first time); waits for one."""
        if self.first:
            self.first = False
            return [self.path]
        while True:
            changed = self._read_events()
            if changed:
                return changed
            await trio.lowlevel.wait_readable(self.fd)

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
