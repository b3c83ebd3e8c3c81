"""Read Binance public-data spot trade files ("tapes") fast and strictly.

A tape is a ``.csv`` (or a ``.zip`` holding exactly one csv) with the
columns ``id,price,qty,quoteQty,time,isBuyerMaker,isBestMatch``.
:func:`read_tape` turns it into a :class:`Tape` of int64 arrays.

Two parsers share one grammar.  The fast one is vectorised numpy over the
raw bytes, accepts only the canonical Binance layout and still checks every
byte; on anything else it returns None and the slow line-by-line parser
reads the whole file: it accepts the legitimate variants and names the
first bad line exactly.  A fast-path miss costs time, never a result.

Grammar (both parsers):

* an optional first line starting with an ASCII letter (after an optional
  UTF-8 BOM) is a header and is skipped; a BOM before a trade is an error;
* each other line is 7 comma-separated fields, ``\\n`` or ``\\r\\n`` ended;
  blank lines are allowed only at the end of the file;
* id and time are unsigned integers; price, qty and quoteQty are unsigned
  decimals ``[0-9]+(.[0-9]+)?`` with no exponent; price must be > 0;
* the booleans are ``True``/``False``/``true``/``false``;
* times below 10**14 are milliseconds, others microseconds; one file must
  not mix the two; trade ids must strictly increase from line to line
  (a tape out of order is refused, never sorted).
"""

from __future__ import annotations

import dataclasses
import decimal
import os
import re
import stat
import zipfile
import zlib
from pathlib import Path

import numpy as np

_INT64_MAX = 2**63 - 1
_US_FROM = 10**14  # a time at or above this is in microseconds (year 5138 in ms)
_FIELDS = ("id", "price", "qty", "quoteQty", "time", "isBuyerMaker", "isBestMatch")
_BOOLS = {"True", "False", "true", "false"}
_UINT = re.compile(r"[0-9]+\Z")
_DECIMAL = re.compile(r"([0-9]+)(?:\.([0-9]+))?\Z")
_SIGNED = re.compile(r"[+-][0-9]+(?:\.[0-9]+)?\Z")
_EXPONENT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][+-]?[0-9]+\Z")
_SYMBOL = re.compile(r"([A-Z0-9]+)-trades-")
_BOM = b"\xef\xbb\xbf"
# The fast path parses in blocks of about this many bytes: its temporaries
# then stay small and get reused, which matters because touching fresh
# memory is what costs most on small VMs, not the arithmetic.
_BLOCK = 1 << 20


class TapeError(ValueError):
    """A tape that cannot be read: ``<file>:<line>: <what>`` or ``<file>: <what>``.

    For a zip, ``<file>`` is the zip and ``<line>`` the line of the csv inside.
    """


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class Tape:
    """The trades of one tape, in trade-id order, as read-only int64 arrays.

    ``prices[i] / 10**price_decimals`` is the exact price of trade ``ids[i]``;
    ``times_us`` are trade times in microseconds.
    """

    path: str
    symbol: str
    ids: np.ndarray
    prices: np.ndarray
    price_decimals: int
    times_us: np.ndarray

    def __len__(self) -> int:
        """Number of trades."""
        return len(self.ids)

    def price(self, i: int) -> decimal.Decimal:
        """Exact price of trade ``i``, with ``price_decimals`` places (``Decimal('0.43849000')``)."""
        digits = tuple(int(c) for c in str(int(self.prices[i])))
        return decimal.Decimal((0, digits, -self.price_decimals))


def symbol_from_path(path) -> str:
    """Symbol from a Binance file name: ``XRPUSDT-trades-2019-06-01.zip`` -> ``XRPUSDT``."""
    match = _SYMBOL.match(Path(path).name)
    if not match:
        raise TapeError(f"{path}: cannot tell the symbol from the file name "
                        "(expected SYMBOL-trades-....csv or .zip); pass --symbol")
    return match.group(1)


def read_tape(path, symbol: str | None = None) -> Tape:
    """Read a ``.csv`` or single-csv ``.zip`` tape; raise :class:`TapeError` if it is malformed.

    ``symbol`` defaults to the one in the file name (see :func:`symbol_from_path`).
    """
    name = str(path)
    symbol = symbol or symbol_from_path(path)
    buf = _load(name)
    start, first_lineno = _skip_header(name, buf)
    end = len(buf)
    while end > start and buf[end - 1] in b"\r\n":  # trailing blank lines are fine
        end -= 1
    if end == start:
        raise TapeError(f"{name}: no trades")
    parsed = _parse_fast(buf, start, end) or _parse_slow(name, buf, start, end, first_lineno)
    ids, prices, decimals, times = parsed
    _check_id_order(name, first_lineno, ids)
    for array in (ids, prices, times):
        array.flags.writeable = False
    return Tape(name, symbol, ids, prices, decimals, times)


# --- loading ---------------------------------------------------------------


def _load(name: str) -> bytes:
    """The csv bytes of a tape, decompressed once if it is a zip."""
    try:
        with _open_regular(name) as f:
            if not name.lower().endswith(".zip"):
                return f.read()
            return _unzip(name, f)
    except FileNotFoundError:
        raise TapeError(f"{name}: no such file") from None
    except OSError as e:
        raise TapeError(f"{name}: cannot read it ({e.strerror or e})") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as e:
        raise TapeError(f"{name}: not a readable zip file ({e})") from None


def _open_regular(name: str):
    """The file, opened for reading; anything but a regular file is refused before a byte is read.

    A FIFO would block (open itself waits for a writer, hence O_NONBLOCK),
    a device may never end, and `start` reads each tape twice (the check,
    then the streamer), which a pipe cannot give.
    """
    fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise TapeError(f"{name}: cannot read it: not a regular file but {_kind(mode)}; "
                            "a tape must be a .csv or .zip file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _kind(mode: int) -> str:
    kinds = {stat.S_ISDIR: "a folder", stat.S_ISFIFO: "a FIFO (named pipe)", stat.S_ISCHR: "a character device",
             stat.S_ISBLK: "a block device", stat.S_ISSOCK: "a socket"}
    return next((kind for test, kind in kinds.items() if test(mode)), "a special file")


def _unzip(name: str, f) -> bytes:
    """The one csv inside a zip."""
    with zipfile.ZipFile(f) as archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        if len(members) != 1:
            raise TapeError(f"{name}: zip holds {len(members)} files, expected exactly one csv")
        return _inflate(archive, members[0])


def _inflate(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> bytes:
    """A member's bytes; deflate in one zlib call (ZipFile.read's chunks cost ~10 ms on 8 MB)."""
    if member.compress_type != zipfile.ZIP_DEFLATED or member.flag_bits & 1:
        return archive.read(member)  # stored, bzip2, lzma or encrypted: rare, let zipfile cope
    archive.fp.seek(member.header_offset)
    local = archive.fp.read(30)
    if local[:4] != b"PK\x03\x04":
        raise zipfile.BadZipFile(f"bad local header for {member.filename}")
    skip = int.from_bytes(local[26:28], "little") + int.from_bytes(local[28:30], "little")
    archive.fp.seek(member.header_offset + 30 + skip)
    data = zlib.decompress(archive.fp.read(member.compress_size), -15, member.file_size)
    if len(data) != member.file_size or zlib.crc32(data) != member.CRC:
        raise zipfile.BadZipFile(f"{member.filename} is corrupt (size or CRC mismatch)")
    return data


def _skip_header(name: str, buf: bytes) -> tuple[int, int]:
    """(offset of the first data line, its 1-based line number)."""
    start = len(_BOM) if buf.startswith(_BOM) else 0
    if start < len(buf) and chr(buf[start]).isascii() and chr(buf[start]).isalpha():
        newline = buf.find(b"\n")
        return (len(buf) if newline < 0 else newline + 1), 2
    if start:  # a BOM before data: refuse rather than silently eat a trade
        raise TapeError(f"{name}:1: unexpected byte-order mark before the first trade")
    return 0, 1


# --- slow path: exact, line by line -----------------------------------------


def _parse_slow(name, buf, start, end, first_lineno):
    """Parse line by line; the reference for what is valid, and the source of error messages."""
    ids, int_parts, fracs, times = [], [], [], []
    in_us = None
    for offset, raw in enumerate(buf[start:end].split(b"\n")):
        lineno = first_lineno + offset
        trade_id, int_part, frac, time = _parse_line(name, lineno, raw)
        if in_us is None:
            in_us, unit_line = time >= _US_FROM, lineno
        elif (time >= _US_FROM) != in_us:
            unit = ("milliseconds", "microseconds")
            raise TapeError(f"{name}:{lineno}: time {time} is in {unit[not in_us]} "
                            f"but line {unit_line}'s is in {unit[in_us]}")
        ids.append(trade_id)
        int_parts.append(int_part)
        fracs.append(frac)
        times.append(time if in_us else time * 1000)
    decimals = max(map(len, fracs))
    prices = [int(i + f.ljust(decimals, "0")) for i, f in zip(int_parts, fracs)]
    k = next((k for k, price in enumerate(prices) if price > _INT64_MAX), None)
    if k is not None:
        raise TapeError(f"{name}:{first_lineno + k}: price {int_parts[k]}.{fracs[k]} "
                        f"does not fit in 64 bits with {decimals} decimals")
    return np.array(ids, np.int64), np.array(prices, np.int64), decimals, np.array(times, np.int64)


def _parse_line(name, lineno, raw: bytes):
    """(id, price integer digits, price fraction digits, time as written) of one line."""
    text = raw.decode("latin-1")  # never fails; non-ASCII then fails the grammar
    if text.endswith("\r"):
        text = text[:-1]
    where = f"{name}:{lineno}"
    if not text.strip():
        raise TapeError(f"{where}: blank line before the end of the tape")
    fields = text.split(",")
    if len(fields) != len(_FIELDS):
        raise TapeError(f"{where}: expected {len(_FIELDS)} fields, got {len(fields)}: {text[:80]!a}")
    trade_id = _uint(where, "id", fields[0])
    int_part, frac = _decimal(where, "price", fields[1])
    if not (int_part + frac).strip("0"):
        raise TapeError(f"{where}: price {fields[1]!a} is zero; prices must be positive")
    for column in (2, 3):
        _decimal(where, _FIELDS[column], fields[column])
    time = _uint(where, "time", fields[4])
    for column in (5, 6):
        if fields[column] not in _BOOLS:
            raise TapeError(f"{where}: {_FIELDS[column]} {fields[column]!a} is not True/False")
    return trade_id, int_part, frac, time


def _uint(where, field, text):
    """An unsigned integer field that fits int64."""
    if not _UINT.match(text):
        raise TapeError(f"{where}: {field} {text!a} is not an unsigned integer")
    value = int(text)
    if value > _INT64_MAX:
        raise TapeError(f"{where}: {field} {text} does not fit in 64 bits")
    return value


def _decimal(where, field, text):
    """(integer digits, fraction digits) of an unsigned decimal field."""
    match = _DECIMAL.match(text)
    if match:
        return match.group(1), match.group(2) or ""
    if _EXPONENT.match(text):
        problem = "has an exponent; plain decimals only"
    elif _SIGNED.match(text):
        problem = "is negative" if text.startswith("-") else "has a sign; plain decimals only"
        if field == "price":
            problem += "; prices must be positive"
    else:
        problem = "is not a decimal number"
    raise TapeError(f"{where}: {field} {text!a} {problem}")


def _check_id_order(name, first_lineno, ids) -> None:
    """Trade ids must strictly increase, line after line.

    Never sorted: a tape out of order is edited or broken (one edited id
    once turned a day's 22 orders into 239), and its line is what to fix.
    One vectorised comparison keeps the fast path fast.
    """
    if len(ids) < 2 or bool((ids[1:] > ids[:-1]).all()):
        return
    k = int(np.argmax(ids[1:] <= ids[:-1])) + 1  # the first line whose id does not increase
    lineno, before, after = first_lineno + k, int(ids[k - 1]), int(ids[k])
    if after == before:
        raise TapeError(f"{name}:{lineno}: duplicate trade id {after} (first on line {lineno - 1})")
    raise TapeError(f"{name}:{lineno}: trade id {after} is out of order: line {lineno - 1} has {before}; "
                    "a tape's ids must increase from line to line")


# --- fast path: vectorised, canonical layout only ---------------------------

_NL, _CR, _COMMA, _DOT, _ZERO = 10, 13, 44, 46, 48
_TRUE, _TRUE_LOWER, _ALSE = (int.from_bytes(w, "little") for w in (b"True", b"true", b"alse"))
# _KEEP[c] keeps the last c bytes of a little-endian 8-byte load.
_KEEP = np.array([((1 << 8 * c) - 1) << 8 * (8 - c) for c in range(9)], dtype=np.uint64)


def _parse_fast(buf: bytes, start: int, end: int):
    """(ids, prices, decimals, times_us) of a canonical tape, or None to defer to the slow path."""
    newline = buf.find(b"\n", start, end)
    # The 8-byte loads reach up to 7 bytes before a field; starting at the
    # second data line guarantees those bytes exist.
    if newline < 0 or newline + 1 < 8:
        return None
    try:
        first = _parse_line("", 0, buf[start:newline])
    except TapeError:
        return None
    a = np.frombuffer(buf, np.uint8)
    words = np.ndarray((len(buf) - 7,), "<u8", buf, 0, (1,))  # an 8-byte load at every offset
    quads = np.ndarray((len(buf) - 3,), "<u4", buf, 0, (1,))
    blocks, begin = [], newline + 1
    while begin < end:
        stop = buf.find(b"\n", min(begin + _BLOCK, end), end)
        stop = end if stop < 0 else stop + 1
        block = _fast_block(a, words, quads, begin, stop)
        if block is None:
            return None
        blocks.append(block)
        begin = stop
    return _join(first, blocks)


def _join(first, blocks):
    """Concatenate the first line and the blocks; None if price scales or time units differ."""
    first_id, int_part, frac, first_time = first
    decimals = len(frac)
    first_price = int(int_part + frac)
    if first_price > _INT64_MAX or any(block[2] != decimals for block in blocks):
        return None  # mixed price scales are rare: the slow path rescales them

    def column(k, head):
        return np.concatenate([np.array([head], np.uint64)] + [b[k] for b in blocks]).view(np.int64)

    ids, prices, times = column(0, first_id), column(1, first_price), column(3, first_time)
    in_us = first_time >= _US_FROM
    if not ((times >= _US_FROM) == in_us).all():
        return None
    if not in_us:
        times *= 1000
    return ids, prices, decimals, times


def _fast_block(a, words, quads, s, e):
    """(ids, prices, decimals, raw times) of the whole lines in a[s:e], or None if not canonical."""
    region = a[s:e]
    line_end = np.flatnonzero(region == _NL)
    newlines = len(line_end)
    line_end += s
    if a[e - 1] != _NL:
        line_end = np.append(line_end, e)
    n = len(line_end)
    line_start = np.empty(n, line_end.dtype)
    line_start[0] = s
    line_start[1:] = line_end[:-1] + 1
    content_end = line_end - (a[line_end - 1] == _CR)
    commas = _positions(region, _COMMA, s, 6, n)
    dots = _positions(region, _DOT, s, 3, n)
    if commas is None or dots is None:
        return None
    c0, c1, c2, c3, c4, c5 = commas.T
    d0, d1, d2 = dots.T
    # With 6n commas and 3n dots in all, these orderings put exactly six
    # commas in every line and exactly one inner dot in each decimal field,
    # and make every numeric field non-empty.
    in_order = (line_start < c0) & (c0 + 1 < d0) & (d0 + 1 < c1) & (c1 + 1 < d1)
    in_order &= (d1 + 1 < c2) & (c2 + 1 < d2) & (d2 + 1 < c3) & (c3 + 1 < c4)
    maker_len, match_len = c5 - c4 - 1, content_end - c5 - 1
    if not (in_order.all() and _bools_ok(a, quads, c5, maker_len)):
        return None
    if not _bools_ok(a, quads, content_end, match_len):
        return None
    # Every byte that is not a separator, a dot, a CR or a boolean letter must
    # be a digit: counting the digits proves it without looking per field.
    crs = int((content_end < line_end).sum())
    expected = newlines + 9 * n + crs + int(maker_len.sum() + match_len.sum())
    if (e - s) - np.count_nonzero(np.subtract(region, np.uint8(_ZERO)) < 10) != expected:
        return None
    return _numbers(words, line_start, c0, d0, c1, c3, c4)


def _positions(region, byte, s, per_line, n):
    """Offsets of `byte` in region as an (n, per_line) array, or None if the count is off."""
    found = np.flatnonzero(region == byte)
    if found.size != per_line * n:
        return None
    found += s
    return found.reshape(n, per_line)


def _bools_ok(a, quads, end, length):
    """All fields ending at `end` with these lengths are True/False/true/false."""
    tail = quads[end - 4]
    four = (length == 4) & ((tail == _TRUE) | (tail == _TRUE_LOWER))
    five = (length == 5) & (tail == _ALSE) & ((a[end - 5] | 0x20) == ord("f"))
    return bool((four | five).all())


def _numbers(words, line_start, c0, d0, c1, c3, c4):
    """Parse id, price and time of validated lines; None if a field is too long for int64."""
    ids = _digits(words, c0, c0 - line_start)
    int_len, frac_len = d0 - c0 - 1, c1 - d0 - 1
    decimals = int(frac_len[0])
    # One scale per block (else the slow path), and digits that surely fit int64.
    if (frac_len != decimals).any() or int(int_len.max()) + decimals > 18:
        return None
    whole, frac = _digits(words, d0, int_len), _digits(words, c1, frac_len)
    times = _digits(words, c4, c4 - c3 - 1)
    if ids is None or whole is None or frac is None or times is None:
        return None
    whole *= np.uint64(10**decimals)
    whole += frac
    if not whole.all():  # a zero price
        return None
    return ids, whole, decimals, times


def _digits(words, end, length):
    """Values of the all-digit fields ending at `end`, up to 16 digits (else None)."""
    longest = int(length.max())
    if longest > 16:
        return None
    value = _swar(words, end - 8, np.minimum(length, 8))
    if longest > 8:
        # For short fields `end - 16` may go a few bytes before the buffer
        # (numpy wraps it); those loads are masked away entirely.
        high = _swar(words, end - 16, np.clip(length - 8, 0, 8))
        high *= np.uint64(10**8)
        value += high
    return value


def _swar(words, at, count):
    """The number in the last `count` digits of the 8 bytes at `at`: SWAR, 3 multiply steps."""
    v = words[at]
    v ^= np.uint64(0x3030303030303030)  # '0'..'9' -> 0..9, with no borrow between bytes
    v &= _KEEP[count]  # bytes before the field become leading zeros
    for shift, mask in ((8, 0x00FF00FF00FF00FF), (16, 0x0000FFFF0000FFFF), (32, 0xFFFFFFFF)):
        high = v >> np.uint64(shift)
        v *= np.uint64(10 ** (shift // 8))
        v += high
        v &= np.uint64(mask)
    return v
