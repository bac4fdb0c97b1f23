"""The desk's sealing keys, kept outside the database.

Where the keys come from, in order:

1. `VIGIL_SECRET_KEY`: one key, or several separated by commas, each the URL-safe base64 of
   32 random bytes (44 characters, `=` padding optional). The first key seals; every key
   opens what it sealed. Make one with
   `python3 -c "import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())"`.
2. Else the key file `vigil/secret.key` under `$XDG_CONFIG_HOME` (default `~/.config`): the
   same keys, one a line, first the one that seals. It is created with a new key the first
   time something is sealed, readable by its owner only (0600, in a folder 0700), and refused
   if anyone else may read it. A database that already holds sealed values refuses a new
   key (`data.sealing.guard_key_creation`): a lost key file is put back, never replaced.

A key is known by its id (`key_id`), a digest of the key that is stored beside every sealed
value, so a value names the key that opens it and keys can rotate (`vigil db rotate-key`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from data.errors import BadSetting, DatabaseError

KEY_ENV = "VIGIL_SECRET_KEY"
KEY_BYTES = 32


class SealingKeyError(DatabaseError):
    """A key that is missing, wrong or unsafe: the message names where it was looked for."""


class MalformedKey(SealingKeyError, BadSetting):
    """A key that is not the URL-safe base64 of 32 bytes."""


def key_id(key: bytes) -> str:
    """A short public name for a key: 12 hex digits of a digest that does not reveal it."""
    return hashlib.sha256(b"vigil sealing key id\0" + key).hexdigest()[:12]


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def encode_key(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode("ascii")


def decode_key(text: str, source: str) -> bytes:
    """One key from its URL-safe base64; a clear error names `source` and what was wrong."""
    word = text.strip()
    try:
        key = base64.urlsafe_b64decode(word + "=" * (-len(word) % 4))
    except (binascii.Error, ValueError):
        key = b""
        valid = False
    else:
        valid = base64.urlsafe_b64encode(key).rstrip(b"=") == word.rstrip("=").encode()
    if not valid or len(key) != KEY_BYTES:
        raise MalformedKey(
            f"{source}: expected a key as the URL-safe base64 of {KEY_BYTES} bytes "
            f"(44 characters), got {len(word)} characters that are not one"
        )
    return key


def default_key_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "vigil" / "secret.key"


@dataclass
class Keyring:
    """The keys that open sealed values; the first one seals.

    `source` names where they come from in every error. A keyring of a key file that does
    not exist yet creates the file (with a new key) the first time it must seal."""

    source: str
    path: Path | None = None
    _keys: list[bytes] | None = field(default=None, repr=False)
    _read_as: tuple[int, int, int] | None = field(default=None, repr=False)
    before_creating: Callable[[], None] | None = field(default=None, repr=False)
    """Called before the key file is created with a new key; raises to refuse."""

    @classmethod
    def of(cls, *keys: bytes, source: str = "the given key") -> Keyring:
        return cls(source=source, _keys=list(keys))

    @classmethod
    def from_environment(cls) -> Keyring:
        """`VIGIL_SECRET_KEY` if set, else the key file under the XDG config folder."""
        value = os.environ.get(KEY_ENV)
        if value is not None:
            words = [w for w in value.split(",") if w.strip()]
            if not words:
                raise MalformedKey(f"{KEY_ENV} is set but empty: give a key or unset it")
            return cls.of(*(decode_key(w, KEY_ENV) for w in words), source=KEY_ENV)
        path = default_key_file()
        return cls(source=f"the key file {path}", path=path)

    # -- reading ------------------------------------------------------------------------

    def keys(self) -> list[bytes]:
        """The keys, first the one that seals; empty while the key file does not exist.

        A key file is read again when it changes, so a console or engine left running
        seals with the new key as soon as `vigil db rotate-key` writes it."""
        if self.path is None:
            assert self._keys is not None
            return self._keys
        try:
            info = self.path.stat()
            seen: tuple[int, int, int] | None = (info.st_ino, info.st_mtime_ns, info.st_size)
        except OSError:
            seen = None
        if self._keys is None or seen != self._read_as:
            self._keys = _read_key_file(self.path, self.source)
            self._read_as = seen
        return self._keys

    def sealing_key(self) -> tuple[str, bytes]:
        """(id, key) of the key that seals, creating the key file on first use."""
        keys = self.keys()
        if not keys:
            assert self.path is not None
            if self.before_creating is not None:
                self.before_creating()
            _create_key_file(self.path, self.source)
            keys = self.keys()
        return key_id(keys[0]), keys[0]

    def opening_key(self, wanted: str) -> bytes:
        """The key with id `wanted`, or an error that says where it was looked for."""
        keys = self.keys()
        for key in keys:
            if key_id(key) == wanted:
                return key
        if not keys:
            raise SealingKeyError(
                f"no key to open sealed data: {KEY_ENV} is not set and {self.path} does not "
                f"exist (the data was sealed with key {wanted}; set {KEY_ENV} to that key or "
                "put back the key file)"
            )
        held = ", ".join(key_id(k) for k in keys)
        raise SealingKeyError(
            f"wrong key: the data was sealed with key {wanted}, but {self.source} holds "
            f"{held}; give the key it was sealed with"
        )

    # -- rotating -----------------------------------------------------------------------

    @property
    def writable(self) -> bool:
        """Whether rotation may write new keys (a key file; not the environment)."""
        return self.path is not None

    def put_first(self, key: bytes) -> None:
        """Make `key` the one that seals, keeping the others to open what they sealed."""
        self._rewrite([key, *(k for k in self.keys() if k != key)])

    def keep_only_first(self) -> list[bytes]:
        """Drop every key but the one that seals; returns the keys dropped."""
        keys = self.keys()
        self._rewrite(keys[:1])
        return keys[1:]

    def _rewrite(self, keys: list[bytes]) -> None:
        assert self.path is not None, "only a key file can be rewritten"
        _write_key_file(self.path, keys, self.source, replace=True)


def _read_key_file(path: Path, source: str) -> list[bytes]:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise SealingKeyError(f"{source}: cannot read it ({exc})") from exc
    if mode & 0o077:
        raise SealingKeyError(
            f"{source} may be read by others (mode {mode:04o}): the key must be its owner's "
            f"alone; run `chmod 600 {path}` if nobody else has read it, else rotate the key"
        )
    keys = [decode_key(line, source) for line in text.splitlines() if line.strip()]
    if not keys:
        raise SealingKeyError(f"{source} holds no key; put back the key or remove the empty file")
    return keys


def _create_key_file(path: Path, source: str) -> None:
    """A new key file with one new key, unless another process created one first."""
    _write_key_file(path, [new_key()], source, replace=False)


def _write_key_file(path: Path, keys: list[bytes], source: str, *, replace: bool) -> bool:
    """Write the keys whole or not at all (a 0600 file beside it, then a rename or a link);
    without `replace`, returns False when the file already exists."""
    body = "".join(encode_key(k) + "\n" for k in keys).encode("ascii")
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(draft, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        try:
            os.write(fd, body)
            os.fsync(fd)
        finally:
            os.close(fd)
        if replace:
            os.replace(draft, path)
            return True
        try:
            os.link(draft, path)
        except FileExistsError:
            return False
        finally:
            draft.unlink(missing_ok=True)
        return True
    except OSError as exc:
        draft.unlink(missing_ok=True)
        raise SealingKeyError(f"{source}: cannot write it ({exc.strerror or exc})") from exc
