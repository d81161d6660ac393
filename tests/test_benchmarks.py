"""The benchmark scripts run end to end on a tiny model and print the figures they promise.

Their timings are not checked here (benchmarks are scripts, not timed tests); this keeps them
from rotting between the runs recorded in docs/benchmarks.md.
"""

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def bench(*args, timeout=600) -> str:
    result = subprocess.run(
        [sys.executable, *args, "--threads", "1"], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def cell(sample, L, passed):
    """A reference record of the paper's grid, as benchmarks/reference.py writes it."""
    correct = L - 1 if passed else L - 3
    return {"model": "m", "dataset": "lee", "sample_id": sample, "K": 1, "mode": "grid", "L": L, "status": "ok",
            "correct": correct, "max_correct": correct, "scored": L - 1, "protocol": "paper",
            "max_accuracy": correct / (L - 1), "steps": 100, "wall_s": 1.0}  # fmt: skip


def test_steps_prints_both_procedures_and_their_ratio():
    out = bench("benchmarks/steps.py", "--model", "tiny-llama", "--length", "24", "--texts", "2", "--steps", "3")
    assert re.search(r"authors' procedure \(batch 1, reloads\)\s+[\d.]+\s+\d+", out), out
    assert re.search(r"memcap \(one load, batched\)\s+[\d.]+\s+\d+", out), out
    assert re.search(r"speed-up memcap / authors: [\d.]+x", out), out


def test_capacity_compares_search_with_the_authors_grid():
    out = bench(
        "benchmarks/capacity.py",
        "--model",
        "tiny-llama",
        "--lr",
        "0.1",
        "--lengths",
        "2",
        "4",
        "8",
        "--texts",
        "2",
        "--max-steps",
        "30",
        "--patience",
        "30",
    )
    authors = re.search(r"authors \(per length, batch 1\)\s+[\d.]+\s+(\d+)\s+\[([\d, ]+)\]", out)
    ours = re.search(r"memcap search \(warm, batched\)\s+[\d.]+\s+(\d+)\s+\[([\d, ]+)\]", out)
    assert authors and ours, out
    # each text's search attempts cost no more steps than all grid lengths run one by one
    assert int(ours.group(1)) <= int(authors.group(1))
    ratio = float(re.search(r"steps ratio memcap / authors: ([\d.]+)", out).group(1))
    assert abs(ratio - int(ours.group(1)) / int(authors.group(1))) < 0.01
    assert re.search(r"capacities within one grid step: \d/2 texts", out), out
    assert "per-sample rule (capacity_from_samples)" in out


def test_optimizer_study_reports_every_configuration_and_length():
    configs = ("paper", "fast", "lr=0.1,init_scale=0.5,schedule=cosine,warmup=2,margin=1,temperature=0.5")
    out = bench(
        "benchmarks/optimizer.py",
        "--model",
        "tiny-llama",
        "--texts",
        "2",
        "--lengths",
        "4",
        "6",
        "--max-steps",
        "20",
        "--configs",
        *configs,
    )
    for config in configs:
        for L in (4, 6):
            assert re.search(rf"^{re.escape(config)}\s+{L}\s+\d/2\s.*\s(\d/\d|-)$", out, re.M), (config, L, out)
        assert re.search(rf"^{re.escape(config)}\s+\d+\s+[\d.]+\s+(\d+|none)\s+\[\d+, \d+\]$", out, re.M), (config, out)
    bad = subprocess.run(
        [sys.executable, "benchmarks/optimizer.py", "--configs", "lr0.1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "use key=value with key in" in bad.stderr and "margin" in bad.stderr


def test_record_appends_a_dated_block_with_the_output(tmp_path):
    doc = tmp_path / "benchmarks.md"
    cmd = [
        sys.executable,
        "benchmarks/record.py",
        "--doc",
        str(doc),
        "--title",
        "echo check",
        "--note",
        "a test",
        "--",
        sys.executable,
        "-c",
        "print('ratio 1.23x')",
    ]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    text = doc.read_text()
    assert text.startswith("# Benchmarks") and "echo check" in text and "ratio 1.23x" in text
    assert "- note: a test" in text


def test_reference_brackets_each_text_and_resumes_without_recomputing(tmp_path):
    from memcap.analysis.paper_budget import text_capacities
    from memcap.io import read_jsonl

    args = [
        "benchmarks/reference.py",
        "--model",
        "tiny-llama",
        "--lengths",
        "4",
        "8",
        "16",
        "--texts",
        "2",
        "--min-tokens",
        "20",
        "--folder",
        str(tmp_path),
    ]
    # one text first (--samples: a process of its own), then the rest, as two cores would share it
    first = bench(*args, "--samples", "lee-0001")
    texts = [r["id"] for r in read_jsonl(tmp_path / "texts.jsonl")]
    assert len(texts) == 2 and "lee-0001: capacity" in first and "lee-0000: not started" in first, first
    assert {r["sample_id"] for r in read_jsonl(tmp_path / "lee.jsonl")} == {"lee-0001"}
    wrong = subprocess.run([sys.executable, *args, "--samples", "lee-9"], cwd=REPO, capture_output=True, text=True)
    assert wrong.returncode == 2 and "--samples: lee-9 not in" in wrong.stderr and "lee-0000, lee-0001" in wrong.stderr
    out = bench(*args)
    records = read_jsonl(tmp_path / "lee.jsonl")
    assert {r["optim"]["max_steps"] for r in records} == {5000} and {r["batch_size"] for r in records} == {1}
    assert {str(r["sample_id"]) for r in records} == set(texts)  # one text's job keeps the other's records
    for t in text_capacities(records):
        assert t["bracketed"]  # stopped after two failing lengths or at the end of the grid
        line = re.search(rf"^  {t['sample_id']}: capacity (\d+) \(", out, re.M)
        assert line and int(line.group(1)) == t["capacity"], out
    assert re.search(r"total optimiser steps \d+, compute time [\d.]+ h over \d+ cells", out), out
    again = bench(*args)  # every cell is recorded: nothing runs, the report is the same
    assert "to do" not in again and again.splitlines()[-4:] == out.splitlines()[-4:]
    assert read_jsonl(tmp_path / "lee.jsonl") == records

    # the fast preset's search on the same texts and grid, compared with those records; --save
    # keeps each attempt as it ends
    fast_args = ["benchmarks/fast.py", "--model", "tiny-llama", "--lengths", "4", "8", "16", "--folder", str(tmp_path)]
    fast = saved = bench(*fast_args, "--max-steps", "100", "--save", "s.json")
    for t in text_capacities(records):
        line = re.search(rf"^  {t['sample_id']}: ours (\d+) .*reference {t['capacity']} \(first fail", fast, re.M)
        assert line, fast
    ratio = re.search(r"steps ratio ours / reference: ([\d.]+) \(target <= 0.10\)", fast)
    assert ratio and float(ratio.group(1)) < 1, fast
    assert re.search(r"wall-time speed-up: [\d.]+x as recorded", fast), fast
    per_token = re.search(r"steps per decoded token: ours ([\d.]+), reference ([\d.]+) \(ratio ([\d.]+);", fast)
    assert per_token, fast
    assert float(per_token[3]) == pytest.approx(float(per_token[1]) / float(per_token[2]), rel=0.05, abs=0.002)
    pairs = re.findall(r"^  \S+: ours (\d+) .*?reference (\d+) ", fast, re.M)
    line = re.search(rf"^{tmp_path.name}\s+2 .* (\d)/2\s+(\d+)\s+2/2 ", fast, re.M)  # the set's line
    assert line and int(line.group(2)) == sum(o == "0" and r != "0" for o, r in pairs), fast
    assert "steps/token" in fast and "compression_horizon" in fast, fast

    # a run stopped midway resumes where it stopped
    whole = json.loads((tmp_path / "s.json").read_text())
    progress = (tmp_path / "s.json.progress.jsonl").read_text().splitlines()
    attempts = sum(len(t["attempts"]) for t in whole["texts"])
    assert len(progress) == 1 + attempts and attempts >= 3
    (tmp_path / "s.json.progress.jsonl").write_text("\n".join(progress[:3]) + "\n")  # as if stopped there
    # while it runs, --compare with its flags reads the progress so far (no model: a replay)
    (tmp_path / "s.json").rename(tmp_path / "whole.json")
    so_far = bench(*fast_args, "--max-steps", "100", "--compare", "s.json")
    assert re.search(rf"^{tmp_path.name}: in progress, [12] of 2 texts still searching", so_far, re.M), so_far
    assert "(still searching: so far)" in so_far, so_far
    (tmp_path / "whole.json").rename(tmp_path / "s.json")
    resumed = subprocess.run(
        [sys.executable, *fast_args, "--max-steps", "100", "--save", "s.json", "--threads", "1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0 and "2 attempts replayed" in resumed.stderr, resumed.stderr[-3000:]
    again = json.loads((tmp_path / "s.json").read_text())
    assert again["texts"] == whole["texts"]

    def figures(out):  # the printed result but its wall times (the replayed attempts took none)
        return [line for line in out.splitlines()[1:] if "wall-time" not in line]

    assert figures(resumed.stdout) == figures(saved)
    other = subprocess.run(  # other settings never mix with the saved attempts
        [sys.executable, *fast_args, "--max-steps", "50", "--save", "s.json", "--threads", "1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert other.returncode != 0 and "holds attempts of other settings" in other.stderr, other.stderr[-2000:]
    # --fork: a run of other search settings begins from s.json's attempts, as far as it makes the same ones
    forked = subprocess.run(
        [sys.executable, *fast_args, "--max-steps", "100", "--save", "f.json", "--fork", "s.json", "--fails", "1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert forked.returncode == 0 and "attempts taken from s.json.progress.jsonl" in forked.stderr, forked.stderr
    taken = [int(n) for n in re.findall(r"text \d+: (\d+) of \d+ attempts taken", forked.stderr)]
    assert len(taken) == 2 and min(taken) >= 1, forked.stderr  # every first attempt is the same request
    head = json.loads((tmp_path / "f.json").read_text())["texts"]
    for text, old, n in zip(head, whole["texts"], taken, strict=True):
        assert [(a["L"], a["steps"]) for a in text["attempts"][:n]] == [
            (a["L"], a["steps"]) for a in old["attempts"][:n]
        ]
    unlike = subprocess.run(  # the optimiser's settings must be the same: a request alike is not enough
        [sys.executable, *fast_args, "--max-steps", "50", "--save", "g.json", "--fork", "s.json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert unlike.returncode != 0 and "is a run of other settings than the search's" in unlike.stderr, unlike.stderr

    # a growth schedule (x2 from the grid's first length, then bisection) is read against the grid
    grown = bench(*fast_args, "--max-steps", "100", "--growth", "2")
    assert "growth x2 from 4 to 16, bisection to 1" in grown, grown
    assert len(re.findall(r"^  \S+: ours \d+ .*reference \d+ ", grown, re.M)) == 2, grown
    # stages of a few tokens (the peer's progressive schedule) go through every length in between
    staged = bench(*fast_args, "--max-steps", "100", "--stage", "4")
    assert "stages of 4 token(s) from 4 to 16 (grid [4, 8, 16])" in staged, staged
    tried = {int(L) for L in re.findall(r" (\d+)[+-]\(\d+\)", staged)}
    assert tried and tried <= {4, 8, 12, 16}, staged


@pytest.mark.slow
def test_gpu_check_runs_every_step_in_its_cpu_mode(tmp_path):
    """benchmarks/gpu_check.sh must run unchanged on the first GPU it meets: without CUDA it runs
    the same steps on tiny models (about a minute), and every step prints its figures."""
    import os

    env = dict(os.environ, GPU_CHECK_MODE="cpu", OUT=str(tmp_path), PYTHON=sys.executable, OMP_NUM_THREADS="1")
    result = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh"], cwd=REPO, capture_output=True, text=True, timeout=600, env=env
    )
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
    assert (tmp_path / "gpu_check.txt").read_text() == out  # what comes back from the GPU machine
    steps = ("slots", "memory-tiny-llama-128k", "cast-tiny-llama-128k", "capacity-tiny-llama", "shape-tiny-llama")
    for name in (*steps, "profile-tiny-llama"):
        assert re.search(rf"^-- {name}: done in \d+s$", out, re.M), (name, out)
    assert re.search(r"profile, per step \(2 x 2 steps minus 2\): [\d.]+ ms wall, \d+ aten operators", out), out
    assert "jobs beyond the cards refused: 1" in out and "distinct: True" in out
    assert re.search(r"peak step memory chunked / whole logits: [\d.]+x; chunked / authors: [\d.]+x", out), out
    assert re.search(r"step-time ratio cast once / every forward: [\d.]+x", out), out
    assert re.search(r"largest relative loss difference 0\.0e\+00, .*same correct counts: True", out), out
    assert re.search(r"steps ratio memcap / authors: [\d.]+", out), out
    assert re.search(r"speed-up memcap / authors: [\d.]+x", out), out
    assert re.search(r"gpu_check finished in \d+s, mode cpu, 0 step\(s\) failed", out), out


def test_every_run_of_the_method_study_is_a_valid_fast_configuration(monkeypatch):
    """benchmarks/study.py (issue 26's table): each run's flags parse, give a valid optimiser
    and search configuration away from CLAIMED in the one factor named, and save to its own file."""
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    monkeypatch.syspath_prepend(str(REPO))
    import fast
    import study

    base_optim, base_search = fast.settings(fast.parse_args(study.BASE))
    assert base_search.fresh_check_below is None and fast.CLAIMED["search"]["fresh_check_below"]  # turned off
    names = set()
    for name, flags in study.STUDY.items():
        args = fast.parse_args([*study.BASE, *flags])
        optim, search = fast.settings(args)
        changed = {k for k, v in optim.as_dict().items() if base_optim.as_dict().get(k) != v}
        away = {k for k, v in search.as_dict().items() if base_search.as_dict().get(k) != v}
        assert (changed or args.growth or args.stage or not flags) and away <= {"fresh_after_stuck"}, name
        assert not away or name == "progressive", name  # the one row that is warm-only by design
        names.add(study.command(name)[-len(flags) - len(study.BASE) - 1])
    assert names == {f"study-{n}.json" for n in study.STUDY}  # one saved file per run
    low = fast.settings(fast.parse_args(study.STUDY["lowrank-64-lr"]))[0]
    assert (low.parametrisation, low.rank, low.lr, low.fresh_lr) == ("low_rank", 64, 0.9, 0.03)
    out = subprocess.run(
        [sys.executable, "benchmarks/study.py", "nothing"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert out.returncode != 0 and "unknown study run(s) ['nothing']; the study's runs are base" in out.stderr


def test_fast_refuses_stages_with_growth_or_below_one_token(monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    monkeypatch.syspath_prepend(str(REPO))
    import fast

    for bad in (["--stage", "0"], ["--stage", "1", "--growth", "2"]):
        with pytest.raises(SystemExit):
            fast.parse_args(bad)
        assert "--stage takes a number of tokens >= 1 and no --growth" in capsys.readouterr().err
    assert fast.lengths(fast.parse_args(["--stage", "8"]), [8, 12, 16, 24, 32]) == {"lengths_grid": [8, 16, 24, 32]}
    with pytest.raises(SystemExit):
        fast.parse_args(["--checks-on-grid"])
    assert "--checks-on-grid goes with --stage" in capsys.readouterr().err
    on_grid = fast.parse_args(["--stage", "8", "--checks-on-grid"])
    assert fast.lengths(on_grid, [8, 12, 16]) == {"lengths_grid": [8, 16], "check_grid": [8, 12, 16]}
    assert fast.schedule(on_grid, [8, 12, 16]).endswith("(grid [8, 12, 16], fresh checks on the grid)")


def test_the_max_rule_combines_the_factors_that_help_and_picks_the_best_run_in_the_reference_steps(monkeypatch):
    """study.py's rule for the max preset (docs/benchmarks.md), on made-up figures: a factor helps
    with a mean HELPS above the base's and every text ok; of two learning rates only the better;
    several --set factors merge into one --set; max needs every text ok within the reference's steps."""
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    monkeypatch.syspath_prepend(str(REPO))
    import fast
    import study

    def fig(mean, ok=True, steps=1000):
        return {"mean": mean, "ok": ok, "steps": steps, "ref_steps": 5000}

    figs = {name: fig(30.0) for name in study.STUDY}
    figs.update(
        {
            "lowrank-256": fig(40.0, ok=False),  # more, but a text below the reference's minus a step
            "temperature": fig(32.0),  # exactly HELPS above
            "margin": fig(31.9),  # just under
            "lr-0.1": fig(33.0),
            "lr-1.0": fig(35.0),  # the better learning rate
            "growth": fig(33.0),
            "progressive": fig(34.0),  # the better schedule
            "generous": fig(36.0, steps=4000),
        }
    )
    with pytest.raises(SystemExit, match="not saved yet: growth"):
        study.combined_flags({k: v for k, v in figs.items() if k != "growth"})
    # a run still going whose ended text is already below can no longer help: nothing waits for it
    still = {k: v for k, v in figs.items() if k != "margin"}
    assert study.combined_flags(still, {"margin": ["t ended at 8, reference 32"]}) == study.combined_flags(figs)
    flags = study.combined_flags(figs)
    assert flags == ["--lr", "1.0", "--stage", "1", "--no-fresh-after-stuck", "--max-steps", "1000", "--patience",
                     "500", "--set", "temperature=0.25,fresh_max_steps=2000,fresh_patience=1000"]  # fmt: skip
    optim, search = fast.settings(fast.parse_args(flags))
    assert (optim.temperature, optim.lr, optim.max_steps, optim.fresh_patience) == (0.25, 1.0, 1000, 1000)
    claimed = fast.settings(fast.parse_args([]))[1]  # CLAIMED's search, but what progressive turns off
    assert search == dataclasses.replace(claimed, fresh_after_stuck=False)
    assert study.choose(figs) == "generous"
    figs["combined"] = fig(36.0, steps=3000)  # as high, fewer steps
    assert study.choose(figs) == "combined"
    figs["generous"] = fig(36.0, steps=3000)  # a tie in mean and steps goes to the combined run
    assert study.choose(figs) == "combined"
    figs["generous"] = fig(36.0, steps=4000)
    figs["combined"] = fig(50.0, steps=6000)  # beyond the reference's steps: out
    assert study.choose(figs) == "generous"
    assert study.choose({"base": fig(30.0, ok=False)}) is None
    # the judgement on the validation texts: issue 26's three targets, each named with its figures
    run = {"capacities": [48, 32, 24], "reference": [24, 24, 16], "mean": 104 / 3, "ok": True, "steps": 900}
    verdicts = list(study.judge({**run, "ref_steps": 1000}).items())
    assert verdicts[0] == ("mean >= 1.5 x the reference's (34.7 vs 32.0)", True)
    assert [met for _, met in verdicts] == [True, True, True]
    assert list(study.judge({**run, "ref_steps": 800, "ok": False}).values()) == [True, False, False]


def test_where_a_search_spends_its_steps(monkeypatch):
    """fast.py's breakdown of a saved search: passing, failing at or below the capacity, failing
    above it, and the fresh starts among them (from the attempts, or for runs saved before
    attempts kept it, from the progress rows)."""
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    monkeypatch.syspath_prepend(str(REPO))
    import fast

    def attempt(L, lossless, steps, fresh=None):
        return {"L": L, "lossless": lossless, "steps": steps, **({} if fresh is None else {"fresh": fresh})}

    texts = [  # capacity 16: a fresh 8 that passed, a warm 12 stuck, then 16, then two failing lengths
        {
            "capacity": 16,
            "attempts": [
                attempt(8, True, 50, True),
                attempt(12, False, 100, False),
                attempt(16, True, 30, False),
                attempt(24, False, 100, False),
                attempt(32, False, 20, False),
            ],
        },
        {"capacity": 0, "attempts": [attempt(8, False, 300, True)]},  # its failing first length is above its 0
    ]
    assert fast.where_steps_go(texts) == {"passing": 80, "at or below": 100, "above": 420, "fresh": 350}
    old = [
        {"capacity": t["capacity"], "attempts": [{k: a[k] for k in ("L", "lossless", "steps")} for a in t["attempts"]]}
        for t in texts
    ]
    assert fast.where_steps_go(old)["fresh"] is None  # no way to tell without the progress rows
    rows = [{"index": i, "warm_start": None if a["fresh"] else 8} for i, t in enumerate(texts) for a in t["attempts"]]
    assert fast.where_steps_go(old, rows) == fast.where_steps_go(texts)
    assert fast.where_steps_go(old, rows[:-1])["fresh"] is None  # a progress file that lacks an attempt


def test_capacities_off_the_grid_are_compared_on_it(monkeypatch, tmp_path, capsys):
    """A growth schedule's or stages' capacities (31 tokens) are read against the grid (24)
    wherever runs are compared: fast.py's set line and the study's rule; the tokens found stay
    printed and count for steps per token."""
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    monkeypatch.syspath_prepend(str(REPO))
    import fast
    import study

    texts = [{"id": f"t{i}", "capacity": c, "steps": 100, "attempts": []} for i, c in enumerate([31, 8, 0, 40])]
    run = {"header": "h", "model": "m", "grid": [8, 12, 16, 24, 32, 40], "wall_s": 1.0, "texts": texts}
    s = fast.compare(run, tmp_path)
    assert s["ours"] == [31, 8, 0, 40] and s["on_grid"] == [24, 8, 0, 40]
    fast.side_by_side([s])
    out = capsys.readouterr().out
    assert re.search(rf"^{tmp_path.name}\s+4\s+18.0 ", out, re.M), out  # the mean on the grid, not 19.8
    assert "read against the grid: [24, 8, 0, 40] (mean 18.0" in out and "ours [31, 8, 0, 40]" in out
    # no reference in the folder: its steps are said to be left out, not shown as a run of 0 steps
    assert "4 of 4 texts have no reference yet: their 400 optimiser steps are left out" in out
    (tmp_path / "run.json").write_text(__import__("json").dumps(run))
    figures = study.summary(tmp_path / "run.json", tmp_path)
    assert figures["capacities"] == [24, 8, 0, 40] and figures["mean"] == 18 and figures["found"][0] == 31


def test_a_run_in_progress_is_settled_below_only_by_a_text_that_ended_there(monkeypatch, tmp_path, capsys):
    """fast.compare on a run still in progress (so_far): a text below the reference's minus one
    grid step settles the run's "all ok" only once its search has ended (capacities only grow);
    study.py reads that as a run that can no longer help."""
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    monkeypatch.syspath_prepend(str(REPO))
    import fast
    from memcap.io import write_jsonl

    write_jsonl([cell(t, L, L <= 32) for t in ("a", "b") for L in (8, 12, 16, 24, 32, 40, 48)], tmp_path / "lee.jsonl")
    texts = [  # both at 16 against the reference's 32: one has ended there, one still searches
        {"id": "a", "capacity": 16, "steps": 10, "attempts": []},
        {"id": "b", "capacity": 16, "steps": 10, "done": False, "attempts": []},
    ]
    run = {"header": "h", "model": "m", "grid": [8, 12, 16, 24, 32, 40, 48], "wall_s": 1.0, "texts": texts}
    s = fast.compare(run, tmp_path)
    assert s["reference"] == [32, 32] and s["ok"] == 0 and s["searching"] == 1
    assert s["settled_below"] == ["a ended at 16, reference 32"]
    fast.side_by_side([s])
    out = capsys.readouterr().out
    assert f"{tmp_path.name}: in progress, 1 of 2 texts still searching" in out
    assert re.search(r"^  b: ours 16 .*BELOW by more than one grid step \(still searching: so far\)", out, re.M), out
    assert f"is its cell there a draw? python benchmarks/repeat.py --folder {tmp_path} --cells 'a:32' --seeds 4" in out
    # once repeat.py has rerun that cell from other seeds, its rate stands there instead of the command
    repeats = [{"sample_id": "a", "L": 32, "repeat": i, "lossless": i == 2} for i in (1, 2, 3)]
    write_jsonl(repeats, tmp_path / "repeat.jsonl")
    fast.side_by_side([fast.compare(run, tmp_path)])
    out = capsys.readouterr().out
    assert "a at 32, the reference's cell: passed from 1 of 3 other seeds" in out and "repeat.py --folder" not in out


def test_sets_compared_together_are_pooled_with_intervals(monkeypatch, tmp_path, capsys):
    """Two or more sets: one pooled line of the share of texts within one grid step of the
    reference (Wilson 95 % interval), the mean per-text difference (paired bootstrap interval)
    and the steps ratio over all their texts; a single set prints no pooled line."""
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    monkeypatch.syspath_prepend(str(REPO))
    import fast
    from memcap.io import write_jsonl

    grid = [8, 12, 16, 24, 32, 40, 48]
    references = {"a": {"t1": 32, "t2": 24}, "b": {"t3": 32, "t4": 8}}
    ours = {"t1": 16, "t2": 24, "t3": 40, "t4": 8}  # t1 is two grid steps below its reference
    summaries = []
    for name, capacities in references.items():
        folder = tmp_path / name
        folder.mkdir()
        write_jsonl([cell(t, L, L <= c) for t, c in capacities.items() for L in grid], folder / "lee.jsonl")
        texts = [{"id": t, "capacity": ours[t], "steps": 10, "attempts": []} for t in capacities]
        run = {"header": name, "model": "m", "grid": grid, "wall_s": 1.0, "texts": texts}
        summaries.append(fast.compare(run, folder))
    fast.side_by_side(summaries[:1])
    assert "pooled over" not in capsys.readouterr().out
    fast.side_by_side(summaries)
    out = capsys.readouterr().out
    assert "pooled over a, b: 4 texts with a reference\n" in out, out  # every reference bracketed: no "so far"
    # 3 of 4: Wilson 95 % interval 0.301-0.954
    assert "at least the reference's minus one grid step: 3/4 texts (75 %, Wilson 95 % interval 30-95 %)" in out
    assert "0 where the reference passes a length: 0" in out
    # per text 16-32, 24-24, 40-32, 8-8: mean 22.0 against 24.0
    assert "mean per-text capacity 22.0 against the reference's 24.0: -2.0 tokens per text" in out
    assert "steps ratio ours / reference: 40 / 2800 = 0.014" in out


def test_the_max_preset_is_the_run_the_study_chose(monkeypatch):
    """optim.preset max with the keys config/README.md gives it is the run that study.py's rule
    chose from the committed study records: the same optimiser values, search settings and
    lengths (one token per stage from 8 to 128); the workflow accepts those keys."""
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    monkeypatch.syspath_prepend(str(REPO))
    import yaml
    from snakemake.utils import validate

    import fast
    import study
    from memcap.core.engine import PRESETS, OptimConfig
    from memcap.core.search import SearchConfig

    chosen = study.choose(study.figures())
    assert chosen == "combined"
    args = fast.parse_args(study.flags_of(chosen))
    optim, search = fast.settings(args)
    section = (REPO / "config/README.md").read_text().split("## The max preset")[1]
    keys = yaml.safe_load(section.split("```yaml\n")[1].split("```")[0])
    mine = OptimConfig.from_dict(keys["optim"])
    assert mine.preset == "max" and dataclasses.replace(mine, preset=optim.preset) == optim
    assert {k: getattr(optim, k) for k in PRESETS["max"]} == PRESETS["max"]
    assert SearchConfig.from_dict(keys["compress"]["search"]) == search
    assert keys["lengths"] == fast.lengths(args, sorted(set(args.lengths)))["lengths_grid"] == list(range(8, 129))
    # the workflow takes them: its search job climbs every length up to the model's max_length
    from memcap.stages import plan

    smoke = yaml.safe_load((REPO / "config/smoke.yaml").read_text())
    cfg = {**smoke, **keys, "models": {"tiny-gpt-neox": {"max_length": 12}}}
    validate(cfg, str(REPO / "workflow/schemas/config.schema.yaml"))
    lee = next(j for j in plan.model_jobs(cfg) if j.dataset == "lee" and j.rule == "compress")
    assert (lee.mode, lee.lengths) == ("search", [8, 9, 10, 11, 12])


def test_the_claimed_search_in_config_readme_is_claimed_and_the_workflow_takes_it(monkeypatch):
    """config/README.md's keys for the claimed search are memcap.core.search.CLAIMED's, as
    fast.py runs it by default (its prior too), on the reference's grid; the workflow accepts them."""
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    monkeypatch.chdir(REPO)
    import yaml
    from snakemake.utils import validate

    import fast
    from memcap.core.engine import OptimConfig
    from memcap.core.search import CLAIMED, SearchConfig
    from memcap.stages import plan

    section = (REPO / "config/README.md").read_text().split("## The claimed search")[1]
    keys = yaml.safe_load(section.split("```yaml\n")[1].split("```")[0])
    optim, search = fast.settings(fast.parse_args([]))
    assert OptimConfig.from_dict(keys["optim"]) == optim
    assert SearchConfig.from_dict(keys["compress"]["search"]) == search
    priors = {name: model["prior"] for name, model in keys.get("models", {}).items() if "prior" in model}
    assert priors == CLAIMED["prior"] and all((REPO / path).is_file() for path in priors.values())
    assert keys["lengths"] == fast.LENGTHS
    cfg = yaml.safe_load((REPO / "config/demo.yaml").read_text())
    cfg = {**cfg, **{k: v for k, v in keys.items() if k != "models"}}
    cfg["models"] = {name: {**model, **keys.get("models", {}).get(name, {})} for name, model in cfg["models"].items()}
    cfg["datasets"]["lee"]["documents"] = [76, 77]  # texts of no prior (validation-7's first two)
    validate(cfg, str(REPO / "workflow/schemas/config.schema.yaml"))
    lee = next(j for j in plan.model_jobs(cfg) if j.dataset == "lee" and j.rule == "compress")
    assert (lee.mode, plan.job_prior(cfg, lee.model, lee.dataset)) == ("search", CLAIMED["prior"].get(lee.model))


def test_restarts_finds_each_fresh_line_after_a_lossless_length_in_the_saved_runs(monkeypatch):
    """benchmarks/restarts.py reruns these lines as cheaper restarts (search restart_mix); on F's
    saved runs over the 24 tuning texts there are 17, and F spent 11,229 steps in them."""
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import restarts

    lines = restarts.fresh_lines()
    assert len(lines) == 17 and sum(e["steps"] for e in lines) == 11229 and sum(e["passed"] for e in lines) == 10
    assert all(e["L0"] < e["L"] and len(e["vectors"][0]) == 576 for e in lines)
    hardest = next(e for e in lines if (e["id"], e["L"]) == ("lee-0041", 32))
    assert (hardest["L0"], hardest["passed"], hardest["steps"]) == (16, True, 1684)
    out = bench("benchmarks/restarts.py", "--list")
    assert out.rstrip().endswith("17 fresh lines; F spent 11229 steps in them, passing 10"), out


def test_last_token_finds_the_warm_lines_that_ended_one_token_short(tmp_path, monkeypatch):
    """benchmarks/last_token.py: a warm line (a start and its continuations) counts when its last
    attempt failed one token short; a fresh line, a passing one and one two short do not."""
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import last_token
    from memcap.io import write_jsonl

    write_jsonl([{"id": "a", "text": "x"}, {"id": "b", "text": "y"}], tmp_path / "texts.jsonl")
    v = [[0.5, 0.5]]
    rows = [
        {
            "index": 0,
            "L": 8,
            "warm_start": None,
            "extension": 0,
            "lossless": True,
            "score": 7,
            "steps": 40,
            "vectors": v,
        },
        {
            "index": 0,
            "L": 12,
            "warm_start": 8,
            "extension": 0,
            "lossless": False,
            "score": 9,
            "steps": 100,
            "vectors": v,
        },
        {
            "index": 0,
            "L": 12,
            "warm_start": 8,
            "extension": 1,
            "lossless": False,
            "score": 10,
            "steps": 100,
            "vectors": v,
        },
        {
            "index": 0,
            "L": 16,
            "warm_start": 8,
            "extension": 0,
            "lossless": False,
            "score": 13,
            "steps": 100,
            "vectors": v,
        },
        {
            "index": 1,
            "L": 8,
            "warm_start": None,
            "extension": 0,
            "lossless": False,
            "score": 6,
            "steps": 300,
            "vectors": v,
        },
    ]
    write_jsonl([{"header": "h"}, *rows], tmp_path / "run.json.progress.jsonl")
    (line,) = last_token.short_lines([(str(tmp_path), "run")])
    assert (line["id"], line["L"], line["steps"]) == ("a", 12, 200)


def test_first_length_prior_is_the_mean_of_other_texts_lossless_vectors(tmp_path, monkeypatch):
    """benchmarks/first_length.py's prior: the lossless L-token vectors of saved runs averaged (and
    rescaled to their mean norm); a run on a text it measures is refused."""
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import common
    from memcap.io import write_jsonl

    run = tmp_path / "other"
    run.mkdir()
    write_jsonl([{"id": "a", "text": "x"}, {"id": "b", "text": "y"}], run / "texts.jsonl")
    rows = [
        {"index": 0, "L": 8, "lossless": True, "vectors": [[1.0, 0.0]]},
        {"index": 1, "L": 8, "lossless": True, "vectors": [[0.0, 3.0]]},
        {"index": 1, "L": 8, "lossless": False, "vectors": [[50.0, 50.0]]},  # failed: not averaged
        {"index": 1, "L": 12, "lossless": True, "vectors": [[9.0, 9.0]]},  # another length
    ]
    write_jsonl([{"header": "other: model m, 2 texts, K=1"}, *rows], run / "F.json.progress.jsonl")
    mean, scaled, n = common.prior_vectors([run / "F.json.progress.jsonl"], 8, [{"id": "c"}])
    assert n == 2 and mean.tolist() == [[0.5, 1.5]]
    assert scaled.norm().item() == pytest.approx(2.0) and scaled[0, 1] / scaled[0, 0] == pytest.approx(3.0)
    with pytest.raises(SystemExit, match="is a run on b, which this run measures"):
        common.prior_vectors([run / "F.json.progress.jsonl"], 8, [{"id": "b"}])


def test_first_length_prints_each_start_and_rate(tmp_path):
    from memcap.io import write_jsonl

    texts = [{"id": f"t{i}", "text": f"The river {i} ran past the old mill and the quiet town."} for i in range(2)]
    write_jsonl(texts, tmp_path / "texts.jsonl")
    out = bench(
        "benchmarks/first_length.py", "--model", "tiny-llama", "--folder", str(tmp_path), "--lrs", "0.1", "--steps", "3"
    )
    line = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    assert [(x["init"], x["lr"], x["passed"][-2:], len(x["steps"])) for x in line] == [("random", 0.1, "/2", 2)]
    assert all(0 < s <= 3 for s in line[0]["steps"])


def _search_run(folder: Path, texts: list[str], vectors: list[list[float]]) -> Path:
    """A saved fast.py run of tiny-llama on `texts`, one lossless 8-token attempt each."""
    from memcap.io import write_jsonl

    folder.mkdir()
    write_jsonl([{"id": f"{folder.name}{i}", "text": t} for i, t in enumerate(texts)], folder / "texts.jsonl")
    rows = [{"index": i, "L": 8, "lossless": True, "vectors": [v]} for i, v in enumerate(vectors)]
    write_jsonl([{"header": f"{folder}: model tiny-llama, 2 texts, K=1"}, *rows], folder / "F.json.progress.jsonl")
    return folder / "F.json.progress.jsonl"


def test_fast_prior_progress_files_or_a_prior_file_left_out_of_the_texts_it_measures(tmp_path, monkeypatch, capsys):
    """fast.py --prior (fresh starts from it: memcap.core.search, tested in test_search.py) takes
    progress files or one prior file (`memcap prior`). A prior file built from texts the run
    measures is rebuilt from its sources without them; CLAIMED's prior is the default and
    --no-prior turns it off. The prior (a file's sha1 too) and --prior-redo are named in the
    progress header, so a resume of other settings is refused."""
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    monkeypatch.chdir(REPO)
    import fast
    from memcap.cli import main
    from memcap.core.models import load_registry, resolve_model
    from memcap.core.prior import file_sha

    a = _search_run(tmp_path / "a", ["The first text.", "The second text."], [[1.0, 0.0], [3.0, 0.0]])
    b = _search_run(tmp_path / "b", ["A third text.", "A fourth text."], [[0.0, 2.0], [0.0, 4.0]])
    file = tmp_path / "tiny.prior.safetensors"
    assert main(["prior", str(a), str(b), "--length", "8", "--out", str(file)]) == 0
    registry = load_registry(REPO / "config" / "models.yaml")
    spec = resolve_model("tiny-llama", registry)
    rows_a, other = fast.read_texts(a.parent / "texts.jsonl"), [{"id": "c", "text": "Another text."}]

    def prior(argv, rows):
        args = fast.parse_args(argv)
        vectors, note = fast.fresh_prior(args, spec, rows, 8, registry)
        optim, search = fast.settings(args)
        return (
            (vectors.tolist() if vectors is not None else None),
            note,
            fast.run_header(Path("x"), args, "m", 2, optim, search, "cpu", 1, note),
        )

    vectors, note, header = prior(["--prior", str(b)], rows_a)  # progress files: as before
    assert vectors == [[0.0, 3.0]] and header.endswith(f", fresh starts from the prior of {b}")
    with pytest.raises(SystemExit, match="is a run on a0, a1, which this run measures"):
        prior(["--prior", str(a)], rows_a)
    vectors, note, _ = prior(["--prior", str(file)], rows_a)  # the file, less a's two vectors
    sha = file_sha(file)[:12]
    assert (
        vectors == [[0.0, 3.0]]
        and note == f", fresh starts from the prior file {file} (sha1 {sha}, less its 2 vectors of these texts)"
    )
    vectors, note, _ = prior(["--prior", str(file)], other)  # none of its texts: the file as it is
    assert vectors == [[1.0, 1.5]] and note == f", fresh starts from the prior file {file} (sha1 {sha})"
    _, _, redo = prior(["--prior", str(file), "--prior-redo"], other)
    assert redo.endswith(
        f"(sha1 {sha}), redone once from the random init where a text would end at its prior-born first length"
    )

    monkeypatch.setitem(fast.CLAIMED["prior"], "tiny-llama", str(file))  # a claim with a prior: the default
    assert prior([], other)[:2] == ([[1.0, 1.5]], f", fresh starts from the prior file {file} (sha1 {sha})")
    assert prior(["--no-prior"], other)[:2] == (None, "")
    monkeypatch.delitem(fast.CLAIMED["prior"], "tiny-llama")
    assert "prior" not in prior([], other)[2]

    kept = a.read_bytes()  # a rebuild needs the sources as they were
    a.unlink()
    with pytest.raises(SystemExit, match=f"--prior: {file} was built from texts this run measures; .* not here: {a}"):
        prior(["--prior", str(file)], rows_a)
    a.write_bytes(kept.replace(b"3.0", b"5.0"))
    with pytest.raises(SystemExit, match="no longer hold the 4 vectors it averages"):
        prior(["--prior", str(file)], rows_a)
    for bad, says in (
        (["--prior-redo"], "give --prior too"),
        (["--fork", "old.json"], "give --save too"),
        (["--prior", str(file), "--no-prior"], "give one"),
        (["--prior", str(file), "--prior", str(b)], "one prior file"),
    ):
        with pytest.raises(SystemExit):
            fast.parse_args(bad)
        assert says in capsys.readouterr().err


def test_same_start_groups_identical_random_starts_across_runs(tmp_path, monkeypatch):
    """benchmarks/same_start.py: lines from the seeded random init with the same (text, L, seed,
    settings) in two runs form a group; it counts whether they ended alike. A prior run's first
    start (from the prior), a mixed restart and a warm line are not such lines."""
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import same_start
    from memcap.io import write_jsonl

    folder = tmp_path / "set"
    write_jsonl([{"id": "a", "text": "x"}, {"id": "b", "text": "y"}], folder / "texts.jsonl")
    header = "set: model m, preset fast {'lr': 0.3, 'fresh_lr': 0.01}, search {'fails': 2, 'budget': 5000}"

    def row(index, L, passed, steps, warm=None, extension=0, retry=0, mix=0.0, vectors=((1.0, 0.0),)):
        return dict(
            index=index, L=L, warm_start=warm, seed=7 + index, extension=extension, retry=retry, mix=mix,
            lossless=passed, score=L - 1 if passed else L - 3, steps=steps, vectors=[list(v) for v in vectors],
        )  # fmt: skip

    one = [row(0, 8, False, 300), row(0, 8, True, 50, extension=1), row(1, 8, True, 90), row(1, 12, False, 100, 8)]
    other = [row(0, 8, True, 320, vectors=((0.0, 1.0),)), row(1, 8, True, 90), row(1, 12, False, 100, 8)]
    prior = [row(0, 8, False, 300), row(1, 8, True, 40), row(1, 12, False, 100, 8, retry=1, mix=0.5)]
    write_jsonl([{"header": header}, *one], folder / "one.json.progress.jsonl")
    write_jsonl([{"header": header}, *other], folder / "other.json.progress.jsonl")
    write_jsonl([{"header": header + ", fresh starts from the prior of p"}, *prior], folder / "p.json.progress.jsonl")
    groups = same_start.random_lines(tmp_path)
    assert sorted((k[1], k[2], len(v)) for k, v in groups.items()) == [("a", 8, 2), ("b", 8, 2)]
    s = same_start.summary(groups)
    assert (s["groups"], s["same"], s["other_outcome"]) == (2, 1, 0)
    assert s["cosines"] == [0.0]  # text a: both passed, in 350 and 320 steps, with other vectors
    assert groups[("set", "a", 8, 7, "fast {'lr': 0.3, 'fresh_lr': 0.01}", "5000")][0]["steps"] == 350


def test_monotone_counts_failing_lengths_and_later_passes(tmp_path, monkeypatch):
    """benchmarks/monotone.py: a length counts as failed when every attempt at it failed, and as
    recovered when a longer one passed afterwards in the same search."""
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import monotone
    from memcap.io import write_jsonl

    rows = [
        {"index": 0, "L": 8, "lossless": True},
        {"index": 0, "L": 12, "lossless": False},
        {"index": 0, "L": 12, "lossless": False},
        {"index": 0, "L": 16, "lossless": True},
        {"index": 0, "L": 24, "lossless": False},
        {"index": 0, "L": 32, "lossless": False},
        {"index": 1, "L": 8, "lossless": False},
        {"index": 1, "L": 8, "lossless": True},  # a retry passed: 8 did not fail
        {"index": 1, "L": 12, "lossless": False},
    ]
    write_jsonl([{"header": "h"}, *rows], tmp_path / "set" / "run.json.progress.jsonl")
    failed, recovered = monotone.recoveries(tmp_path)
    assert dict(failed) == {12: 2, 24: 1, 32: 1} and dict(recovered) == {12: 1, 24: 0, 32: 0}

    # the paper-budget reference's cells (lee.jsonl): paper protocol judges max_correct / scored
    def cell(sample, L, best, K=1, mode="grid"):
        return dict(
            K=K,
            mode=mode,
            status="ok",
            protocol="paper",
            sample_id=sample,
            L=L,
            scored=L - 1,
            max_correct=best,
            correct=0,
        )

    cells = [
        cell("a", 8, 7), cell("a", 12, 10), cell("a", 16, 15), cell("a", 24, 21), cell("a", 32, 20),
        cell("b", 8, 7), cell("b", 12, 9), cell("b", 16, 10),
        cell("b", 8, 7, K=4),  # another K, and a record of a search: neither is a reference cell
        cell("b", 12, 11, mode="search"),
    ]  # fmt: skip
    write_jsonl(cells, tmp_path / "set" / "lee.jsonl")
    failed, recovered, one_short, texts = monotone.reference_recoveries(tmp_path)
    assert dict(failed) == {12: 2, 24: 1, 32: 1, 16: 1}
    assert dict(recovered) == {12: 1, 24: 0, 32: 0, 16: 0}
    assert dict(one_short) == {12: 1, 24: 0, 32: 0, 16: 0}  # a's 12: 10 of 11; b's 12: 9 of 11
    assert texts == {True: 1, False: 1}


def test_continuations_counts_what_continued_lines_bought_once_per_line(tmp_path, monkeypatch):
    """benchmarks/continuations.py: a line is an attempt and its continuations; a warm line
    counts under its first window's shortfall, once even when a fork replays it in another
    run; fresh lines of a run that caps them are left out of the fresh counts."""
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import continuations
    from memcap.io import write_jsonl

    def attempt(index, L, score, steps, lossless=False, warm_start=8, extension=0, retry=0):
        fields = dict(index=index, L=L, score=score, steps=steps, lossless=lossless, warm_start=warm_start)
        return {**fields, "extension": extension, "retry": retry}

    rows = [
        attempt(0, 16, 12, 100), attempt(0, 16, 14, 100, extension=1), attempt(0, 16, 15, 60, True, extension=2),
        attempt(0, 24, 20, 100), attempt(0, 24, 20, 100, extension=1),  # 3 short, failed
        attempt(1, 16, 14, 50, True),  # passed in its first window: not continued
        attempt(1, 24, 14, 300, warm_start=None, retry=1),
        attempt(1, 24, 20, 300, warm_start=None, retry=1, extension=1),
        attempt(1, 24, 23, 200, True, warm_start=None, retry=1, extension=2),  # fresh, passed after 800
    ]  # fmt: skip
    for folder in ("set", "other"):
        write_jsonl([{"id": "a", "text": "..."}, {"id": "b", "text": "..."}], tmp_path / folder / "texts.jsonl")
    write_jsonl([{"header": "search {'fails': 2}"}, *rows], tmp_path / "set" / "run.json.progress.jsonl")
    write_jsonl([{"header": "search {'fails': 2}"}, *rows[:5]], tmp_path / "set" / "fork.json.progress.jsonl")
    capped = [attempt(0, 12, 5, 300, warm_start=None), attempt(0, 12, 9, 300, warm_start=None, extension=1)]
    write_jsonl([{"header": "search {'fresh_budget': 600}"}, *capped], tmp_path / "other" / "run.json.progress.jsonl")
    found = continuations.lines(tmp_path)
    assert len(found) == 5 and sum(not line["warm"] for line in found) == 2
    table = continuations.by_shortfall(found)
    assert {short: dict(row) for short, row in table.items()} == {
        3: {"lines": 2, "passed": 1, "steps passed": 160, "steps failed": 100}  # 15 - 12, 23 - 20
    }
    ran, passed = continuations.fresh_lengths(found)
    assert (ran[600], passed[600], ran[900]) == (1, 1, 0)  # the capped run's line is not counted
    only = continuations.lines(tmp_path, runs=("fork",), sets=("set",))
    assert [line["steps"] for line in only] == [260, 200]


def test_repeat_reruns_reference_cells_from_other_seeds_and_resumes(tmp_path):
    """benchmarks/repeat.py on a tiny model: each cell runs from `--seeds` other seeds, is printed
    beside the reference's own cell, and a rerun computes nothing already in repeat.jsonl; a
    cell of a text the folder lacks, or not TEXT:L, is refused with what is allowed."""
    from memcap.io import read_jsonl, write_jsonl

    texts = [{"id": "t0", "text": "The river ran past the old mill and the quiet town at dusk."}]
    write_jsonl(texts, tmp_path / "texts.jsonl")
    ref = dict(K=1, mode="grid", status="ok", sample_id="t0", L=4, correct=3, max_correct=3, scored=3, steps=90)
    write_jsonl([ref], tmp_path / "lee.parts" / "K1_L4-4_x.jsonl")
    args = ["benchmarks/repeat.py", "--folder", str(tmp_path), "--model", "tiny-llama", "--max-steps", "200"]
    out = bench(*args, "--cells", "t0:4,6", "--seeds", "2")
    rows = read_jsonl(tmp_path / "repeat.jsonl")
    assert sorted((r["L"], r["repeat"]) for r in rows) == [(4, 1), (4, 2), (6, 1), (6, 2)]
    assert len({r["seed"] for r in rows}) == 4 and {r["max_steps"] for r in rows} == {200}
    line = re.search(r"^  t0 L=4: reference passed \(3 of 3, 90 steps\); other seeds passed (\d) of 2", out, re.M)
    assert line and int(line[1]) == sum(r["lossless"] for r in rows if r["L"] == 4), out
    assert "  t0 L=6: reference not run; other seeds passed" in out, out
    agreed = sum(r["lossless"] for r in rows if r["L"] == 4)
    assert f"the reference's outcome repeated in {agreed} of 2 runs from other seeds" in out, out
    again = bench(*args, "--cells", "t0:4", "--seeds", "2")  # all there: nothing runs
    assert "repeat 1:" not in again and read_jsonl(tmp_path / "repeat.jsonl") == rows
    for cells, says in (("t9:4", "t9 not in"), ("t0", "is not TEXT:L"), ("t0:x", "is not TEXT:L")):
        bad = subprocess.run([sys.executable, *args, "--cells", cells], cwd=REPO, capture_output=True, text=True)
        assert bad.returncode != 0 and says in bad.stderr, bad.stderr
