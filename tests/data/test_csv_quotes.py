"""CSV quoting across chunks: stray quotes, quoted fields that never close, long fields.

The reference is ``polars.read_csv`` of the whole file: the chunked ingest gives its rows, or,
where readers disagree on what the bytes mean, fails naming the line and the fix.
"""

from __future__ import annotations

import codecs
from pathlib import Path

import polars as pl
import pytest

from keel.data import CsvSource, _csv, _csv_quotes
from keel.errors import InvalidInputError
from tests.data._csv import read

SMALL = 1024  # the smallest chunk a CSV source reads: these files span dozens of chunks


def _rows(count: int, special: dict[int, str]) -> list[bytes]:
    """``count`` rows ``i,text,2i``, the text of row i replaced by ``special[i]``."""
    return [b"%d,%s,%d" % (i, special.get(i, f"item {i}").encode(), 2 * i) for i in range(count)]


def _write(tmp_path: Path, rows: list[bytes], newline: bytes = b"\n") -> Path:
    path = tmp_path / "q.csv"
    path.write_bytes(newline.join([b"id,text,n", *rows]) + newline)
    return path


def _as_text(path: Path, chunk_bytes: int, **options: object) -> tuple[pl.DataFrame, list]:
    """The rows as text (every column a string), as ``polars.read_csv`` with no inference."""
    names = path.read_bytes().split(b"\n", 1)[0].decode().strip().split(",")
    schema = dict.fromkeys(names, "string")
    return read(CsvSource(str(path), chunk_bytes=chunk_bytes, schema=schema, **options))


def _whole(path: Path, **options: object) -> pl.DataFrame:
    return pl.read_csv(path.read_bytes(), infer_schema=False, **options)  # type: ignore[arg-type]


# --- 1. a stray quote in an unquoted field -----------------------------------------------------


@pytest.mark.parametrize("field", ['5" screen', 'screen 5"', "O'Neil \"Jr"])
def test_an_odd_quote_in_an_unquoted_field_fails_naming_its_line_and_the_fix(
    tmp_path: Path, field: str
) -> None:
    # Polars itself refuses these bytes read whole (a quote inside a field opens a quoted
    # section that runs over the delimiters and line ends after it); chunked, the rows after
    # the quote used to be carried as one growing piece (or, with a quoted field with a line
    # end further on, cut inside it: good rows became rejects).
    path = _write(tmp_path, _rows(3000, {1500: field, 2200: '"multi\nline, quoted"'}))
    with pytest.raises(pl.exceptions.ComputeError):
        _whole(path)
    for chunk_bytes in (SMALL, _csv.CHUNK_BYTES):
        with pytest.raises(InvalidInputError) as info:
            _as_text(path, chunk_bytes)
        message = str(info.value)
        assert "Line 1502 " in message  # the header is line 1, row i is line i + 2
        assert repr(field) in message and "quote_char=None" in message
        assert '"' + field.replace('"', '""') + '"' in message  # the field quoted, as a fix


def test_with_quote_char_none_the_stray_quotes_are_text_as_polars_reads_them(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path, _rows(3000, {10: '5" screen', 1500: 'screen 5"', 2999: '"x'}))
    expected = _whole(path, quote_char=None)
    for chunk_bytes in (SMALL, _csv.CHUNK_BYTES):
        frame, rejects = _as_text(path, chunk_bytes, quote_char=None)
        assert rejects == []
        assert frame.rows() == expected.rows()
    assert frame["text"][1500] == 'screen 5"' and frame["text"][2999] == '"x'


def test_quotes_that_pair_up_inside_a_field_are_text_as_in_the_whole_file_read(
    tmp_path: Path,
) -> None:
    special = {
        5: 'Robert "Bob" Smith',
        700: 'O\'Neil "Jr"',
        701: '"a, quoted ""one"""',
        1200: '"multi\nline"',
        1201: 'ab""cd',
        2500: '12" pizza; 14" pizza',
    }
    path = _write(tmp_path, _rows(3000, special))
    expected = _whole(path)
    assert expected["text"][5] == 'Robert "Bob" Smith'
    for chunk_bytes in (SMALL, 1500, _csv.CHUNK_BYTES):
        frame, rejects = _as_text(path, chunk_bytes)
        assert rejects == []
        assert frame.rows() == expected.rows()


def test_a_stray_quote_in_the_header_fails_naming_line_one(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_bytes(b'id,size",n\n' + b"".join(b"%d,x,%d\n" % (i, i) for i in range(500)))
    with pytest.raises(InvalidInputError, match=r"Line 1 .*'size\"'.*quote_char=None"):
        read(CsvSource(str(path), chunk_bytes=SMALL))


# --- 2. a quote that opens a field and never closes -----------------------------------------


def test_a_quoted_field_that_never_closes_fails_naming_the_line_it_opens_on(
    tmp_path: Path,
) -> None:
    # It used to take every line after it into one reject: thousands of rows lost.
    path = _write(tmp_path, _rows(3000, {1000: '"5 screen'}))
    for chunk_bytes in (SMALL, _csv.CHUNK_BYTES):
        with pytest.raises(InvalidInputError) as info:
            read(CsvSource(str(path), chunk_bytes=chunk_bytes))
        message = str(info.value)
        assert "Line 1002 " in message and "never closes" in message
        assert "1999 lines" in message and "quote_char=None" in message


def test_a_quoted_field_open_past_the_record_limit_fails_before_reading_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_csv, "_MAX_RECORD", 16 * 1024)
    path = _write(tmp_path, _rows(20000, {1000: '"5 screen'}))
    reads: list[int] = []
    source = CsvSource(str(path), chunk_bytes=SMALL)
    real = source._utf8_chunks

    def counting(handle, encoding):  # type: ignore[no-untyped-def]
        for piece in real(handle, encoding):
            reads.append(handle.tell())
            yield piece

    monkeypatch.setattr(source, "_utf8_chunks", counting)
    with pytest.raises(InvalidInputError, match=r"Line 1002 .*does not close within 16 KiB"):
        read(source)
    assert max(reads) < path.stat().st_size // 4  # the rest of the file is not read
    # a long record without any quote is refused the same way, naming its line
    path.write_bytes(b"a,b\n1,2\n" + b"x" * 40_000 + b",3\n4,5\n")
    with pytest.raises(InvalidInputError, match=r"Line 3 .*does not end within"):
        read(CsvSource(str(path), chunk_bytes=SMALL))


def test_a_quoted_field_that_closes_lines_later_is_one_reject_naming_all_its_lines(
    tmp_path: Path,
) -> None:
    # The quote opens at a field start and closes three lines later: one record of 4 fields
    # (Polars and the csv module read it so too); its reject names every line it took.
    path = _write(tmp_path, _rows(3000, {1000: '"5 screen', 1003: 'x",extra'}))
    for chunk_bytes in (SMALL, _csv.CHUNK_BYTES):
        frame, rejects = read(CsvSource(str(path), chunk_bytes=chunk_bytes))
        assert frame.height == 2996
        assert [r.line for r in rejects] == [1002]
        assert "lines 1002-1005" in rejects[0].reason
        assert "4 fields where the header has 3" in rejects[0].reason


def test_an_unclosed_quote_on_the_last_line_is_a_reject(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(b'a,b\n1,x\n2,"open')
    frame, rejects = read(CsvSource(str(path)))
    assert frame.rows() == [(1, "x")]
    assert [r.line for r in rejects] == [3] and "not closed" in rejects[0].reason


# --- 3. long fields: no 128 KiB limit --------------------------------------------------------


@pytest.mark.parametrize("quoted", [False, True])
def test_a_first_field_over_128_kib_is_read(tmp_path: Path, quoted: bool) -> None:
    big = "n" * 200_000
    name = f'"{big}"' if quoted else big
    path = tmp_path / "w.csv"
    path.write_text(f"{name},b\n1,2\n3,4\n", encoding="utf-8")
    frame, rejects = read(CsvSource(str(path), chunk_bytes=SMALL))
    assert rejects == [] and frame.columns == [big, "b"] and frame.rows() == [(1, 2), (3, 4)]


@pytest.mark.parametrize("quoted", [False, True])
def test_a_field_over_128_kib_in_a_chunk_read_record_by_record_is_kept(
    tmp_path: Path, quoted: bool
) -> None:
    big = "v" * 200_000
    value = f'"{big}"' if quoted else big
    path = tmp_path / "w.csv"
    path.write_text(f"a,b\n1,{value}\n2,x\n3,y,z\n", encoding="utf-8")  # line 4 is malformed
    frame, rejects = read(CsvSource(str(path)))
    assert frame.rows() == [(1, big), (2, "x")]
    assert [(r.line, r.reason) for r in rejects] == [(4, "3 fields where the header has 2")]


# --- 4. the same rows whichever way the file is cut -------------------------------------------


TRICKY = [
    b'1,"crlf{nl}inside ""quoted"" text",2',
    b'2,"",4',  # an empty quoted string is '', an empty field null
    b"3,,6",
    b'4,"ends with ""","8"',
    b'5,"a,b{nl}{nl}c",10',
]


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
def test_every_cut_through_quoted_fields_gives_the_rows_of_the_whole_file(
    tmp_path: Path, newline: bytes
) -> None:
    # The third 1024-byte read starts at each byte of the tricky rows in turn (after clean rows
    # carried over from the reads before it).
    tricky = [row.replace(b"{nl}", newline) for row in TRICKY]
    head = [b"id,text,n", *(b"%d,row %d,%d" % (i, i, 2 * i) for i in range(100, 200))]
    size = len(newline.join(tricky)) + len(newline)
    for shift in range(size + 2):
        start = 3 * SMALL - size + shift  # where the tricky rows start
        filler = start - len(newline.join(head)) - 2 * len(newline) - len(b"0,,0")
        rows = [*head[1:], b"0,%s,0" % (b"p" * filler), *tricky]
        rows += [b"%d,row %d,%d" % (i, i, 2 * i) for i in range(6, 60)]
        path = _write(tmp_path, rows, newline)
        assert path.read_bytes().index(tricky[0]) == start
        expected = _whole(path)
        frame, rejects = _as_text(path, SMALL)
        assert rejects == [], shift
        assert frame.rows() == expected.rows(), shift


def test_a_piece_read_record_by_record_gives_the_rows_polars_gives(tmp_path: Path) -> None:
    # The same rows with a malformed row beside them (the piece is then read record by record):
    # an empty quoted string stays '', a CRLF inside quotes stays, a CR at the end goes.
    body = b'1,"",2\r\n2,,3\r\n3,"a\r\nb",4\r\n4,x,5\r'
    path = tmp_path / "a.csv"
    path.write_bytes(b"id,text,n\r\n" + body)
    clean, rejects = _as_text(path, SMALL)
    assert rejects == [] and clean.rows() == _whole(path).rows()
    path.write_bytes(b"id,text,n\r\n9,too,many,fields\r\n" + body)
    slow, rejects = _as_text(path, SMALL)
    assert [r.line for r in rejects] == [2]
    assert slow.rows() == clean.rows()
    assert slow["text"].to_list() == ["", None, "a\r\nb", "x"]


def test_a_file_ending_without_a_newline_inside_or_after_quotes(tmp_path: Path) -> None:
    rows = [b"%d,row %d,%d" % (i, i, i) for i in range(300)]
    for last in (b'300,"two\nlines",300', b'300,301,"quoted ""end"""', b"300,plain,300"):
        path = tmp_path / "e.csv"
        path.write_bytes(b"\n".join([b"id,text,n", *rows, last]))
        expected = _whole(path)
        frame, rejects = _as_text(path, SMALL)
        assert rejects == [] and frame.rows() == expected.rows()


# --- 5. byte order marks ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bom", "codec", "encoding"),
    [
        (codecs.BOM_UTF8, "utf-8", "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le", "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be", "utf-16-be"),
        (codecs.BOM_UTF8, "utf-8", None),
    ],
)
def test_a_byte_order_mark_is_not_part_of_the_first_name(
    tmp_path: Path, bom: bytes, codec: str, encoding: str | None
) -> None:
    path = tmp_path / "b.csv"
    path.write_bytes(bom + '"id",name\n1,a\n2,b\n'.encode(codec))
    frame, rejects = read(CsvSource(str(path), encoding=encoding))
    assert rejects == [] and frame.columns == ["id", "name"]
    assert frame.rows() == [(1, "a"), (2, "b")]


# --- 6. another quote character, and options checked up front ---------------------------------


def test_another_quote_character(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_bytes(b"id,text\n" + b"".join(b"%d,'a, ''%d''\nb'\n" % (i, i) for i in range(200)))
    frame, rejects = read(CsvSource(str(path), chunk_bytes=SMALL, quote_char="'"))
    assert rejects == [] and frame.height == 200
    assert frame["text"][7] == "a, '7'\nb"


@pytest.mark.parametrize("quote_char", ["", "ab", "\n", ",", "é"])
def test_a_bad_quote_character_is_refused(tmp_path: Path, quote_char: str) -> None:
    with pytest.raises(InvalidInputError, match="quote_char"):
        CsvSource(str(tmp_path / "x.csv"), delimiter=",", quote_char=quote_char)


# --- 7. the record-by-record reader and the quote checks agree with each other ----------------


def test_a_character_after_a_closing_quote_is_a_reject_and_the_rows_after_it_are_read(
    tmp_path: Path,
) -> None:
    rows = _rows(3000, {1000: '"abc"def', 1001: '"x\ny"', 2500: "x,extra"})
    path = _write(tmp_path, rows)
    for chunk_bytes in (SMALL, _csv.CHUNK_BYTES):
        frame, rejects = read(CsvSource(str(path), chunk_bytes=chunk_bytes))
        assert [(r.line, r.reason.split(" (")[0]) for r in rejects] == [
            (1002, "malformed CSV: 'd' after the closing quote of field 2"),
            (2503, "4 fields where the header has 3"),
        ]
        assert rejects[0].text == '1000,"abc"def,2000'
        assert frame.height == 2998 and frame["text"][1000] == "x\ny"
        assert frame["id"].to_list() == [i for i in range(3000) if i not in (1000, 2500)]


def test_the_vectorised_quote_check_agrees_with_the_field_by_field_one() -> None:
    import random

    rng = random.Random(3)
    values = ["x", '"q,1"', '"a\nb"', '""', '"a""b"', '"""x"""', 'ab"c"d', "7", '"open']
    decided = 0
    for _ in range(3000):
        rows = [",".join(rng.choice(values) for _ in range(3)) for _ in range(rng.randint(1, 6))]
        data = "\n".join(rows).encode()
        vectorised = _csv_quotes.quotes_open_fields(data, ord(","), ord('"'))
        try:
            by_field = _csv_quotes.scan_quotes(data, ord(","), ord('"'))
        except _csv_quotes.MalformedError:
            assert vectorised is None  # a quote inside a field is never passed as fine
            continue
        if vectorised is not None:
            decided += 1
            assert vectorised == by_field, data
    assert decided > 400
