"""The quote-free CSV shortcut (str.split instead of the csv module) reads every file
exactly as the csv module does, line numbers, shape errors and blank lines included."""

from __future__ import annotations

import pytest

from apps.imports import parsers

CASES = {
    "plain": b"a,b,c\n1,2,3\n4,5,6\n",
    "no final newline": b"a,b,c\n1,2,3\n4,5,6",
    "crlf": b"a,b,c\r\n1,2,3\r\n4,5,6\r\n",
    "mixed line ends": b"a,b,c\r\n1,2,3\n4,5,6\r\n",
    "lone carriage return": b"a,b,c\r1,2,3\n4,5,6\n",
    "blank and whitespace lines": b"a,b,c\n\n1,2,3\n   \n,,\n4,5,6\n\n",
    "semicolons": b"a;b;c\n1;2,5;3\n",
    "tabs": b"a\tb\tc\n1\t 2 \t3\n",
    "ragged rows": b"a,b,c\n1,2\n1,2,3,4\n1,2,3,,\n1,2,3, \n",
    "formulas and spaces": b"a,b,c\n=SUM(A1:A3),+1, -2 \n@x,  ,\n",
    "quoted": b'a,b,c\n"1,5",2,3\n"multi\nline",2,3\n4,5,6\n',
    "bom": "\ufeffa,b,c\n1,2,é\n".encode(),
    "empty first line": b"\na,b,c\n1,2,3\n",
}


def parsed(data: bytes) -> tuple[list[str], list[tuple[int, object]]]:
    try:
        result = parsers.parse_csv(data)
        return result.headers, list(result.rows)
    except parsers.FileProblem as exc:
        return ["problem", exc.message], [(exc.line, None)]


@pytest.mark.parametrize("name", CASES)
def test_the_shortcut_reads_like_the_csv_module(name, monkeypatch):
    data = CASES[name]
    # given the file read with the shortcut where it applies
    fast = parsed(data)
    # when it is read by the csv module alone
    monkeypatch.setattr(parsers, "_plain_lines", lambda text: None)
    slow = parsed(data)
    # then headers, rows, line numbers and shape errors are identical
    assert fast == slow


def test_the_shortcut_applies_only_to_quote_free_text():
    assert parsers._plain_lines("a,b\n1,2\n") == ["a,b", "1,2", ""]
    assert parsers._plain_lines("a,b\r\n1,2\r\n") == ["a,b", "1,2", ""]
    assert parsers._plain_lines('a,b\n"1",2\n') is None
    assert parsers._plain_lines("a,b\r1,2\n") is None
    assert parsers._plain_lines("a,b\n1\x00,2\n") is None
