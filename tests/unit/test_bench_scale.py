"""The scaling measurement's pure parts (bench/scale.py): the sizes, the table with its ratios,
the JSON, the picture; and the report `./run bench --clients` writes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from bench import scale
from bench.report import Report
from bench.runner import write_results


def size(clients: int, factor: float) -> scale.Size:
    figures = {key: 10.0 * factor for key in scale.TIMES}
    figures.update(controller_mib=200.0 * factor, host_mib=3000.0 * factor)
    return scale.Size(clients, figures)


SIZES = [size(3, 1.0), size(10, 1.2), size(25, 2.0)]


@pytest.mark.parametrize(("text", "sizes"), [("3,10,25", (3, 10, 25)), ("5", (5,)), ("10,3", (10, 3))])
def test_sizes_are_client_counts(text: str, sizes: tuple[int, ...]) -> None:
    assert scale.parse_sizes(text) == sizes


@pytest.mark.parametrize(("text", "says"), [("3,ten", "separated by commas"), ("", "separated by commas"),
                                            ("0,3", "1 or more"), ("3,3", "each given once")])
def test_bad_sizes_are_refused_with_the_form_to_use(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        scale.parse_sizes(text)


def test_the_table_gives_each_size_and_its_ratio_to_the_first() -> None:
    table = scale.rows(SIZES)
    assert table[0] == ["figure", "unit", "3 clients", "10 clients", "25 clients", "10 / 3", "25 / 3"]
    cold = next(row for row in table if row[0] == "cold pulumi up")
    assert cold[1:] == ["s", "10.0", "12.0", "20.0", "1.20", "2.00"]
    memory = next(row for row in table if row[0] == "controller peak memory")
    assert memory[-2:] == ["1.20", "2.00"]


def test_a_failed_size_shows_dashes_and_its_note() -> None:
    failed = scale.Size(25, notes=["failed: pulumi up exited 1"])
    table = scale.rows([SIZES[0], failed])
    assert next(row for row in table if row[0] == "pulumi destroy")[2:] == ["10.0", "-", "-"]
    assert "25 clients: failed: pulumi up exited 1" in scale.text([SIZES[0], failed])


def test_json_keeps_figures_and_ratios() -> None:
    doc = scale.to_json(SIZES)
    assert [d["clients"] for d in doc] == [3, 10, 25]
    assert doc[2]["ratios"]["cold_up"] == 2.0 and doc[0]["ratios"]["host_mib"] == 1.0


def test_bench_with_clients_writes_the_scaling_table_json_and_picture(tmp_path: Path) -> None:
    result = Report(facts={"host": "test"}, settings={"clients": [3, 10, 25]}, figures=[], notes=[])
    out = io.StringIO()
    write_results(result, SIZES, out, tmp_path / "b.json", tmp_path / "b.md")
    assert "scaling: one cluster per size" in out.getvalue()
    assert json.loads((tmp_path / "b.json").read_text())["scaling"][1]["clients"] == 10
    markdown = (tmp_path / "b.md").read_text()
    assert "| cold pulumi up | s | 10.0 | 12.0 | 20.0 | 1.20 | 2.00 |" in markdown
    assert "![What a cluster costs by its number of clients](b-scaling.svg)" in markdown
    svg = (tmp_path / "b-scaling.svg").read_text()
    assert svg.startswith("<?xml") and "time by number of clients" in svg and "peak memory" in svg


def test_the_command_line_takes_the_sizes_or_refuses_them(capsys: pytest.CaptureFixture[str]) -> None:
    from bench.cli import parser

    assert parser().parse_args(["run", "--clients", "3,10,25"]).clients == (3, 10, 25)
    with pytest.raises(SystemExit) as exit_:
        parser().parse_args(["run", "--clients", "3,3"])
    assert exit_.value.code == 2 and "each given once" in capsys.readouterr().err
