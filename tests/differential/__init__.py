"""Differential fuzzing of vivace against real trio 0.35.0.

``program`` is the model of a random concurrent program and renders it as Python source
that runs against any trio-like module; ``strategies`` generates programs with
Hypothesis; ``runner`` runs one program on a library with deterministic scheduling and a
MockClock and returns its outcome and trace; ``compare`` decides whether two runs agree
and writes standalone repros.
"""
