"""Issue 11 §2: nothing is kept that nobody needs.

Succeeded jobs drop their callable and arguments, released results are
gone, finished jobs' output stays within ``output_budget``, and output cut
at ``output_cap`` always carries a marker.
"""

from __future__ import annotations

import pytest

from nbfrost.capture import OutputBuffer

MARK = "\n[nbfrost: output truncated at 10 characters]\n"


@pytest.mark.parametrize("writes, kept", [
    (["0123456789"], "0123456789"),                       # exactly the cap: nothing dropped
    (["0123456789", ""], "0123456789"),                   # an empty write drops nothing
    (["0123456789", "x"], "0123456789" + MARK),           # the bug: full, then more
    (["01234", "56789", "x", "y"], "0123456789" + MARK),  # one marker only
    (["01234567", "89abc"], "0123456789" + MARK),         # the write that crosses the cap
    (["0123456789abc", "x"], "0123456789" + MARK),
])
def test_output_buffer_marks_whatever_it_drops(writes, kept):
    buf = OutputBuffer()
    for text in writes:
        buf.write(text, 10)
    assert buf.getvalue() == kept
    assert buf.chars() == len(kept)


def test_output_buffer_with_no_room_at_all():
    buf = OutputBuffer()
    buf.write("", 0)
    assert buf.getvalue() == ""
    buf.write("x", 0)
    assert buf.getvalue() == "\n[nbfrost: output truncated at 0 characters]\n"


def test_dropped_buffer_keeps_only_its_note():
    buf = OutputBuffer()
    buf.write("hello", 10)
    assert buf.drop("[gone]") == 5
    buf.write("more", 10)
    assert buf.getvalue() == "[gone]" and buf.chars() == 6
