"""docs/method.md is the method reference: nothing cites the old external spec any more, every
flag it attributes to a script is accepted by that script, every config key it names exists in
configs/voc12.yaml, and every section other files cite is there."""

from __future__ import annotations

import argparse
import re
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
METHOD = REPO / "docs" / "method.md"
OLD_SPEC = "NSROM" + ".md"  # spelt in two parts so that this file does not cite it either
CODE_SPAN = re.compile(r"`([^`\n]+)`")
FLAG = re.compile(r"^(--?[a-z][a-z0-9-]*)(=.*)?$")
CONFIG_KEY = re.compile(r"\b([A-Z][A-Z0-9_]*(?:\.[A-Z][A-Z0-9_]*)+)\b")


def tracked_text_files() -> list[Path]:
    """The repository's tracked files (every file outside ignored folders without git)."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
        paths = [REPO / name for name in out.decode().split("\0") if name]
    except (OSError, subprocess.CalledProcessError):
        skip = {".git", "data", "runs", "demo_run", "__pycache__", ".pytest_cache"}
        paths = [p for p in REPO.rglob("*") if p.is_file() and not skip & set(p.relative_to(REPO).parts)]
    return [p for p in paths if p.is_file() and b"\0" not in p.read_bytes()[:8192]]


def test_nothing_cites_the_old_spec():
    citing = [str(p.relative_to(REPO)) for p in tracked_text_files() if OLD_SPEC in p.read_text(errors="replace")]
    assert citing == [], f"cite docs/method.md instead of {OLD_SPEC} in: {citing}"


def _argparse_options(parser: argparse.ArgumentParser) -> set[str]:
    return set(parser._option_string_actions)


def _click_options(command) -> set[str]:
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}


def script_options() -> dict[str, set[str]]:
    """Options of every script the doc may name, by the name it uses for it."""
    from classification import gen_label, gen_masked_label, test, test_iam, train, train_iam
    from segmentation import main as seg_main, trainaug_pred
    from runner import cli as pipeline_cli
    from tools import eval_labels

    options = {f"{m.__name__.rpartition('.')[2]}.py": _argparse_options(m.build_parser())
               for m in (train, train_iam, test, test_iam, gen_label, gen_masked_label, eval_labels)}
    options["pipeline.py"] = _argparse_options(pipeline_cli.build_parser())
    for script, group in (("main.py", seg_main.cli), ("trainaug_pred.py", trainaug_pred.cli)):
        for name, command in group.commands.items():
            options[f"{script} {name}"] = _click_options(command)
    return options


def doc_spans() -> list[str]:
    return CODE_SPAN.findall(METHOD.read_text())


def test_every_flag_in_the_doc_is_accepted_by_its_script():
    options = script_options()
    every = set().union(*options.values())
    wrong, attributed = [], 0
    for span in doc_spans():
        tokens = span.split()
        script = next((" ".join(tokens[:n]) for n in (2, 1) if " ".join(tokens[:n]) in options), None)
        for token in tokens:
            match = FLAG.match(token)
            if not match:
                continue
            flag = match.group(1)
            if script is not None:
                attributed += 1
                if flag not in options[script]:
                    wrong.append(f"{span!r}: {script} has no {flag}")
            elif flag not in every:
                wrong.append(f"{span!r}: no script has {flag}")
    assert wrong == []
    assert attributed >= 30  # the tables attribute their flags: a parsing slip must not pass silently


def _has_key(config: dict, key: str) -> bool:
    node = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def test_every_config_key_in_the_doc_exists():
    config = yaml.safe_load((REPO / "segmentation" / "configs" / "voc12.yaml").read_text())
    keys = {key for span in doc_spans() for key in CONFIG_KEY.findall(span)}
    assert len(keys) >= 20
    assert sorted(k for k in keys if not _has_key(config, k)) == []


def test_cited_sections_exist():
    headings = METHOD.read_text()
    stages = set(re.findall(r"^## Stage (\w+) ", headings, flags=re.M))
    titles = {t.strip() for t in re.findall(r"^#+ (.+)$", headings, flags=re.M)}
    stage_titles: dict[str, set[str]] = {}  # the sub-headings of each stage's section
    for stage, body in re.findall(r"^## Stage (\w+) (.*?)(?=^## |\Z)", headings, flags=re.M | re.S):
        stage_titles[stage] = {t.strip() for t in re.findall(r"^### (.+)$", body, flags=re.M)}
    assert {"1", "1b", "2", "3", "4", "5", "6", "7"} <= stages
    missing = []
    for path in tracked_text_files():
        text = path.read_text(errors="replace")
        for cited in re.findall(r'docs/method\.md, "([^"]+)"', text):
            if " ".join(cited.split()) not in titles:
                missing.append(f"{path.relative_to(REPO)}: section {cited!r}")
        for stage, cited in re.findall(r'docs/method\.md,? stage ([0-9b]+),? \(?"([^"]+)"', text):
            if " ".join(cited.split()) not in stage_titles.get(stage, set()):
                missing.append(f"{path.relative_to(REPO)}: stage {stage}, section {cited!r}")
        for cited in re.findall(r"docs/method\.md,? stages? ([0-9b]+(?:(?:, | and |-)[0-9b]+)*)", text):
            for stage in re.split(r", | and ", cited):
                first, _, last = stage.partition("-")
                for number in ([first] if not last else [str(n) for n in range(int(first), int(last) + 1)]):
                    if number not in stages:
                        missing.append(f"{path.relative_to(REPO)}: stage {number}")
    assert missing == []


@pytest.mark.parametrize("script", ["gen_label.py", "gen_masked_label.py"])
def test_every_rule_flag_is_in_the_doc(script):
    """The other direction for the rule settings: each flag of the stage-3 / stage-6 rules is documented."""
    from classification.labeling.nsrm import NsrmRules
    from classification.labeling.pom import PomRules
    from classification.labeling.settings import rule_flag
    import dataclasses

    rules = PomRules if script == "gen_label.py" else NsrmRules
    spans = set(doc_spans())
    assert [f.name for f in dataclasses.fields(rules) if f"{script} {rule_flag(f.name)}" not in spans] == []


REPO_PATH = re.compile(r"^(?:classification|segmentation|nsrom|runner|tools|tests|benchmarks|docs)/[\w/.-]+$")


def _ignored_prefixes() -> list[str]:
    """The folders .gitignore keeps out of the repository (outputs and downloads a document may name)."""
    lines = (REPO / ".gitignore").read_text().splitlines()
    return [line.strip("/") + "/" for line in lines if line.endswith("/") and not line.startswith("#")]


def test_every_repository_path_a_document_names_exists():
    """A path such as `classification/labeling/pom.py` in a README or docs/*.md exists (in the repository root
    or next to the document); paths in ignored folders (downloads, runs) are exempt."""
    docs = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted(REPO.glob("*/README.md"))]
    ignored = _ignored_prefixes()
    missing, seen = [], 0
    for doc in docs:
        for span in CODE_SPAN.findall(doc.read_text()):
            if not REPO_PATH.match(span) or any(span.startswith(prefix) for prefix in ignored):
                continue
            seen += 1
            if not ((REPO / span).exists() or (doc.parent / span).exists()):
                missing.append(f"{doc.relative_to(REPO)}: {span}")
    assert seen > 50 and missing == []


MARKDOWN_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_every_relative_link_and_image_of_a_document_exists():
    """``[text](docs/x.md)`` and ``![alt](docs/images/x.png)`` in a README or docs/*.md point at files of the
    repository, relative to the document (web addresses and in-page anchors are not checked)."""
    docs = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted(REPO.glob("*/README.md"))]
    missing, seen = [], 0
    for doc in docs:
        for target in MARKDOWN_LINK.findall(doc.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            seen += 1
            if not (doc.parent / target).exists():
                missing.append(f"{doc.relative_to(REPO)}: {target}")
    assert seen > 20 and missing == []
