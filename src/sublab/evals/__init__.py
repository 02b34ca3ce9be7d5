"""Evaluations: question sets, answer matching, preference rates and exact probabilities,
and the statistics that compare conditions across seeds."""
