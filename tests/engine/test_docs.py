"""The docs tables are generated from the one hook-point table and the adapters."""

from pathlib import Path

from hooklens.architectures._table import optional_points_table, points_table

README = Path(__file__).resolve().parents[2] / "hooklens" / "architectures" / "README.md"


def test_readme_tables_are_current():
    text = README.read_text()
    assert points_table() in text, "regenerate with: python -m hooklens.architectures._table"
    assert optional_points_table() in text
