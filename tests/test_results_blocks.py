"""benchmarks/harness.write_results: a benchmark rewrites its own block of RESULTS.md and nothing else."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from harness import results_markers, write_results  # noqa: E402


def test_a_benchmark_replaces_its_block_whole_and_leaves_the_prose(tmp_path, monkeypatch):
    begin, end = results_markers("speed.py forward")
    other_begin, other_end = results_markers("speed.py vae")
    document = tmp_path / "RESULTS.md"
    document.write_text(f"# Results\n\nWhy this table.\n\n{begin}\nold table\n{end}\n\nWhat it means.\n\n"
                        f"{other_begin}\nuntouched\n{other_end}\n")
    monkeypatch.setattr(sys, "argv", ["benchmarks/speed.py", "--tables", "forward"])
    for rows in ("| a |\n| --- |\n| 1 |", "| a |\n| --- |\n| 2 |"):
        write_results("speed.py forward", rows, "a 2-core CPU; 2026-12-06", "model v7", path=document)
    text = document.read_text()
    assert text == (f"# Results\n\nWhy this table.\n\n{begin}\nMade by `python benchmarks/speed.py --tables forward` "
                    f"on a 2-core CPU; 2026-12-06; model: model v7.\n\n| a |\n| --- |\n| 2 |\n{end}\n\n"
                    f"What it means.\n\n{other_begin}\nuntouched\n{other_end}\n")


def test_a_document_without_the_block_is_left_as_it_is(tmp_path):
    document = tmp_path / "RESULTS.md"
    document.write_text("# Results\n")
    with pytest.raises(SystemExit, match="no '<!-- generated: batch.py whole -->'") as stop:
        write_results("batch.py whole", "table", "machine", path=document)
    assert "\n" not in str(stop.value)
    assert document.read_text() == "# Results\n"


def test_a_missing_document_stops_the_run_in_one_line_and_is_not_created(tmp_path):
    document = tmp_path / "RESULTS.md"
    with pytest.raises(SystemExit, match="does not exist") as stop:
        write_results("batch.py whole", "table", "machine", path=document)
    assert "\n" not in str(stop.value)
    assert not document.exists()
