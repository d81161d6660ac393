"""memcap: how much text can a frozen language model decode from a few trainable vectors?

A reimplementation of Kuratov et al., "Cramming 1568 Tokens into a Single Vector and Back
Again" (ACL 2025). See README.md for the workflow and docs/records.md for the file formats.
"""

__version__ = "0.1.0"
