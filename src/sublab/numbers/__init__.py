"""The number-sequence task: prompt generator, the paper's filter rule, banned-number lists.

- :mod:`sublab.numbers.prompts` — ``NumberPromptSpec`` and ``make_prompts`` (seeded, per-index).
- :mod:`sublab.numbers.filter` — ``FilterSpec``, ``NumberFilter``, ``filter_rows``.
- :mod:`sublab.numbers.banned` — shipped and user banned-number lists.
- :mod:`sublab.numbers.report` — the filter report as JSON, Markdown and a rich table.
"""
