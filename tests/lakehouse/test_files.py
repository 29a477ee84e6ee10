"""Loading raw files into tables: type inference, rejected rows, paths and errors."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakeloom import Workspace
from lakeloom.errors import InvalidArgument, InvalidTableName, SchemaMismatch
from lakeloom.lakehouse.files import detect_format, load_file, resolve_file


def _csv_with_bad_rows(path: Path, rows: int = 200) -> None:
    lines = ["id,name,amount,day,zip"]
    for i in range(rows):
        amount = "oops" if i in (50, 120) else f"{i * 1.5}"
        lines.append(f"{i},n{i},{amount},2024-01-{i % 28 + 1:02d},0{i:04d}")
    lines.insert(31, "999,short")  # file line 32: missing columns
    lines.append("1000,x,1,2024-01-01,01234,extra")  # last line: one column too many
    path.write_text("\n".join(lines) + "\n")


def test_csv_with_bad_rows_loads_the_good_ones_and_reports_the_others(
    workspace: Workspace,
) -> None:
    _csv_with_bad_rows(Path(workspace.files_dir) / "orders.csv")
    report = load_file(workspace.tables, workspace.files_dir, "orders.csv", "raw.orders")
    assert (report.rows_loaded, report.rows_rejected, report.version) == (198, 4, 0)
    assert report.columns == {
        "id": "int64",
        "name": "string",
        "amount": "double",  # 2 bad values in 200: still a number column
        "day": "date32[day]",
        "zip": "string",  # zero-padded: stays text
    }
    assert [r.line for r in report.rejects] == [32, 53, 123, 203]
    assert report.rejects[0].error.startswith("MISSING COLUMNS")
    assert report.rejects[1].column == "amount" and "oops" in (report.rejects[1].text or "")
    assert report.rejects[3].error.startswith("TOO MANY COLUMNS")
    table = workspace.tables.read("raw.orders")
    assert table.num_rows == 198
    assert table.column("zip")[0].as_py() == "00000"
    assert report.to_dict()["rejects"][0]["line"] == 32


def test_a_text_column_with_many_non_numbers_stays_text(workspace: Workspace) -> None:
    path = Path(workspace.files_dir) / "small.csv"
    path.write_text("id,amount\n1,1.5\n2,x\n3,2.5\n")
    report = load_file(workspace.tables, workspace.files_dir, path, "raw.small")
    assert report.columns["amount"] == "string"
    assert (report.rows_loaded, report.rows_rejected) == (3, 0)


def test_overwrite_replaces_rows_and_schema_append_adds(workspace: Workspace) -> None:
    files = Path(workspace.files_dir)
    (files / "a.csv").write_text("id,x\n1,a\n2,b\n")
    (files / "b.csv").write_text("id,x\n3,c\n")
    (files / "c.csv").write_text("id\n9\n")
    load_file(workspace.tables, workspace.files_dir, "a.csv", "raw.t")
    report = load_file(workspace.tables, workspace.files_dir, "b.csv", "raw.t", mode="append")
    assert report.version == 1 and workspace.tables.read("raw.t").num_rows == 3
    report = load_file(workspace.tables, workspace.files_dir, "c.csv", "raw.t")
    assert workspace.tables.read("raw.t").column_names == ["id"]
    with pytest.raises(SchemaMismatch, match="cannot append"):
        load_file(workspace.tables, workspace.files_dir, "a.csv", "raw.t", mode="append")


def test_parquet_and_json(workspace: Workspace, tmp_path: Path) -> None:
    pq.write_table(pa.table({"a": [1, 2, 3], "b": ["x", "y", "z"]}), tmp_path / "data.parquet")
    report = load_file(workspace.tables, workspace.files_dir, tmp_path / "data.parquet", "raw.pq")
    assert (report.format, report.rows_loaded) == ("parquet", 3)
    lines = [
        json.dumps({"id": i, "when": f"2024-01-0{i}T10:00:00", "t": "12:30:00"}) for i in (1, 2)
    ]
    (tmp_path / "events.jsonl").write_text("\n".join(lines))
    report = load_file(workspace.tables, workspace.files_dir, tmp_path / "events.jsonl", "raw.ev")
    assert (report.format, report.rows_loaded) == ("json", 2)
    assert workspace.tables.read("raw.ev").schema.field("when").type == pa.timestamp("us", "UTC")


def test_format_option_overrides_the_extension(workspace: Workspace) -> None:
    path = Path(workspace.files_dir) / "data.dat"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(InvalidArgument, match="cannot tell the format"):
        load_file(workspace.tables, workspace.files_dir, "data.dat", "raw.d")
    report = load_file(workspace.tables, workspace.files_dir, "data.dat", "raw.d", format="csv")
    assert report.rows_loaded == 1
    with pytest.raises(InvalidArgument, match="format 'xml' is not supported"):
        detect_format("x.csv", "xml")


def test_missing_file_names_the_files_folder(workspace: Workspace) -> None:
    with pytest.raises(InvalidArgument) as err:
        load_file(workspace.tables, workspace.files_dir, "nope.csv", "raw.nope")
    assert "does not exist" in str(err.value) and workspace.files_dir in str(err.value)


def test_relative_paths_cannot_leave_files(workspace: Workspace, tmp_path: Path) -> None:
    (Path(workspace.root) / "secret.csv").write_text("a\n1\n")
    with pytest.raises(InvalidArgument, match="leaves the workspace's Files/"):
        resolve_file(workspace.files_dir, "../secret.csv")
    # Absolute paths are the user's explicit choice.
    assert resolve_file(workspace.files_dir, Path(workspace.root) / "secret.csv").is_file()


def test_zero_rows_is_an_error(workspace: Workspace) -> None:
    (Path(workspace.files_dir) / "empty.csv").write_text("a,b\n")
    with pytest.raises(InvalidArgument, match="no rows to load"):
        load_file(workspace.tables, workspace.files_dir, "empty.csv", "raw.empty")
    assert not workspace.tables.exists("raw.empty")


def test_reserved_and_invalid_table_names_are_refused(workspace: Workspace) -> None:
    (Path(workspace.files_dir) / "a.csv").write_text("a\n1\n")
    with pytest.raises(InvalidTableName, match="reserved"):
        load_file(workspace.tables, workspace.files_dir, "a.csv", "lakeloom.x")
    with pytest.raises(InvalidTableName, match="invalid table name"):
        load_file(workspace.tables, workspace.files_dir, "a.csv", "nodot")
