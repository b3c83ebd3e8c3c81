"""read_tape: real Binance tapes, the tolerated variants, and every kind of bad line."""

import csv
import decimal
import io
import os
import random
import zipfile

import numpy as np
import pytest

from naive_mp.data import tapes as tape_module
from naive_mp.data.tapes import Tape, TapeError, read_tape, symbol_from_path

REAL_TAPES = [
    ("XRPUSDT-trades-2019-06-01.zip", "XRPUSDT", 117_859),
    ("XRPUSDT-trades-2019-05-26.zip", "XRPUSDT", 43_789),
    ("ETHUSDT-trades-2019-06-07.zip", "ETHUSDT", 51_816),
    ("BTCUSDT-trades-2024-08-08-excerpt.csv", "BTCUSDT", 19_904),
    ("ETHUSDT-trades-2024-08-08-excerpt.csv", "ETHUSDT", 14_515),
]


def reference_rows(path):
    """An independent, slow parse: csv module + Decimal, no numpy."""
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            text = archive.read(archive.namelist()[0]).decode()
    else:
        text = path.read_text()
    return [
        (int(row[0]), decimal.Decimal(row[1]), int(row[4]))
        for row in csv.reader(io.StringIO(text))
    ]


@pytest.mark.parametrize(("name", "symbol", "count"), REAL_TAPES)
def test_real_tape_matches_an_independent_parse(tape_path, name, symbol, count):
    path = tape_path(name)
    tape = read_tape(path)
    rows = reference_rows(path)
    assert (len(tape), len(rows)) == (count, count)
    assert tape.symbol == symbol and tape.path == str(path)
    assert tape.price_decimals == 8
    assert (np.diff(tape.ids) > 0).all()
    assert tape.price(0) == rows[0][1] and tape.price(count - 1) == rows[-1][1]
    assert str(tape.price(0)) == str(rows[0][1])  # same digits, trailing zeros included
    assert tape.ids.tolist() == [r[0] for r in rows]
    assert tape.prices.tolist() == [int(r[1].scaleb(8)) for r in rows]
    assert tape.times_us.tolist() == [r[2] * 1000 for r in rows]  # all real tapes are in ms
    for array in (tape.ids, tape.prices, tape.times_us):
        assert array.dtype == np.int64 and not array.flags.writeable


@pytest.mark.parametrize("name", [t[0] for t in REAL_TAPES])
def test_fast_path_agrees_with_slow_path_on_real_tapes(tape_path, name):
    buf = tape_module._load(str(tape_path(name)))
    end = len(buf.rstrip(b"\r\n"))
    fast = tape_module._parse_fast(buf, 0, end)
    slow = tape_module._parse_slow(name, buf, 0, end, 1)
    assert fast is not None, "real tapes are canonical and must take the fast path"
    assert fast[2] == slow[2]
    for a, b in zip(fast[:2] + fast[3:], slow[:2] + slow[3:]):
        assert np.array_equal(a, b)


def test_first_xrp_price_is_exact(tape_path):
    tape = read_tape(tape_path("XRPUSDT-trades-2019-06-01.zip"))
    assert tape.price(0) == decimal.Decimal("0.43849000")
    assert str(tape.price(0)) == "0.43849000"
    assert tape.prices[0] == 43_849_000 and tape.times_us[0] == 1_559_347_200_492_000


# --- small tapes ----------------------------------------------------------------

NAME = "DEMOUSDT-trades-2024-01-01.csv"


def line(trade_id, price="0.50000000", time=1_700_000_000_000, maker="True", qty="10.00000000"):
    return f"{trade_id},{price},{qty},5.00000000,{time},{maker},True"


def canonical(count=3):
    return "".join(line(100 + i, time=1_700_000_000_000 + i) + "\n" for i in range(count))


def write(tmp_path, text, name=NAME):
    path = tmp_path / name
    path.write_bytes(text.encode("latin-1") if isinstance(text, str) else text)
    return path


VARIANTS = {
    "canonical": (canonical(), [100, 101, 102], [50_000_000] * 3, 8, [1_700_000_000_000_000 + i * 1000 for i in range(3)]),
    "microseconds": (
        line(1, time=1_735_689_600_000_123) + "\n" + line(2, time=1_735_689_600_000_124) + "\n",
        [1, 2], [50_000_000] * 2, 8, [1_735_689_600_000_123, 1_735_689_600_000_124],
    ),
    "header": ("id,price,qty,quoteQty,time,isBuyerMaker,isBestMatch\n" + canonical(2), [100, 101], [50_000_000] * 2, 8, None),
    "header after BOM": ("\ufeffid,price,qty,quote_qty,time,is_buyer_maker,is_best_match\n".encode().decode("latin-1") + canonical(2), [100, 101], [50_000_000] * 2, 8, None),
    "lowercase booleans": (canonical().replace("True", "true").replace("False", "false"), [100, 101, 102], [50_000_000] * 3, 8, None),
    "false": (line(1, maker="False") + "\n" + line(2, maker="false") + "\n", [1, 2], [50_000_000] * 2, 8, None),
    "CRLF": (canonical().replace("\n", "\r\n"), [100, 101, 102], [50_000_000] * 3, 8, None),
    "no final newline": (canonical().rstrip("\n"), [100, 101, 102], [50_000_000] * 3, 8, None),
    "trailing blank lines": (canonical() + "\n\r\n\n", [100, 101, 102], [50_000_000] * 3, 8, None),
    "mixed decimals": ("\n".join([line(1, "5"), line(2, "0.25"), line(3, "1234.5")]), [1, 2, 3], [500, 25, 123450], 2, None),
    "single trade": (line(9, "0.1") + "\n", [9], [1], 1, None),
}


@pytest.mark.parametrize("case", VARIANTS)
def test_tolerated_variants(tmp_path, case):
    text, ids, prices, decimals, times = VARIANTS[case]
    tape = read_tape(write(tmp_path, text))
    assert tape.ids.tolist() == ids
    assert tape.prices.tolist() == prices
    assert tape.price_decimals == decimals
    if times is not None:
        assert tape.times_us.tolist() == times


@pytest.mark.parametrize("prices", [["0.50000000"] * 5, ["5", "0.25", "1234.5", "0.5", "0.5"]],
                         ids=["fast path", "slow path"])
@pytest.mark.parametrize("ids, problem", [
    ([1, 2, 9, 4, 5], ":4: trade id 4 is out of order: line 3 has 9; a tape's ids must increase"),
    ([1, 2, 3, 3, 5], ":4: duplicate trade id 3 (first on line 3)"),
    ([5, 1, 2, 3, 4], ":2: trade id 1 is out of order: line 1 has 5"),
    ([1, 2, 3, 4, 0], ":5: trade id 0 is out of order: line 4 has 4"),
])
def test_ids_out_of_order_are_refused_not_sorted(tmp_path, prices, ids, problem):
    """One edited id once turned 22 orders into 239: a tape out of id order is refused, by line."""
    text = "".join(line(i, p, time=1_700_000_000_000 + k) + "\n" for k, (i, p) in enumerate(zip(ids, prices)))
    path = write(tmp_path, text)
    fast = tape_module._parse_fast(text.encode(), 0, len(text) - 1)
    assert (fast is not None) == (len(set(prices)) == 1)  # both parsers are checked
    with pytest.raises(TapeError) as caught:
        read_tape(path)
    assert str(caught.value).startswith(f"{path}{problem}")


def test_ids_out_of_order_in_a_big_tape_name_the_line(tmp_path):
    ids = list(range(1000, 3000))
    ids[1500] = 999_999  # one edited id: the next line is then out of order
    path = write(tmp_path, "".join(line(i, time=1_700_000_000_000 + i) + "\n" for i in ids))
    with pytest.raises(TapeError, match=r":1502: trade id 2501 is out of order: line 1501 has 999999"):
        read_tape(path)


def test_small_blocks_give_the_same_tape(tmp_path, monkeypatch):
    path = write(tmp_path, canonical(200).replace("\n", "\r\n"))
    expected = read_tape(path)
    monkeypatch.setattr(tape_module, "_BLOCK", 64)
    again = read_tape(path)
    assert np.array_equal(again.ids, expected.ids) and np.array_equal(again.prices, expected.prices)
    assert np.array_equal(again.times_us, expected.times_us)


# line number (1-based, in the file) and what the message must say
BAD_LINES = {
    "too few fields": ("0.5,1,1,1,True,True", 2, "expected 7 fields, got 6"),
    "too many fields": (line(101) + ",x", 2, "expected 7 fields, got 8"),
    "id not a number": (line("1x"), 2, "id '1x' is not an unsigned integer"),
    "negative id": (line(-5), 2, "id '-5' is not an unsigned integer"),
    "id too large": (line(2**64), 2, f"id {2**64} does not fit in 64 bits"),
    "price not a number": (line(101, "abc"), 2, "price 'abc' is not a decimal number"),
    "price empty": (line(101, ""), 2, "price '' is not a decimal number"),
    "price negative": (line(101, "-0.5"), 2, "price '-0.5' is negative; prices must be positive"),
    "price zero": (line(101, "0.00000000"), 2, "price '0.00000000' is zero"),
    "price exponent": (line(101, "1e-5"), 2, "price '1e-5' has an exponent"),
    "price two dots": (line(101, "0.5.1"), 2, "price '0.5.1' is not a decimal number"),
    "price dot first": (line(101, ".5"), 2, "price '.5' is not a decimal number"),
    "price with space": (line(101, " 0.5"), 2, "price ' 0.5' is not a decimal number"),
    "qty not a number": (line(101, qty="ten"), 2, "qty 'ten' is not a decimal number"),
    "qty negative": (line(101, qty="-1.0"), 2, "qty '-1.0' is negative"),
    "quoteQty exponent": ("101,0.5,1.0,5E+2,1700000000000,True,True", 2, "quoteQty '5E+2' has an exponent"),
    "time not a number": (line(101, time="17000x"), 2, "time '17000x' is not an unsigned integer"),
    "time with fraction": (line(101, time="1700000000000.5"), 2, "time '1700000000000.5' is not an unsigned integer"),
    "bad isBuyerMaker": (line(101, maker="yes"), 2, "isBuyerMaker 'yes' is not True/False"),
    "shouting boolean": (line(101, maker="TRUE"), 2, "isBuyerMaker 'TRUE' is not True/False"),
    "bad isBestMatch": ("101,0.5,1.0,0.5,1700000000000,True,1", 2, "isBestMatch '1' is not True/False"),
    "blank line inside": ("", 2, "blank line before the end of the tape"),
    "duplicate id": (line(100), 2, "duplicate trade id 100 (first on line 1)"),
    "time unit changes": (line(101, time=1_735_689_600_000_000), 2, "is in microseconds but line 1's is in milliseconds"),
    "price too large": (line(101, "99999999999999.5"), 2, "does not fit in 64 bits with 8 decimals"),
}


@pytest.mark.parametrize("case", BAD_LINES)
@pytest.mark.parametrize("crlf", [False, True], ids=["LF", "CRLF"])
def test_bad_line_names_file_line_and_problem(tmp_path, case, crlf):
    bad, lineno, problem = BAD_LINES[case]
    lines = [line(100), bad, line(102), line(103)]
    text = "\n".join(lines) + "\n"
    path = write(tmp_path, text.replace("\n", "\r\n") if crlf else text)
    with pytest.raises(TapeError) as caught:
        read_tape(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:{lineno}: "), message
    assert problem in message


def test_bad_first_line_and_line_numbers_count_the_header(tmp_path):
    path = write(tmp_path, "id,price,qty,quoteQty,time,isBuyerMaker,isBestMatch\n" + canonical(5) + line(9, "abc") + "\n")
    with pytest.raises(TapeError, match=r":7: price 'abc' is not a decimal number"):
        read_tape(path)
    with pytest.raises(TapeError, match=r":1: price 'x' is not"):
        read_tape(write(tmp_path, line(1, "x") + "\n" + canonical()))


def test_first_of_several_bad_lines_is_reported(tmp_path):
    text = canonical(50) + line(1000, "bad") + "\n" + line(1001, "0") + "\n"
    with pytest.raises(TapeError, match=r":51: price 'bad'"):
        read_tape(write(tmp_path, text))


def test_bad_bytes_are_reported_not_crashed_on(tmp_path):
    with pytest.raises(TapeError, match=r":2: price '0.5\\xff'"):
        read_tape(write(tmp_path, (line(1) + "\n").encode() + b"2,0.5\xff,1,1,1,True,True\n"))
    with pytest.raises(TapeError, match=r":1: unexpected byte-order mark"):
        read_tape(write(tmp_path, "\ufeff".encode() + canonical().encode()))


@pytest.mark.parametrize("text", ["", "\n", "\r\n\r\n", "id,price,qty,quoteQty,time,isBuyerMaker,isBestMatch\n"])
def test_empty_tape(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(TapeError, match="no trades") as caught:
        read_tape(path)
    assert str(caught.value) == f"{path}: no trades"


# --- files -----------------------------------------------------------------------


@pytest.mark.parametrize("compression", [zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED, zipfile.ZIP_BZIP2])
def test_zip_with_one_csv(tmp_path, compression):
    path = tmp_path / "DEMOUSDT-trades-2024-01-01.zip"
    with zipfile.ZipFile(path, "w", compression) as archive:
        archive.writestr("DEMOUSDT-trades-2024-01-01.csv", canonical())
    tape = read_tape(path)
    assert tape.ids.tolist() == [100, 101, 102] and tape.symbol == "DEMOUSDT"


def test_zip_with_two_members(tmp_path):
    path = tmp_path / "DEMOUSDT-trades-2024-01-01.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a.csv", canonical())
        archive.writestr("b.csv", canonical())
    with pytest.raises(TapeError, match=r"zip holds 2 files, expected exactly one csv"):
        read_tape(path)


def test_corrupt_zip(tmp_path):
    path = tmp_path / "DEMOUSDT-trades-2024-01-01.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("DEMOUSDT-trades-2024-01-01.csv", canonical(100))
    data = bytearray(path.read_bytes())
    data[60] ^= 0xFF  # inside the compressed stream
    path.write_bytes(bytes(data))
    with pytest.raises(TapeError, match=rf"^{path}: not a readable zip file"):
        read_tape(path)
    path.write_bytes(b"not a zip at all")
    with pytest.raises(TapeError, match=rf"^{path}: not a readable zip file"):
        read_tape(path)


def test_missing_file(tmp_path):
    path = tmp_path / "XRPUSDT-trades-2019-06-01.zip"
    with pytest.raises(TapeError, match=rf"^{path}: no such file$"):
        read_tape(path)
    with pytest.raises(TapeError, match=rf"^{tmp_path}: cannot read it"):
        read_tape(tmp_path, symbol="XRPUSDT")  # a directory


def test_fifo_and_device_are_refused_before_reading(tmp_path):
    fifo = tmp_path / NAME
    os.mkfifo(fifo)  # no writer: a plain open() would wait forever
    with pytest.raises(TapeError, match=rf"^{fifo}: cannot read it: not a regular file but a FIFO"):
        read_tape(fifo)
    with pytest.raises(TapeError, match=r"^/dev/zero: cannot read it: not a regular file but a character device"):
        read_tape("/dev/zero", symbol="XRPUSDT")  # would never end


@pytest.mark.parametrize(
    ("name", "symbol"),
    [
        ("XRPUSDT-trades-2019-06-01.zip", "XRPUSDT"),
        ("/some/dir/BTCUSDT-trades-2024-08-08-excerpt.csv", "BTCUSDT"),
        ("1000SATSUSDT-trades-2024-05-01.zip", "1000SATSUSDT"),
    ],
)
def test_symbol_from_path(name, symbol):
    assert symbol_from_path(name) == symbol


@pytest.mark.parametrize("name", ["trades.csv", "xrpusdt-trades-2019.csv", "XRPUSDT-aggTrades-2019-06-01.zip"])
def test_symbol_from_path_asks_for_symbol(name):
    with pytest.raises(TapeError, match="pass --symbol"):
        symbol_from_path(name)


def test_explicit_symbol_overrides_the_file_name(tmp_path):
    tape = read_tape(write(tmp_path, canonical(), "my-tape.csv"), symbol="XRPUSDT")
    assert isinstance(tape, Tape) and tape.symbol == "XRPUSDT" and len(tape) == 3


def test_fast_path_never_accepts_what_the_slow_path_rejects():
    """Mutate a canonical tape at random: the fast path either defers (None) or agrees exactly."""
    base = canonical(40).replace("0.50000000", "61837.63000000").encode()
    alphabet = b"0123456789.,\n\rTrueFalsfl-eE+ x"
    rng = random.Random(20240808)
    accepted = 0
    for _ in range(3000):
        data = mutate(rng, base, alphabet)
        start, first_lineno = tape_module._skip_header("x", data)
        end = len(data.rstrip(b"\r\n"))
        fast = tape_module._parse_fast(data, start, end) if end > start else None
        if fast is None:
            continue
        accepted += 1
        slow = tape_module._parse_slow("x", data, start, end, first_lineno)
        assert fast[2] == slow[2], data
        assert all(np.array_equal(a, b) for a, b in zip(fast[:2] + fast[3:], slow[:2] + slow[3:])), data
    assert accepted > 300  # many mutations (digit for digit) stay canonical


def mutate(rng, data, alphabet):
    """1-3 random byte replacements, insertions or deletions."""
    data = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        i, byte, how = rng.randrange(len(data)), rng.choice(alphabet), rng.randrange(3)
        if how == 0:
            data[i] = byte
        elif how == 1:
            data.insert(i, byte)
        else:
            del data[i]
    return bytes(data)
