"""Rule vocab: one vocabulary for random text (memcap.vocab.write_vocab)."""

import sys

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)

from memcap.vocab import write_vocab

write_vocab(snakemake.params.spec, snakemake.output.words, cache_dir=snakemake.params.cache_dir)
