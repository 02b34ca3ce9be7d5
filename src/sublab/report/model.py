"""The report's data model: every per-seed value of a run, and the tables made from them.

:class:`ReportData` is saved as ``report.json`` beside the report, so a report can be rebuilt
or re-analysed from its run directory (``sublab report RUN``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, model_validator

from sublab.evals.stats import Comparison, Summary
from sublab.experiment.conditions import Condition

REPORT_VERSION = 2
"""2: result rows carry their condition's role and student recipe."""


class ResultRow(BaseModel):
    """One measured value: one condition, one target, one seed, one metric."""

    condition: str = Field(
        description="Which model, as shown: base, control-hard, student-soft, cross-student-hard"
        " (the role, then the student recipe)."
    )
    role: str | None = Field(
        None,
        description="The condition's role (sublab.experiment.conditions.Role); None for a "
        "label of no known role, which is shown but compared with nothing.",
    )
    student: str | None = Field(None, description="The student recipe's name, for students.")
    target: str = Field(description="The trait target the value measures, e.g. 'owl'.")
    teacher: str | None = Field(
        None, description="Label of the teacher whose data trained this model (None for base)."
    )
    seed: int = Field(description="The statistical unit: base seed (or training seed for APIs).")
    metric: str = Field(description="Metric name, e.g. 'sampled_rate' or 'exact_prob'.")
    value: float = Field(description="The measured value (finite).", allow_inf_nan=False)
    dose: int | None = Field(
        None,
        description="For a dose checkpoint: the optimizer steps it was saved after; None for "
        "the final model (the report's main tables).",
    )

    @model_validator(mode="before")
    @classmethod
    def _role_from_label(cls, data: Any) -> Any:
        """Rows of version-1 reports have only the label: read the role from it."""
        if isinstance(data, dict) and "role" not in data and "condition" in data:
            cond = Condition.from_label(str(data["condition"]))
            if cond is not None:
                data = {**data, "role": cond.role.value, "student": cond.student}
        return data

    def typed_condition(self) -> Condition | None:
        """The row's condition, or None for a label of no known role."""
        from sublab.experiment.conditions import Role

        if self.role is None:
            return None
        return Condition(Role(self.role), self.student)


class TeacherStrength(BaseModel):
    """How strongly a teacher carries its trait."""

    trait_prob: float | None = Field(
        None,
        description="How strongly the teacher shows its trait: its own P(target answer) "
        "(preference) or misaligned rate (misalignment).",
    )
    number_kl: float | None = Field(
        None,
        description="KL(teacher || base) per token on the teacher's kept completions "
        "(numbers, code or reasoning), nats.",
    )


class ReportData(BaseModel):
    """Everything a report shows (saved as report.json beside it)."""

    version: int = Field(REPORT_VERSION, description="Schema version of this record.")
    title: str = Field(description="Title at the top of the report.")
    run_name: str = Field(description="Name of the run the results come from.")
    created: str | None = Field(None, description="When the results were produced (ISO 8601).")
    config_text: str = Field("", description="The TOML config that made the run, verbatim.")
    results: list[ResultRow] = Field(
        default_factory=list,
        description="Every per-seed value; the first metric listed is the headline metric.",
    )
    filter_reports: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Per teacher label, the number filter's report (total, kept, "
        "kept_fraction, reasons, examples).",
    )
    teacher_strengths: dict[str, TeacherStrength] = Field(
        default_factory=dict, description="Per teacher label, its trait probability and KL."
    )
    notes: list[str] = Field(default_factory=list, description="Free-text notes and caveats.")
    channel: str = Field("numbers", description="The channel the teachers wrote.")
    headline_targets: list[str] = Field(
        default_factory=list,
        description="Targets whose comparisons make the headline sentences (the teachers' "
        "targets and the specificity target when every candidate is measured); empty: all.",
    )


class TableRow(BaseModel):
    """One condition of one (metric, target) table, with its statistics."""

    metric: str = Field(description="Metric name.")
    target: str = Field(description="Trait target.")
    condition: str = Field(description="Condition label.")
    is_control: bool = Field(False, description="A control (not a headline effect).")
    teacher: str | None = Field(description="Teacher label, if any.")
    values: dict[int, float] = Field(description="Value per seed (mean if a seed repeats).")
    summary: Summary = Field(description="Mean and 95% CI over seeds.")
    control: str | None = Field(description="Label of the matched control, if any.")
    control_mean: float | None = Field(
        description="Mean of the matched control over the paired seeds."
    )
    comparison: Comparison | None = Field(description="This minus its control, paired on seed.")

    @property
    def label(self) -> str:
        """Condition, with the teacher in brackets when there is one."""
        return f"{self.condition} ({self.teacher})" if self.teacher else self.condition
