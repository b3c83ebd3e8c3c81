"""The Binance API key and secret: where they come from, how only the gateway gets them (cli.md, "Binance endpoints").

They come from `BINANCE_API_KEY` and `BINANCE_API_SECRET`, or from a secrets
file of mode 0600 (TOML: `api_key = "..."`, `api_secret = "..."`); the file
wins when given. Anything else is refused with a `SecretsError` that says what
is wrong and what to do, and never shows the secret.

Only the gateway may hold them. Deleting them from `os.environ` is not
enough: /proc/PID/environ shows the block a process was exec'd with, and
every forked child shows that same block. So the CLI, once it has read the
keys, re-execs itself (same pid, same command line) with an environment
without them, and hands them over in a memfd whose number is in
`NAIVE_MP_KEYS_FD`. The supervisor keeps that descriptor and passes it in
`keep_fds` to the gateway child alone; every other child closes it
(`process.close_inherited_fds`). The gateway reads it with `take`, from
offset 0 each time, so a restarted gateway reads it again.

Decisions:
- A symlinked secrets file is followed (secret mounts and dotfile managers
  use links); the checks apply to what was opened, by fstat on the open
  descriptor, so nothing can be swapped between the check and the read.
- `prepare` always re-execs once the keys are read, from the environment or a
  file: the image that then becomes the supervisor, and that every child forks
  from, never read the secret (it only checks the descriptor is ours). A second
  interpreter start (~0.1 s) is the price.
"""

import fcntl
import json
import os
import re
import shlex
import stat
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, NoReturn

ENV_KEY = "BINANCE_API_KEY"
ENV_SECRET = "BINANCE_API_SECRET"
FD_ENV = "NAIVE_MP_KEYS_FD"

FILE_KEYS = ("api_key", "api_secret")
MAX_LENGTH = 512  # Binance's are 64 characters; room for other exchanges' longer ones, not for a pasted file
MAX_FILE = 64 * 1024  # a secrets file is a few lines: anything bigger is the wrong file
MEMFD_NAME = "naive-mp-keys"
USAGE = f"set {ENV_KEY} and {ENV_SECRET}, or give a secrets file of mode 0600 (--secrets FILE)"


class SecretsError(Exception):
    """The keys cannot be had; the message says what is wrong and what to do, never the secret."""


@dataclass(frozen=True, repr=False)
class ApiKeys:
    """An API key and its secret; printing one shows the key's start, never the secret."""

    key: str
    secret: str

    def __post_init__(self):
        _check("API key", self.key)
        _check("API secret", self.secret)

    def __repr__(self) -> str:
        return f"ApiKeys(key={self.key[:4] + '…'!r}, secret=<hidden>)"

    __str__ = __repr__


def _check(what: str, value) -> None:
    # The messages describe the value, never quote it: it may be the secret.
    if not isinstance(value, str):
        raise SecretsError(f"the {what} must be a string, not {type(value).__name__}")
    if not value:
        raise SecretsError(f"the {what} is empty")
    if len(value) > MAX_LENGTH:
        raise SecretsError(f"the {what} is {len(value)} characters long (at most {MAX_LENGTH})")
    if not all("!" <= char <= "~" for char in value):
        raise SecretsError(f"the {what} holds whitespace or a character that is not printable ASCII "
                           f"(a stray newline or space when it was pasted?)")


def load(environ: Mapping[str, str], secrets_file: Path | None = None) -> ApiKeys:
    """The keys from `secrets_file` when given, else from the environment; SecretsError if neither has them."""
    if secrets_file is not None:
        return _from_file(Path(secrets_file))
    key, secret = environ.get(ENV_KEY), environ.get(ENV_SECRET)
    if key is None and secret is None:
        raise SecretsError(f"no API key: {USAGE}")
    if key is None or secret is None:
        given, missing = (ENV_KEY, ENV_SECRET) if secret is None else (ENV_SECRET, ENV_KEY)
        raise SecretsError(f"{given} is set but {missing} is not: set both, or neither and give --secrets FILE")
    try:
        return ApiKeys(key, secret)
    except SecretsError as exc:
        raise SecretsError(f"{ENV_KEY}/{ENV_SECRET}: {exc}") from None


def _from_file(path: Path) -> ApiKeys:
    table = _parse(path, _read_private(path))
    unknown = sorted(set(table) - set(FILE_KEYS))
    if unknown:
        raise SecretsError(f"{path}: unknown key(s) {', '.join(unknown)} (known: {', '.join(FILE_KEYS)})")
    missing = [name for name in FILE_KEYS if name not in table]
    if missing:
        raise SecretsError(f"{path}: no {' and no '.join(missing)} (the file holds "
                           f'api_key = "..." and api_secret = "...")')
    try:
        return ApiKeys(table["api_key"], table["api_secret"])
    except SecretsError as exc:
        raise SecretsError(f"{path}: {exc}") from None


def _read_private(path: Path) -> bytes:
    """The file's bytes, once fstat on the open descriptor shows a regular file of ours that nobody else can open."""
    try:
        # O_NONBLOCK: opening a fifo must not wait for a writer; it is refused below like any non-file.
        fd = os.open(path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise SecretsError(f"cannot open the secrets file {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SecretsError(f"{path} is not a regular file ({_kind(info.st_mode)}): give the secrets file itself")
        if info.st_uid != os.geteuid():
            raise SecretsError(f"{path} belongs to uid {info.st_uid}, not to this user (uid {os.geteuid()}): "
                               f"use a secrets file of your own")
        if info.st_mode & 0o077:
            raise SecretsError(f"{path} {_exposure(info.st_mode)} (mode {stat.S_IMODE(info.st_mode):04o}): "
                               f"chmod 600 {shlex.quote(str(path))}")
        data = os.read(fd, MAX_FILE + 1)
    except OSError as exc:
        raise SecretsError(f"cannot read the secrets file {path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_FILE:
        raise SecretsError(f"{path} is over {MAX_FILE // 1024} KiB: not a secrets file")
    return data


def _kind(mode: int) -> str:
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a fifo"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))
    return next((name for test, name in kinds if test(mode)), "not a file")


def _exposure(mode: int) -> str:
    """'can be read by others', 'can be read and written by its group'...: why the mode is refused."""
    verbs = [verb for verb, bits in (("read", 0o044), ("written", 0o022), ("run", 0o011)) if mode & bits]
    who = [name for name, bits in (("its group", 0o070), ("others", 0o007)) if mode & bits]
    return f"can be {' and '.join(verbs)} by {' and '.join(who)}"


def _parse(path: Path, data: bytes) -> dict:
    # Neither decoder's message is shown whole: both may quote a character of the secret.
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise SecretsError(f"{path} is not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        where = re.search(r"\(at (line \d+, column \d+|end of document)\)", str(exc))
        raise SecretsError(f"{path} is not valid TOML{f' (at {where[1]})' if where else ''}: "
                           f'it should hold api_key = "..." and api_secret = "..."') from None


def hand_off(keys: ApiKeys) -> int:
    """A memfd holding `keys`, sealed read-only and inheritable (it must survive execve); returns its number."""
    fd = os.memfd_create(MEMFD_NAME, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        os.write(fd, json.dumps({"api_key": keys.key, "api_secret": keys.secret}).encode())
        _seal(fd)
        os.set_inheritable(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _seal(fd: int) -> None:
    # Sealed, the gateway cannot alter what a restarted gateway will read. Skipped where fcntl lacks seals (< 3.8).
    if hasattr(fcntl, "F_ADD_SEALS"):
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW
                    | fcntl.F_SEAL_WRITE)


def handoff_fd(environ: Mapping[str, str]) -> int | None:
    """The descriptor number in NAIVE_MP_KEYS_FD (for the gateway's keep_fds), None when it is unset."""
    value = environ.get(FD_ENV)
    if value is None:
        return None
    if not re.fullmatch(r"[0-9]{1,9}", value) or int(value) < 3:
        raise SecretsError(f"{FD_ENV}={value!r} is not a descriptor number of ours: unset it "
                           f"(naive-mp sets it itself when it hands the keys to the gateway)")
    return int(value)


def _checked_fd(environ: Mapping[str, str]) -> int | None:
    """The hand-off's descriptor, checked to be our memfd without reading what it holds."""
    fd = handoff_fd(environ)
    if fd is None:
        return None
    # The number may have been reused for something else (a closed hand-off): read only our memfd.
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        raise SecretsError(f"{FD_ENV}={fd}: no such open descriptor in this process "
                           f"(only the gateway keeps the key hand-off)") from None
    if not target.startswith(f"/memfd:{MEMFD_NAME}"):
        raise SecretsError(f"{FD_ENV}={fd}: descriptor {fd} is not the key hand-off (it is {target})")
    return fd


def take(environ: Mapping[str, str]) -> ApiKeys | None:
    """In the gateway: the keys handed over in NAIVE_MP_KEYS_FD, None if none were; read from offset 0 each time."""
    fd = _checked_fd(environ)
    if fd is None:
        return None
    try:
        data = os.pread(fd, 4 * MAX_LENGTH, 0)
        keys = json.loads(data)
        return ApiKeys(keys["api_key"], keys["api_secret"])
    except SecretsError as exc:
        raise SecretsError(f"{FD_ENV}={fd}: {exc}") from None
    except (OSError, ValueError, KeyError, TypeError):
        # Not the exception's text: a JSON error may quote the content.
        raise SecretsError(f"{FD_ENV}={fd}: the key hand-off cannot be read back (damaged?)") from None


def without_keys(environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` without the keys nor the hand-off's number: for any process we start (its fds are not ours to give)."""
    return {name: value for name, value in environ.items() if name not in (ENV_KEY, ENV_SECRET, FD_ENV)}


def reexec_without_keys(keys: ApiKeys, argv: list[str] | None = None, environ: Mapping[str, str] | None = None
                        ) -> NoReturn:
    """Become the same command again (same pid) with the keys out of the environment and in a memfd.

    `argv` (its first item the program's path) defaults to this interpreter
    with the original command line (`sys.orig_argv`: `-m naive_mp ...`, a
    console script's path, the interpreter's flags). `environ` defaults to
    os.environ. Refused (SecretsError) in a process that was already
    re-exec'd: NAIVE_MP_KEYS_FD set and no keys left in its environment.
    """
    environ = os.environ if environ is None else environ
    if FD_ENV in environ and ENV_KEY not in environ and ENV_SECRET not in environ:
        raise SecretsError(f"the keys were handed off already ({FD_ENV} is set): no second re-exec")
    if argv is None and not sys.executable:
        raise SecretsError("cannot re-run naive-mp without the keys in its environment: "
                           "the Python interpreter's path is unknown")
    args = list(argv) if argv is not None else [sys.executable, *sys.orig_argv[1:]]
    fd = hand_off(keys)
    env = without_keys(environ)
    env[FD_ENV] = str(fd)
    # Buffered output would be lost with this process image.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
    try:
        os.execve(args[0], args, env)
    except OSError:
        os.close(fd)
        raise


def prepare(secrets_file: Path | None = None, environ=os.environ) -> None:
    """In the CLI before any child: the keys read, out of the environment, and handed off in NAIVE_MP_KEYS_FD.

    Returns once `environ[FD_ENV]` names the hand-off, in the new process image
    the re-exec started (the command having started over). SecretsError when
    there are no keys.
    """
    has_env_keys = ENV_KEY in environ or ENV_SECRET in environ
    if FD_ENV in environ and not has_env_keys:
        # The re-exec'd process (or a second call): the hand-off is the source; no exec again. Only
        # checked to be ours, never read: this process (the supervisor) never holds the secret.
        fd = _checked_fd(environ)  # a stale or bogus NAIVE_MP_KEYS_FD is refused here, in the CLI
        os.set_inheritable(fd, False)  # forked children get it; exec'd ones must not
        return
    # Whether from the environment or a file, the secret is now in this process's memory: start
    # over in a fresh image, which every child forks from, with only the descriptor.
    reexec_without_keys(load(environ, secrets_file), environ=environ)
