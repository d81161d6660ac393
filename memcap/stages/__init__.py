"""The workflow's stages: one module per job a rule runs (texts, download, compress, geometry,
precision, baselines), and what they share (the parts store, seeds and batching, GPU slots).

Builds on memcap.core for the model work and on memcap.analysis for the tables a stage writes.
"""
