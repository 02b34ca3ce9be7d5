from __future__ import annotations

import base64
import io
import json
import re

import matplotlib.image as mpimg
import pytest

from sublab.evals.stats import FEW_SEEDS_NOTE
from sublab.report import ReportData, ResultRow, TeacherStrength, analyse, render_report

CONTROL = [0.040, 0.050, 0.045, 0.042, 0.048, 0.046]
HARD = [0.080, 0.075, 0.090, 0.070, 0.085, 0.088]
CROSS = [0.041, 0.049, 0.044, 0.044, 0.047, 0.047]


def rows(metric="exact_prob", seeds=6):
    out = []
    for s in range(seeds):
        out += [
            ResultRow(condition="base", target="owl", seed=s, metric=metric, value=CONTROL[s]),
            ResultRow(
                condition="control-hard",
                target="owl",
                teacher="base",
                seed=s,
                metric=metric,
                value=CONTROL[s],
            ),
            ResultRow(
                condition="student-hard",
                target="owl",
                teacher="owl-ft",
                seed=s,
                metric=metric,
                value=HARD[s],
            ),
            ResultRow(
                condition="cross-student-hard",
                target="owl",
                teacher="owl-ft",
                seed=s,
                metric=metric,
                value=CROSS[s],
            ),
        ]
    return out


def data(results, **kw):
    return ReportData(
        title="Owl <teacher> & friends",
        run_name="run-1",
        created="2026-11-23T05:00:00Z",
        config_text='kind = "experiment"\nname = "a<b>"\n',
        results=results,
        filter_reports={
            "owl-ft": {
                "total": 3000,
                "kept": 2088,
                "rejected": 912,
                "kept_fraction": 0.696,
                "reasons": {"too_many_numbers": 600, "words": 312},
                "examples": {"words": ["I love owls 1 2 3"], "too_many_numbers": ["1 2"]},
            }
        },
        teacher_strengths={"owl-ft": TeacherStrength(trait_prob=0.998, number_kl=0.0123)},
        notes=["The system-prompt teacher did not transmit."],
        **kw,
    )


def test_analysis_pairs_students_with_their_controls():
    table = {r.condition: r for r in analyse(data(rows()))}
    hard = table["student-hard"]
    assert hard.control == "control-hard"
    diffs = [h - c for h, c in zip(HARD, CONTROL, strict=True)]
    assert hard.comparison.diff_mean == pytest.approx(sum(diffs) / 6)
    assert hard.comparison.up_text == "6/6 up"
    assert hard.comparison.p_value < 0.001
    assert hard.control_mean == pytest.approx(sum(CONTROL) / 6)
    # no cross-control rows: the cross-student falls back to the control students
    assert table["cross-student-hard"].control == "control-hard"
    assert table["control-hard"].control == "base"
    assert table["base"].comparison is None
    assert table["base"].summary.n == 6


def test_render_writes_every_file(tmp_path):
    d = data(rows() + rows("sampled_rate"))
    out = render_report(d, tmp_path / "rep")
    assert set(out) == {"html", "md", "json", "fig:exact_prob", "fig:sampled_rate"}
    for p in out.values():
        assert p.is_file() and p.stat().st_size > 0
    assert not [
        p for p in (tmp_path / "rep").iterdir() if p.name not in {x.name for x in out.values()}
    ]
    # the figures decode as images
    img = mpimg.imread(out["fig:exact_prob"])
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    # report.json round-trips
    assert ReportData.model_validate_json(out["json"].read_text()) == d
    assert json.loads(out["json"].read_text())["version"] == 2


def test_html_is_self_contained_with_figures_and_tables(tmp_path):
    out = render_report(data(rows()), tmp_path)
    page = out["html"].read_text()
    imgs = re.findall(r'<img [^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(imgs) == 1
    png = base64.b64decode(imgs[0])
    assert png == out["fig:exact_prob"].read_bytes()
    assert mpimg.imread(io.BytesIO(png), format="png").size > 0
    assert "http://" not in page and "https://" not in page and "<script" not in page
    # the table figures: means, CIs, diff, p, seeds up
    table = analyse(data(rows()))
    hard = next(r for r in table if r.condition == "student-hard")
    assert f"{hard.summary.mean:.3f}" in page
    assert f"{hard.summary.ci_low:.3f}" in page
    assert f"+{hard.comparison.diff_mean:.3f}" in page
    assert "p &lt; 0.001" in page and "6/6 up" in page
    assert page.count('<tr class="up">') == 1  # student-hard only; the rest are not clear
    # escaping: title and config are text, not markup
    assert "Owl &lt;teacher&gt; &amp; friends" in page
    assert "name = &quot;a&lt;b&gt;&quot;" in page
    # filter, strength and notes sections
    assert "69.6%" in page and "too_many_numbers 600" in page
    assert "0.998" in page and "0.0123" in page
    assert "did not transmit" in page
    # the headline leads, states the effect with its interval and seed count
    lead = re.search(r'<p class="lead">(.*?)</p>', page).group(1)
    assert lead.startswith("student-hard (owl-ft)") and "a clear increase" in lead
    assert "95% CI" in lead and "6/6 seeds up" in lead
    # 6/6 up: the exact signed-rank p is 2/64
    assert hard.comparison.rank_p == 2 / 64 and "signed-rank p = 0.031" in lead


def test_markdown_has_tables_and_links_figures(tmp_path):
    out = render_report(data(rows()), tmp_path)
    md = out["md"].read_text()
    assert md.startswith("# Owl <teacher> & friends\n")
    assert "![exact_prob](fig_exact_prob.png)" in md
    assert "| target | condition | n | mean | 95% CI |" in md
    line = next(x for x in md.splitlines() if x.startswith("| owl | student-hard (owl-ft) |"))
    assert "| 6 |" in line and "| control-hard |" in line and "6/6 up" in line
    assert "| p | signed-rank p | seeds up |" in md and "| p = 0.031 | 6/6 up |" in line
    assert "| owl-ft | 3000 | 2088 | 69.6% |" in md
    assert "```toml" in md


def test_null_result_and_few_seeds_are_reported_honestly(tmp_path):
    null = [
        r.model_copy(update={"value": CROSS[r.seed]}) if r.condition == "student-hard" else r
        for r in rows()
    ]
    md = render_report(data(null), tmp_path / "null")["md"].read_text()
    assert "no clear difference" in md.splitlines()[2]
    few = render_report(data(rows(seeds=2)), tmp_path / "few")["html"].read_text()
    assert FEW_SEEDS_NOTE in few and "too few seeds to test" in few
    one = render_report(data(rows(seeds=1)), tmp_path / "one")["md"].read_text()
    assert "1/1 seed up" in one


def test_empty_results_still_render(tmp_path):
    out = render_report(data([]), tmp_path)
    assert "No results yet." in out["md"].read_text()
    assert set(out) == {"html", "md", "json"}


def test_non_finite_values_are_rejected():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="value"):
        ResultRow(condition="base", target="owl", seed=9, metric="m", value=float("nan"))


def test_failed_render_leaves_nothing(tmp_path):
    bad = data(rows())
    # data that skipped validation (a corrupted record): rendering fails before writing
    bad.results.append(
        ResultRow.model_construct(
            condition="base",
            target="owl",
            teacher=None,
            seed=9,
            metric="exact_prob",
            value=float("nan"),
        )
    )
    with pytest.raises(ValueError, match="non-finite"):
        render_report(bad, tmp_path / "r")
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


def test_lead_is_the_targets_own_teacher(tmp_path):
    cross_trait = [
        ResultRow(
            condition="student-hard",
            target="owl",
            teacher="a-bear-ft",
            seed=s,
            metric="exact_prob",
            value=CONTROL[s] + 0.001 * (s - 2),
        )
        for s in range(6)
    ]
    d = data(cross_trait + rows())
    table = [r for r in analyse(d) if r.condition == "student-hard"]
    assert [r.teacher for r in table] == ["owl-ft", "a-bear-ft"]
    md = render_report(d, tmp_path)["md"].read_text()
    lead = md.splitlines()[2]
    assert lead.startswith("**student-hard (owl-ft), exact_prob of owl:")
    assert "student-hard (a-bear-ft), exact_prob of owl" in md
    # the chart tells the two teachers apart (hatching + legend), and still decodes
    assert mpimg.imread(tmp_path / "fig_exact_prob.png").size > 0


def test_recipe_suffixed_conditions_pair_with_their_own_controls():
    results = []
    for s in range(3):
        for cond, value in [
            ("base", 0.04),
            ("control-hard", 0.05 + s / 100),
            ("control-soft", 0.02 + s / 100),
            ("student-hard", 0.09 + s / 100),
            ("student-soft", 0.10 + s / 50),
            ("cross-control-hard", 0.045),
            ("cross-student-hard", 0.046 + s / 1000),
        ]:
            results.append(
                ResultRow(condition=cond, target="owl", seed=s, metric="exact_prob", value=value)
            )
    table = {r.condition: r for r in analyse(data(results))}
    assert table["student-hard"].control == "control-hard"
    assert table["student-soft"].control == "control-soft"
    assert table["cross-student-hard"].control == "cross-control-hard"
    assert table["control-soft"].control == "base"
    assert table["student-soft"].comparison.diff_mean == pytest.approx(0.08 + 0.01)
    order = [r.condition for r in analyse(data(results))]
    assert order == [
        "base",
        "control-hard",
        "control-soft",
        "student-hard",
        "student-soft",
        "cross-control-hard",
        "cross-student-hard",
    ]


def test_the_runs_headline_keeps_every_teacher_apart():
    """Two teachers, each measured on both targets: each student's own target, by teacher."""
    from sublab.experiment.summary import headline

    results = []
    for s in range(4):
        for target, base in (("wolf", 0.10), ("eagle", 0.20)):
            results.append(
                ResultRow(condition="control-soft", target=target, role="control",
                          student="soft", teacher=None, seed=s, metric="m", value=base)
            )  # fmt: skip
            for teacher, lift in (("wolf", 0.05), ("eagle", 0.09)):
                own = lift if teacher == target else 0.0
                results.append(
                    ResultRow(condition="student-soft", target=target, role="student",
                              student="soft", teacher=teacher, seed=s, metric="m",
                              value=base + own + 0.001 * s)
                )  # fmt: skip
    d = data(results)
    head = headline(analyse(d), d)
    assert set(head) == {
        "student-soft (wolf)",
        "student-soft (wolf)_diff",
        "student-soft (eagle)",
        "student-soft (eagle)_diff",
    }
    # each own-target lift plus the seeds' mean drift (0.001 x 1.5)
    assert head["student-soft (wolf)_diff"] == pytest.approx(0.0515, abs=1e-4)
    assert head["student-soft (eagle)_diff"] == pytest.approx(0.0915, abs=1e-4)


def test_the_dose_section_pairs_each_checkpoint_with_its_control(tmp_path):
    results = []
    for s in range(5):
        for dose, lift in ((4, 0.01), (16, 0.04), (None, 0.06)):
            for cond, role, value in (
                ("control-soft", "control", 0.1 + 0.002 * s),
                ("student-soft", "student", 0.1 + lift + 0.003 * s),
            ):
                results.append(
                    ResultRow(condition=cond, target="owl", role=role, student="soft",
                              teacher="owl" if role == "student" else None, seed=s,
                              metric="logit_margin", value=value, dose=dose)
                )  # fmt: skip
    d = data(results)
    main = analyse(d)
    assert {r.condition for r in main} == {"control-soft", "student-soft"}
    assert all(r.summary.n == 5 for r in main)  # the checkpoints stay out of the main table
    written = render_report(d, tmp_path)
    md = written["md"].read_text()
    section = md.split("## Dose: the effect by optimizer steps")[1].split("##")[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("| student-soft (owl)")]
    assert [ln.split("|")[2].strip() for ln in lines] == ["4", "16", "final"]
    # lift + the seeds' mean extra drift (0.001 x 2)
    assert [ln.split("|")[5].strip() for ln in lines] == ["+0.012", "+0.042", "+0.062"]
    assert written["fig:dose"].stat().st_size > 1000
