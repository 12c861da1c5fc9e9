"""What a dataset reports when a file or a record is bad."""

from __future__ import annotations

from dataclasses import dataclass
from os import PathLike


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
