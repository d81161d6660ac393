"""The analysis (pandas and matplotlib, never torch): metrics, the paper's reference values,
tables, figures and the LaTeX report, all pure functions over records and stage outputs.

tests/test_layers.py imports every module here with torch made unimportable.
"""
