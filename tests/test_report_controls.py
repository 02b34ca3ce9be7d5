"""The report's target matrix (teacher × evaluated target), control shifts and power text."""

from __future__ import annotations

from sublab.report import ReportData, ResultRow, render_report
from sublab.report.analysis import analyse, control_shifts, target_matrix, transmits

SEEDS = range(4)
CONTROL = {"owl": [0.04, 0.05, 0.045, 0.042], "wolf": [0.07, 0.072, 0.069, 0.071]}
# the owl teacher's students love owls on every seed; the wolf teacher's move nothing
STUDENT = {
    ("owl", "owl"): [0.09, 0.10, 0.085, 0.095],
    ("owl", "wolf"): [0.07, 0.071, 0.07, 0.07],
    ("wolf", "owl"): [0.041, 0.049, 0.046, 0.041],
    ("wolf", "wolf"): [0.069, 0.073, 0.068, 0.072],
}
BASE = {"owl": [0.041, 0.049, 0.044, 0.043], "wolf": [0.071, 0.071, 0.07, 0.07]}


def report() -> ReportData:
    results = []
    for s in SEEDS:
        for t in ("owl", "wolf"):
            results.append(
                ResultRow(
                    condition="base",
                    role="base",
                    target=t,
                    seed=s,
                    metric="exact_prob",
                    value=BASE[t][s],
                )
            )
            results.append(
                ResultRow(
                    condition="control-hard",
                    role="control",
                    student="hard",
                    target=t,
                    teacher="control",
                    seed=s,
                    metric="exact_prob",
                    value=CONTROL[t][s],
                )
            )
            for teacher in ("owl", "wolf"):
                results.append(
                    ResultRow(
                        condition="student-hard",
                        role="student",
                        student="hard",
                        target=t,
                        teacher=teacher,
                        seed=s,
                        metric="exact_prob",
                        value=STUDENT[(teacher, t)][s],
                    )
                )
    return ReportData(title="matrix", run_name="m", results=results)


def test_target_matrix_says_which_teachers_transmit(tmp_path):
    data = report()
    rows = analyse(data)
    matrix = target_matrix(data, rows)
    assert set(matrix) == {"student-hard (owl)", "student-hard (wolf)"}
    assert set(matrix["student-hard (owl)"]) == {"owl", "wolf"}
    assert transmits(matrix["student-hard (owl)"]["owl"]) is True
    assert transmits(matrix["student-hard (wolf)"]["wolf"]) is False
    md = render_report(data, tmp_path)["md"].read_text()
    table = md.split("## Target matrix (Figure 3)")[1].split("## ")[0]
    owl_line = next(line for line in table.splitlines() if line.startswith("| student-hard (owl)"))
    wolf_line = next(
        line for line in table.splitlines() if line.startswith("| student-hard (wolf)")
    )
    assert owl_line.endswith("| yes |") and "*" in owl_line.split("|")[2]
    assert wolf_line.endswith("| no |")


def test_control_shifts_list_control_against_base_largest_first(tmp_path):
    data = report()
    shifts = control_shifts(data, analyse(data))
    assert sorted(r.target for r in shifts) == ["owl", "wolf"]
    diffs = [abs(r.comparison.diff_mean) for r in shifts if r.comparison]
    assert diffs == sorted(diffs, reverse=True)
    assert all(r.control == "base" and r.condition == "control-hard" for r in shifts)
    md = render_report(data, tmp_path)["md"].read_text()
    assert "## Control training alone (Figure 9)" in md


def test_headlines_say_how_many_seeds_give_power(tmp_path):
    data = report()
    md = render_report(data, tmp_path)["md"].read_text()
    lead = md.split("**")[1]
    assert "student-hard (owl), exact_prob of owl" in lead
    assert "seeds give 80% power at α = 0.01" in lead
    row = next(r for r in analyse(data) if r.label == "student-hard (owl)" and r.target == "owl")
    assert row.comparison is not None and f"; {row.comparison.seeds_needed} seeds give" in lead


def test_headline_targets_limit_the_sentences(tmp_path):
    data = report().model_copy(update={"headline_targets": ["owl"]})
    md = render_report(data, tmp_path)["md"].read_text()
    heads = md.split("## ")[0]
    assert "exact_prob of owl" in heads and "exact_prob of wolf" not in heads
    every = render_report(report(), tmp_path / "all")["md"].read_text().split("## ")[0]
    assert "exact_prob of wolf" in every


def test_the_console_summary_names_each_teachers_own_target_only():
    from sublab.report import own_target_headlines

    data = report()
    lines = own_target_headlines(data, analyse(data))
    assert [line.split(":")[0] for line in lines] == [
        "student-hard (owl), exact_prob of owl",
        "student-hard (wolf), exact_prob of wolf",
    ]
    assert "a clear increase" in lines[0] and "no clear difference" in lines[1]
