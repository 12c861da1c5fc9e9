"""The results store of one job: `rows/<edit_id>.json` is the source of truth, `results.parquet`
is rebuilt from the rows (atomically) after every edit, so a killed job leaves complete rows only
and a re-run skips what is done without duplicating anything."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path

import pandas as pd

from kvlock.experiment.atomic import atomic_write, remove_stale_temps, write_json

log = logging.getLogger(__name__)
RESULTS = "results.parquet"
ROWS = "rows"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def safe_name(edit_id: str) -> str:
    """A file-name stem for an edit id; ids that need escaping get a short hash (no collisions)."""
    stem = _UNSAFE.sub("_", edit_id).lstrip(".") or "_"
    if stem == edit_id:
        return stem
    return f"{stem[:80]}-{hashlib.sha256(edit_id.encode()).hexdigest()[:8]}"


class ResultsStore:
    """Rows of one run dir, keyed by edit id (a redone edit replaces its row)."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.rows_dir = self.run_dir / ROWS
        self.results_path = self.run_dir / RESULTS
        self.rows: dict[str, dict] = {}

    def open(self) -> ResultsStore:
        """Load the rows a previous attempt left; check results.parquet against them; rebuild it."""
        self.rows_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(self.rows_dir)
        remove_stale_temps(self.run_dir)
        for path in sorted(self.rows_dir.glob("*.json")):
            row = self._read_row(path)
            if row is not None:
                self.rows[row["edit_id"]] = row
        problem = self._check_results()
        if problem:
            log.warning("%s %s; rebuilt from %d row files in %s/", self.results_path, problem,
                        len(self.rows), ROWS)
        if self.rows or self.results_path.exists():
            self.write_results()
        return self

    def completed(self, config_hash: str) -> set[str]:
        """Edit ids already done with status ok under this config."""
        return {e for e, r in self.rows.items() if r["status"] == "ok" and r.get("config_hash") == config_hash}

    def add(self, row: dict) -> None:
        """Persist one row (its own file first, then the rebuilt results.parquet)."""
        write_json(self.rows_dir / f"{safe_name(row['edit_id'])}.json", row)
        self.rows[row["edit_id"]] = row
        self.write_results()

    def frame(self) -> pd.DataFrame:
        """All rows, one per edit id, sorted by edit id; numeric columns as floats/ints."""
        frame = pd.DataFrame([self.rows[k] for k in sorted(self.rows)])
        for column in frame.columns:
            values = frame[column].dropna()
            if len(values) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                frame[column] = pd.to_numeric(frame[column])
        return frame

    def write_results(self) -> None:
        frame = self.frame()
        atomic_write(self.results_path, lambda tmp: frame.to_parquet(tmp, index=False))

    def _read_row(self, path: Path) -> dict | None:
        try:
            row = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(row, dict) or "edit_id" not in row or "status" not in row:
                raise ValueError("not a result row")
        except (OSError, ValueError) as err:
            log.warning("ignoring unreadable row file %s (%s); its edit will be redone", path, err)
            return None
        return row

    def _check_results(self) -> str | None:
        """Why the results file does not match the rows, or None."""
        if not self.results_path.exists():
            return None
        try:
            edit_ids = pd.read_parquet(self.results_path, columns=["edit_id"])["edit_id"]
        except Exception as err:  # pyarrow raises several types for truncated files
            return f"is unreadable ({type(err).__name__}: {str(err).splitlines()[0][:120]})"
        if edit_ids.duplicated().any() or set(edit_ids) != set(self.rows):
            return f"disagrees with the row files ({len(edit_ids)} rows vs {len(self.rows)} row files)"
        return None
