"""The documents hold together: every relative link points at a file of the repository and, with ``#anchor``, at a
heading of that file; every table of benchmarks/RESULTS.md was written by its benchmark (inside a generated block)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", ROOT / "benchmarks" / "RESULTS.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def anchors(document: Path) -> set[str]:
    """GitHub's anchors for the headings of a markdown file: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+ (.+)$", document.read_text(encoding="utf-8"), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}


def outside_code(text: str) -> str:
    return re.sub(r"^```.*?^```$", "", text, flags=re.S | re.M)


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_reaches_a_file_and_its_heading(document):
    broken = []
    for target in LINK.findall(outside_code(document.read_text(encoding="utf-8"))):
        if re.match(r"[a-z]+:", target):  # https:, mailto: ...
            continue
        path, _, anchor = target.partition("#")
        file = (document.parent / path).resolve() if path else document
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target}: no such heading")
    assert broken == []


def test_every_results_table_is_written_by_its_benchmark():
    text = (ROOT / "benchmarks" / "RESULTS.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^<!-- generated: (.+?) -->\n(.*?)^<!-- /generated: \1 -->$", text, flags=re.S | re.M)
    assert blocks, "RESULTS.md has no generated blocks"
    for name, body in blocks:
        assert body.startswith("Made by `python benchmarks/"), f"block {name!r} was not written by a benchmark run"
    outside = re.sub(r"^<!-- generated: (.+?) -->\n.*?^<!-- /generated: \1 -->$", "", text, flags=re.S | re.M)
    hand_tables = [line for line in outside_code(outside).splitlines() if line.startswith("|")]
    assert hand_tables == [], "a table outside the generated blocks: give it a block its benchmark writes"


def test_every_section_of_results_that_the_code_and_documents_cite_exists():
    """Help texts, docstrings, configs and documents cite RESULTS.md sections by name (``RESULTS.md, "Step caches"``)
    instead of repeating numbers: each name must still begin a heading there."""
    headings = re.findall(r"^#+ (.+)$", (ROOT / "benchmarks" / "RESULTS.md").read_text(encoding="utf-8"), flags=re.M)
    sources = [*(ROOT / "src").rglob("*.py"), *(ROOT / "configs").rglob("*.toml"), *DOCUMENTS,
               *(ROOT / "benchmarks").glob("*.py"), *(ROOT / "scripts").glob("*")]
    cited, missing = 0, []
    for source in sources:
        text = re.sub(r"\s*\n\s*(#\s*)?", " ", source.read_text(encoding="utf-8"))  # lines (and comments) joined
        for name in re.findall(r"RESULTS\.md`?[,:]? (?:section )?[\"']([^\"']+)[\"']", text):
            cited += 1
            if not any(heading.startswith(name.rstrip(". ")) or re.sub(r"^\d+\. ", "", heading).startswith(name)
                       for heading in headings):
                missing.append(f"{source.relative_to(ROOT)}: {name!r}")
    assert cited >= 10 and missing == []
