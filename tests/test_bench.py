"""The README "Performance" table is bench/results.json, not a hand-edited copy."""

from __future__ import annotations

from bench.run import MARK_BEGIN, MARK_END, README, TABLE, load_figures, markdown_table


def test_readme_table_matches_results_json() -> None:
    figures = load_figures()
    assert figures, "bench/results.json is missing: run `make bench`"
    table = markdown_table(figures)
    readme = README.read_text()
    block = readme.split(MARK_BEGIN, 1)[1].split(MARK_END, 1)[0]
    assert block.strip() == table.strip()
    assert TABLE.read_text().strip() == table.strip()


def test_every_targeted_figure_is_measured_or_says_why() -> None:
    from bench.run import FIGURES

    figures = load_figures()
    for name, figure in FIGURES.items():
        if figure.target is None:
            continue
        value = figures[name]["value"]
        assert isinstance(value, int | float) or value.startswith("not measured"), name
