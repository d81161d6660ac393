"""The optimisation core (torch): models, the [mem] engine, the capacity search, vectors files.

Imports only the package's foundation (memcap.io, memcap.records, memcap.corpora); never a
stage or the analysis.
"""
