# Texts to compress (memcap.stages.texts) and the vocabularies of random text (memcap.stages.vocab).


rule vocab:
    output:
        words=f"{RESULTS}/vocab/{{vocab}}.txt",
    log:
        f"{RESULTS}/logs/vocab/{{vocab}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/vocab/{{vocab}}.tsv"
    conda:
        "../../envs/memcap.yaml"
    params:
        spec=lambda wildcards: config["vocab"][wildcards.vocab],
        cache_dir=config["cache_dir"],
    script:
        "../../scripts/vocab.py"


rule texts:
    input:
        unpack(texts_input),
    output:
        texts=f"{RESULTS}/texts/{{dataset}}.jsonl",
    log:
        f"{RESULTS}/logs/texts/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/texts/{{dataset}}.tsv"
    conda:
        "../../envs/memcap.yaml"
    params:
        spec=dataset_spec,
        cache_dir=config["cache_dir"],
    script:
        "../../scripts/texts.py"


rule random_texts:
    input:
        vocab=vocab_input,
    output:
        texts=f"{RESULTS}/texts/{{dataset}}-{{max_length}}.jsonl",
    log:
        f"{RESULTS}/logs/random_texts/{{dataset}}-{{max_length}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/random_texts/{{dataset}}-{{max_length}}.tsv"
    conda:
        "../../envs/memcap.yaml"
    params:
        spec=dataset_spec,
        vocab_spec=lambda wildcards: config["vocab"][
            config["datasets"][wildcards.dataset]["vocab"]
        ],
        max_length=lambda wildcards: int(wildcards.max_length),
    script:
        "../../scripts/random_texts.py"
