"""What a dataset reports when a file or a record is bad."""

from __future__ import annotations

import json
from dataclasses import dataclass
from os import PathLike
from pathlib import Path


class DataError(Exception):
    """A bad input file or record; `str(err) == f"{path}: {problem}"`, one line."""

    def __init__(self, path: str | PathLike, problem: str):
        self.path = str(path)
        self.problem = " ".join(str(problem).split())  # one line, whatever the library said
        super().__init__(f"{self.path}: {self.problem}")


@dataclass
class FailedItem:
    """What a dataset yields in place of a sample it could not load; iteration goes on."""

    edit_id: str
    video_id: str
    edit_type: str
    error: str


def read_json_file(path: Path, expected: type, missing: str, expected_what: str):
    """The JSON value of `path` (UTF-8, a byte-order mark tolerated), which must be an
    `expected` (list or dict); DataError naming the file and the problem otherwise (`missing`:
    what to say when it does not exist, `expected_what`: e.g. "a JSON list of edits")."""
    if not path.is_file():
        raise DataError(path, missing)
    try:
        value = json.loads(path.read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError as err:
        raise DataError(path, f"not valid UTF-8 (byte {err.start})") from err
    except json.JSONDecodeError as err:
        raise DataError(
            path, f"line {err.lineno}: malformed JSON ({err.msg} at column {err.colno})"
        ) from err
    if not isinstance(value, expected):
        raise DataError(path, f"expected {expected_what}, got {type(value).__name__}")
    return value
