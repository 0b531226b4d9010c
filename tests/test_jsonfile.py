"""Tests for syncammaster.jsonfile: every way a JSON file can be bad gives one JSONFileError line naming the file."""

import pytest

from syncammaster.jsonfile import JSONFileError, read_json

FIX = "write it again"


@pytest.mark.parametrize(
    "content, expect, problem",
    [
        (None, dict, "cannot read config "),  # no file
        (b"{not json", dict, "is not valid JSON"),
        (b"", dict, "is not valid JSON"),
        (b"\xff\xfe{}", dict, "is not valid JSON (not UTF-8 text"),
        (b"[1, 2]", dict, "holds a JSON array, not an object"),
        (b'{"a": 1}', list, "holds a JSON object, not an array"),
        (b"null", dict, "holds a JSON null, not an object"),
    ],
    ids=["missing", "not JSON", "empty", "not UTF-8", "array for object", "object for array", "null"],
)
def test_a_bad_file_is_one_line_naming_it_and_the_fix(tmp_path, content, expect, problem):
    path = tmp_path / "settings.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(JSONFileError) as error:
        read_json(path, FIX, what="config", expect=expect)
    message = str(error.value)
    assert problem in message and str(path) in message and message.endswith(f"; {FIX}")
    assert "\n" not in message


def test_a_good_file_reads_back_its_value(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('{"x": [1, 2.5, "é"]}', encoding="utf-8")
    assert read_json(path, FIX) == {"x": [1, 2.5, "é"]}
    path.write_text("[3]")
    assert read_json(path, FIX, expect=list) == [3]
    assert read_json(path, FIX, expect=None) == [3]
    assert issubclass(JSONFileError, ValueError)  # the command line reports ValueErrors in one line
