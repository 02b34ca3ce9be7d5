"""The animal-preference experiment: teachers × students × evaluations with the paper's controls."""
