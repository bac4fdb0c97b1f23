"""The command line's JSON, whole or one record of a stream: a character a terminal would
obey is escaped, and the value parses back as it was."""

from __future__ import annotations

import json

import pytest

from app.cli.render import json_output

HOSTILE = {"ref": "ESC-0001", "title": "a\u202eb\x1b[31mc\u200bd", "paged": ["ana"]}


@pytest.mark.parametrize("stream", [False, True])
def test_json_escapes_what_a_terminal_would_obey_and_parses_back(stream: bool) -> None:
    out = json_output(HOSTILE, stream=stream)
    assert not any(char in out for char in "\u202e\x1b\u200b")
    for escaped in ("\\u202e", "\\u001b", "\\u200b"):
        assert escaped in out
    assert json.loads(out) == HOSTILE
    assert out.endswith("\n")


def test_a_record_of_a_stream_is_one_line() -> None:
    out = json_output({"note": "two\nlines", **HOSTILE}, stream=True)
    assert out.count("\n") == 1
