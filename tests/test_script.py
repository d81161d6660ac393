"""The preamble of the rule scripts (memcap.stages.script).

pytest tests/test_script.py
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p.name for p in (REPO / "scripts").glob("*.py"))


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_rule_script_starts_its_log_before_the_rest_of_memcap(script):
    text = (REPO / "scripts" / script).read_text()
    start = re.search(r"^\s*start_(model_)?job\(snakemake\.log\[0\]", text, re.M)
    assert start, f"{script} does not call memcap.stages.script.start_job or start_model_job"
    other = re.search(r"^\s*from memcap\.(?!stages\.script\b)", text, re.M)
    assert other is None or start.start() < other.start()
    assert "sys.stdout =" not in text  # no hand-made redirect beside it


def test_start_job_sends_both_streams_to_the_log(tmp_path):
    log = tmp_path / "rule.log"
    code = (
        "import sys; from memcap.stages.script import start_job; start_job(sys.argv[1]); "
        "print('out'); print('err', file=sys.stderr)"
    )
    done = subprocess.run([sys.executable, "-c", code, str(log)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == done.stderr == ""
    assert log.read_text() == "out\nerr\n"
