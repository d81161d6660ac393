"""Rule vocab: one vocabulary for random text (memcap.stages.vocab.write_vocab)."""

from memcap.stages.script import start_job

start_job(snakemake.log[0])

from memcap.stages.vocab import write_vocab

write_vocab(snakemake.params.spec, snakemake.output.words, cache_dir=snakemake.params.cache_dir)
