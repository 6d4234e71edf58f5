"""campaign.loader on files read in many blocks: cuts, worker processes, the streaming API."""

from __future__ import annotations

import numpy as np
import pytest

from campaign.loader import csv_file, load_recipients, read_recipients
from campaign.loader.first_rows import FirstRows
from campaign.model import Problem, Recipient, SkippedRow

TRICKY = (
    "phone,name,note\r\n"
    '+447911123456,"Ann\r\nSmith",a\r\n'
    '+447911123457,Bob,"24"" screen"\r\n'
    '+447911123458,Cy,24" screen\r\n'  # a stray quote: literal, as in a spreadsheet
    "\r\n"
    '+447911123459,"Dee\n""Jr""\n",b\r'  # a lone CR ends this row
    "+447911123460,Eve,c\n"
)


def codes(result) -> list[tuple[int | None, str]]:
    return [(p.row, p.code) for p in result.problems]


@pytest.mark.parametrize("block_size", [1, 7, 64, 1 << 20])
def test_any_block_size_reads_the_same_rows(tmp_path, monkeypatch, block_size):
    """Quoted line breaks, doubled and stray quotes, CRLF and lone CR: the same rows and row
    numbers however small the blocks are."""
    path = tmp_path / "tricky.csv"
    path.write_bytes(TRICKY.encode())
    monkeypatch.setattr(csv_file, "BLOCK_SIZE", block_size)
    result = load_recipients(path)
    assert result.ok, result.problems
    assert result.recipients == [
        Recipient(2, "+447911123456", "Ann\r\nSmith", {"note": "a"}),
        Recipient(3, "+447911123457", "Bob", {"note": '24" screen'}),
        Recipient(4, "+447911123458", "Cy", {"note": '24" screen'}),
        Recipient(6, "+447911123459", 'Dee\n"Jr"', {"note": "b"}),
        Recipient(7, "+447911123460", "Eve", {"note": "c"}),
    ]


@pytest.mark.parametrize("block_size", [1, 1 << 20])
def test_a_row_wider_than_any_of_its_lines(tmp_path, monkeypatch, block_size):
    """A row over several lines can hold more cells than any one line: they are counted."""
    path = tmp_path / "wide.csv"
    path.write_text('phone,name\n+447911123456,"A\nB",x,y,z\n+447911123457,Bob\n')
    monkeypatch.setattr(csv_file, "BLOCK_SIZE", block_size)
    result = load_recipients(path)
    assert codes(result) == [(2, "too_many_cells")]
    assert "row has 5 cells" in result.problems[0].message
    assert result.recipients == [Recipient(3, "+447911123457", "Bob", {})]


def test_unclosed_quote_far_into_the_file_names_its_row(tmp_path, monkeypatch):
    """A quote never closed, blocks after the header, is named by the row that opens it;
    a stray quote before it does not mislead."""
    rows = [f"+4479111{i:05d},Name {i}" for i in range(200)]
    rows[50] = '+447911100050,24" screen'
    rows[150] = '+447911100150,"Bob'
    path = tmp_path / "unclosed.csv"
    path.write_text("phone,name\n" + "\n".join(rows) + "\n")
    monkeypatch.setattr(csv_file, "BLOCK_SIZE", 256)
    result = load_recipients(path)
    assert codes(result) == [(None, "unclosed_quote")]
    assert result.problems[0].message.startswith("row 152 opens a quoted value")
    assert result.recipients == result.skipped == result.invalid == []


def _mixed_rows(count: int) -> str:
    """Valid, repeated, repaired and invalid phones, some repeats far apart."""
    lines = ["phone,name,1"]
    for i in range(count):
        phone = f"+4479111{i % 1500:05d}" if i % 7 else f"07911 1{i % 900:05d}"
        if i % 97 == 0:
            phone = f"4479111{i:05d}.0"  # repaired, with a warning
        if i % 101 == 0:
            phone = "not a phone"
        lines.append(f"{phone},Name {i},{'' if i % 89 == 0 else 'v'}")
    return "\n".join(lines) + "\n"


def test_worker_processes_read_as_this_process_does(tmp_path, monkeypatch):
    """Phones read by worker processes, blocks at a time, give exactly the in-process result;
    a duplicate blocks after its first row still names it."""
    path = tmp_path / "many.csv"
    path.write_text(_mixed_rows(4000))
    monkeypatch.setattr(csv_file, "BLOCK_SIZE", 4096)
    here = load_recipients(path, variables=["v"], default_region="GB", workers=0)
    there = load_recipients(path, variables=["v"], default_region="GB", workers=2)
    assert there == here
    assert SkippedRow(2704, "+447911100002", "Name 2702", "duplicate of row 4") in there.skipped
    assert {p.code for p in there.problems} == {
        "duplicate",
        "empty_variable",
        "excel_float_repaired",
        "invalid_phone",
    }


def test_read_recipients_gives_the_rows_a_chunk_at_a_time(tmp_path, monkeypatch):
    """The streaming API gives, chunk by chunk and in row order, what load_recipients does."""
    path = tmp_path / "many.csv"
    path.write_text(_mixed_rows(600))
    monkeypatch.setattr(csv_file, "BLOCK_SIZE", 2048)
    whole = load_recipients(path, variables=["v"], default_region="GB")
    reading = read_recipients(path, variables=["v"], default_region="GB")
    assert reading.variable_keys == ["1"]
    chunks = list(reading)
    assert len(chunks) > 5
    assert not reading.stopped and reading.ok
    assert [r for c in chunks for r in c.recipients] == whole.recipients
    assert [s for c in chunks for s in c.skipped] == whole.skipped
    assert [s for c in chunks for s in c.invalid] == whole.invalid
    assert [p for c in chunks for p in c.problems] == whole.problems


def test_rows_counted_but_not_kept(tmp_path, monkeypatch):
    """keep_rows=False: the same counts and problems, and no rows held."""
    path = tmp_path / "many.csv"
    path.write_text(_mixed_rows(600))
    monkeypatch.setattr(csv_file, "BLOCK_SIZE", 2048)
    kept = load_recipients(path, variables=["v"], default_region="GB")
    counted = load_recipients(path, variables=["v"], default_region="GB", keep_rows=False)
    assert counted.recipients == counted.skipped == counted.invalid == []
    assert (counted.valid_rows, counted.skipped_rows, counted.invalid_rows) == (
        len(kept.recipients),
        len(kept.skipped),
        len(kept.invalid),
    )
    assert (kept.valid_rows, kept.skipped_rows, kept.invalid_rows) == (
        len(kept.recipients),
        len(kept.skipped),
        len(kept.invalid),
    )
    assert counted.problems == kept.problems


def test_each_chunk_is_handed_over_as_it_is_read(tmp_path, monkeypatch):
    """on_chunk is given every chunk, in row order: together, the rows load_recipients keeps."""
    path = tmp_path / "many.csv"
    path.write_text(_mixed_rows(600))
    monkeypatch.setattr(csv_file, "BLOCK_SIZE", 2048)
    chunks = []
    result = load_recipients(path, keep_rows=False, on_chunk=chunks.append)
    kept = load_recipients(path)
    assert len(chunks) > 5
    assert [r for c in chunks for r in c.recipients] == kept.recipients
    assert [s for c in chunks for s in c.invalid] == kept.invalid
    assert result.valid_rows == len(kept.recipients)


def test_a_file_problem_found_late_stops_the_reading(tmp_path, monkeypatch):
    """An unclosed quote found after some chunks were given: `stopped`, and the problem."""
    path = tmp_path / "late.csv"
    path.write_text("phone,name\n" + "+447911123456,Ann\n" * 300 + '+447911123457,"Bob\n')
    monkeypatch.setattr(csv_file, "BLOCK_SIZE", 512)
    reading = read_recipients(path)
    assert list(reading)  # some chunks came before the problem was found
    assert reading.stopped and not reading.ok
    assert [p.code for p in reading.file_problems] == ["unclosed_quote"]


def test_first_rows_remembers_numbers_across_blocks():
    """Each number's first row is kept across calls; within a call the earliest row wins."""
    seen = FirstRows()
    first = seen.first_rows(np.array([447911123456, 33612345678]), np.array([2, 3]))
    assert first.tolist() == [2, 3]
    for start in range(4, 40, 4):  # enough calls to merge the arrays kept
        numbers = np.array([33612345678, 10 + start, 10 + start, 447911123456])
        first = seen.first_rows(numbers, np.arange(start, start + 4))
        assert first.tolist() == [3, start + 1, start + 1, 2]


def test_problem_for_the_whole_file():
    """Problem.for_file names no row, column or value."""
    problem = Problem.for_file("no_rows", "nothing below the header")
    assert problem == Problem(None, None, None, "no_rows", "nothing below the header")
