"""Rule random_texts: random-word texts for one L_up (memcap.texts.write_texts)."""

import sys

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)

from memcap.texts import write_texts

write_texts(
    snakemake.wildcards.dataset,
    snakemake.params.spec,
    snakemake.output.texts,
    vocab=snakemake.input.vocab,
    vocab_spec=snakemake.params.vocab_spec,
    max_length=snakemake.params.max_length,
)
