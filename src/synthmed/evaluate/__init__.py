"""Evaluate stage: fidelity, diversity, memorisation, usefulness (TSTR) and explanations."""
