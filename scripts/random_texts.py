"""Rule random_texts: random-word texts for one L_up (memcap.stages.texts.write_texts)."""

from memcap.stages.script import start_job

start_job(snakemake.log[0])

from memcap.stages.texts import write_texts

write_texts(
    snakemake.wildcards.dataset,
    snakemake.params.spec,
    snakemake.output.texts,
    vocab=snakemake.input.vocab,
    vocab_spec=snakemake.params.vocab_spec,
    max_length=snakemake.params.max_length,
)
