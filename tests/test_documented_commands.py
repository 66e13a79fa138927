"""Every shell command shown in the READMEs and docs parses its arguments as written.

The commands are read from the fenced ``bash``/``sh`` blocks of every README.md
and docs/*.md. A block starts in the repository root (or, when its first
script is not there, in the folder of the document: "run from this folder"
READMEs); ``cd``, ``export``, ``VAR=value`` prefixes, backslash continuations,
``&&`` chains and comments are followed as a shell would. ``[...]`` marks an
optional part (checked with and without it) and ``...`` stands for more
arguments (dropped).

Each command is then checked without doing its work:

* ``python script.py ARGS`` / ``python -m module ARGS`` (of this repository)
  run in-process, as ``__main__``, with argparse's ``parse_args`` and click's
  command invocation stopped right after parsing, so a wrong flag or value is
  caught; a click command that takes ``--config-path``/``--set`` also loads
  that config, so a wrong config key is caught too;
* ``torchrun ... script ARGS`` parses torchrun's own flags, then the script's;
* shell scripts run under bash with ``python``/``python3``/``torchrun``/``pip``
  replaced by a recorder, and every Python call they make is checked as above;
* a few external tools (pip, tensorboard, git, ...) are skipped.

The README's scoring command is also run for real on a small synthetic dataset.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import runpy
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import click
import pytest

REPO = Path(__file__).resolve().parents[1]
SHELLS = {"bash", "sh", "shell"}
PYTHONS = {"python", "python3"}
EXTERNAL = {"pip", "pip3", "tensorboard", "git", "wget", "curl", "tar", "unzip", "mkdir", "ls", "cat", "echo",
            "nvidia-smi", "conda", "source", "cp", "mv", "ln"}
"""Commands of other tools: not checked (add a tool here when a document starts to use it)."""
SEPARATORS = {"&&", "||", ";", "|", "&"}
REDIRECTIONS = {">", ">>", "<", "2>", "&>"}


@dataclass
class DocCommand:
    """One simple command of a document, with the folder(s) and environment it runs in."""

    file: str
    line: int
    text: str
    argv: list[str]
    cwds: list[Path]
    env: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}: `{self.text}`"


def doc_files() -> list[Path]:
    files = {*REPO.glob("*.md"), *REPO.glob("*/README.md"), *REPO.glob("docs/*.md")}
    return sorted(files)


def _shell_lines(path: Path):
    """``(line number, text)`` of the shell blocks of a Markdown file, continuations joined;
    ``None`` after each block."""
    lines = path.read_text().splitlines()
    i, block = 0, None  # block: None outside a fence, else its language
    while i < len(lines):
        fence = re.match(r"^\s*```\s*(\w*)", lines[i])
        if fence:
            if block is not None and block in SHELLS:
                yield None
            block = fence.group(1) if block is None else None
        elif block in SHELLS:
            start, text = i + 1, lines[i]
            while text.rstrip().endswith("\\") and i + 1 < len(lines):
                i += 1
                text = text.rstrip()[:-1] + " " + lines[i].strip()
            yield start, text
        i += 1


def _tokens(text: str) -> list[str]:
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    return list(lexer)


def _simple_commands(tokens: list[str]) -> list[list[str]]:
    commands, current, skip = [], [], False
    for token in tokens:
        if skip:
            skip = False
        elif token in SEPARATORS:
            commands.append(current)
            current = []
        elif token in REDIRECTIONS:
            skip = True  # drop the redirection and its target
        else:
            current.append(token)
    commands.append(current)
    return [c for c in commands if c]


def extract(path: Path) -> list[DocCommand]:
    """The commands of one document, each with the folder(s) it may run in."""
    rel = str(path.relative_to(REPO))
    found: list[DocCommand] = []
    cwd, env, moved = REPO, {}, False
    for item in _shell_lines(path):
        if item is None:  # a new block starts in the repository root again
            cwd, env, moved = REPO, {}, False
            continue
        line_no, text = item
        for argv in _simple_commands(_tokens(text)):
            prefix = {}
            while argv and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", argv[0]):
                key, value = argv.pop(0).split("=", 1)
                prefix[key] = value
            if not argv:
                env.update(prefix)
                continue
            if argv[0] == "cd":
                cwd, moved = (cwd / argv[1]).resolve(), True
                found.append(DocCommand(rel, line_no, text, argv, [cwd]))
                continue
            if argv[0] == "export":
                env.update(dict(a.split("=", 1) for a in argv[1:] if "=" in a))
                continue
            cwds = [cwd] if moved or path.parent == REPO else [cwd, path.parent]
            found.append(DocCommand(rel, line_no, text.strip(), argv, cwds, {**env, **prefix}))
    return found


COMMANDS = [cmd for path in doc_files() for cmd in extract(path)]


def variants(argv: list[str]) -> list[list[str]]:
    """``argv`` without ``...`` tokens; with a ``[...]`` optional part, both without and with it."""
    argv = [a for a in argv if a != "..."]
    if not any(a.startswith("[") for a in argv):
        return [argv]
    without, with_, inside = [], [], False
    for a in argv:
        if a.startswith("["):
            inside = True
        if inside:
            with_.append(a.strip("[]"))
        else:
            without.append(a)
            with_.append(a)
        if a.endswith("]"):
            inside = False
    return [without, with_]


# --- running a script's parser only --------------------------------------------------------


class Parsed(BaseException):
    """Raised right after a command line was parsed: the work is never done."""

    def __init__(self, params: object):
        super().__init__("parsed")
        self.params = params


@contextlib.contextmanager
def _stop_after_parsing(monkeypatch):
    parse_args = argparse.ArgumentParser.parse_args
    invoke = click.Command.invoke

    def parse_and_stop(self, args=None, namespace=None):
        raise Parsed(parse_args(self, args, namespace))

    def invoke_and_stop(self, ctx):
        if isinstance(self, click.Group):
            return invoke(self, ctx)
        raise Parsed(ctx.params)

    with monkeypatch.context() as m:
        m.setattr(argparse.ArgumentParser, "parse_args", parse_and_stop)
        m.setattr(click.Command, "invoke", invoke_and_stop)
        yield


@contextlib.contextmanager
def _as_command_line(argv0: str, args: list[str], cwd: Path, path_entry: Path):
    """sys.argv, cwd and sys.path[0] as ``python argv0 args`` run in ``cwd`` would have them."""
    saved_argv, saved_path, saved_cwd, saved_modules = sys.argv[:], sys.path[:], os.getcwd(), set(sys.modules)
    sys.argv = [argv0, *args]
    sys.path.insert(0, str(path_entry))
    os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        sys.argv, sys.path[:] = saved_argv, saved_path
        for name in set(sys.modules) - saved_modules:  # sibling modules imported from path_entry
            if str(getattr(sys.modules[name], "__file__", "") or "").startswith(str(path_entry) + os.sep) \
                    and "." not in name and not (REPO / name).is_dir():
                del sys.modules[name]


def _run_module_as_main(module: str, origin: Path) -> None:
    """``python -m module``: the module's code as ``__main__`` inside its package (relative imports work).

    runpy.run_module would do it, but pytest's import hook claims modules named ``test_*``
    (classification.test_iam) and cannot hand runpy their code.
    """
    code = compile(origin.read_text(), str(origin), "exec")
    exec(code, {"__name__": "__main__", "__file__": str(origin), "__package__": module.rpartition(".")[0],
                "__builtins__": __builtins__})


def _in_repo(path: str | Path | None) -> bool:
    return path is not None and Path(path).resolve().is_relative_to(REPO)


def run_python(args: list[str], cwd: Path, monkeypatch, parse_only: bool = True) -> str | None:
    """Parse (or, with ``parse_only`` False, run) ``python ARGS`` in-process; an error text or None."""
    import importlib.util

    args = list(args)
    while args and args[0].startswith("-") and args[0] not in ("-m", "-c", "-"):
        args.pop(0)  # interpreter options such as -u
    if not args or args[0] in ("-c", "-"):
        return None  # inline code: not checked
    if args[0] == "-m":
        module, rest = args[1], args[2:]
        spec = importlib.util.find_spec(module)
        if spec is None:
            return f"no module {module}"
        if not _in_repo(spec.origin):
            return None  # pip, pytest, ...: other tools
        argv0, entry = spec.origin, cwd
        run = lambda: _run_module_as_main(module, Path(spec.origin))  # noqa: E731
    else:
        script = (cwd / args[0]).resolve()
        if not script.is_file():
            return f"no script {script}"
        if not _in_repo(script):
            return None
        argv0, rest, entry = str(script), args[1:], script.parent
        run = lambda: runpy.run_path(str(script), run_name="__main__")  # noqa: E731
    err = io.StringIO()
    stop = _stop_after_parsing(monkeypatch) if parse_only else contextlib.nullcontext()
    with _as_command_line(argv0, rest, cwd, entry), stop, contextlib.redirect_stderr(err), \
            contextlib.redirect_stdout(io.StringIO()):
        try:
            run()
        except Parsed as parsed:
            return _check_config(parsed.params)
        except SystemExit as exc:
            if exc.code in (0, None):
                return None
            return f"exit status {exc.code}: {err.getvalue().strip()}"
    return None if not parse_only else "the command ran without parsing arguments through argparse or click"


def _check_config(params: object) -> str | None:
    """A click command with --config-path/--set: the config must load with those overrides."""
    from nsrom.errors import NsromError
    from segmentation.libs.utils.config import load_config

    if isinstance(params, dict) and params.get("config_path") and "overrides" in params:
        try:
            load_config(params["config_path"], params["overrides"])
        except NsromError as exc:
            return f"config: {exc}"
    return None


# --- shell scripts, with python & co replaced by a recorder --------------------------------

RECORDED = ("python", "python3", "torchrun", "pip")


@pytest.fixture(scope="session")
def shims(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("shims")
    for name in RECORDED:
        shim = folder / name
        shim.write_text(
            "#!/usr/bin/env bash\n"
            'n=$(ls "$DOC_SHIM_RECORD" | wc -l)\n'
            f'{{ printf "%s\\0" "$PWD" {name}; printf "%s\\0" "$@"; }} > "$DOC_SHIM_RECORD/$(printf %04d "$n")"\n'
        )
        shim.chmod(0o755)
    return folder


def run_shell(argv: list[str], cwd: Path, env: dict[str, str], shims: Path, record: Path, monkeypatch) -> str | None:
    record.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, **env, "PATH": f"{shims}{os.pathsep}{os.environ['PATH']}",
                "PYTHON": str(shims / "python"), "DOC_SHIM_RECORD": str(record)}
    command = ["bash", *argv] if argv[0].endswith(".sh") else argv
    proc = subprocess.run(command, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        return f"exit status {proc.returncode}: {proc.stderr.strip()[-2000:]}"
    calls = sorted(record.iterdir())
    if not calls:
        return "the script called no Python entry point"
    for call in calls:
        call_cwd, *call_argv = call.read_bytes().decode().split("\0")[:-1]
        error = check(call_argv, [Path(call_cwd)], {}, shims, record / "nested", monkeypatch)
        if error:
            return f"{' '.join(call_argv)} (called by the script): {error}"
    return None


def run_torchrun(args: list[str], cwd: Path, monkeypatch) -> str | None:
    from torch.distributed.run import get_args_parser

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            parsed = get_args_parser().parse_args(args)
    except SystemExit as exc:
        return f"torchrun flags: exit status {exc.code}: {err.getvalue().strip()}"
    script = ["-m", parsed.training_script] if parsed.module else [parsed.training_script]
    return run_python([*script, *parsed.training_script_args], cwd, monkeypatch)


def check(argv: list[str], cwds: list[Path], env: dict[str, str], shims: Path, record: Path, monkeypatch) -> str | None:
    """Check one command; returns what is wrong, or None."""
    name = Path(argv[0]).name
    if name in EXTERNAL:
        return None
    if name == "cd":
        return None if cwds[0].is_dir() else f"no folder {cwds[0]}"
    script = next((a for a in argv[:2] if a.endswith((".py", ".sh"))), None)
    cwd = next((c for c in cwds if script is None or (c / script).exists()), cwds[0])
    if name in PYTHONS:
        return run_python(argv[1:], cwd, monkeypatch)
    if name == "torchrun":
        return run_torchrun(argv[1:], cwd, monkeypatch)
    if name in ("bash", "sh") or argv[0].endswith(".sh"):
        target = argv[1] if name in ("bash", "sh") else argv[0]
        if not (cwd / target).is_file():
            return f"no script {cwd / target}"
        return run_shell([target, *argv[2 if name in ("bash", "sh") else 1:]], cwd, env, shims, record, monkeypatch)
    return f"unknown command {argv[0]!r}: not checked (add it to EXTERNAL if it is another tool's)"


@pytest.mark.parametrize("argv, cwd, expected", [
    (["python", "tools/eval_labels.py", "--data-root", "R", "--cams", "a", "b", "--nope"], ".",
     "unrecognized arguments: --nope"),
    (["python", "pipeline.py", "--work-dir", "W"], ".", "the following arguments are required: --data-root"),
    (["python", "-m", "classification.test_iam", "--batch-size", "x"], ".", "argument --batch-size: expected a whole number >= 1, got 'x'"),
    (["python", "main.py", "crf", "--jobs", "8"], "segmentation", "No such option '--jobs'"),
    (["python", "main.py", "test", "--set", "SOLVER.ITERMAX=1"], "segmentation", "unknown config key SOLVER.ITERMAX"),
    (["python", "main.py", "test", "-c", "configs/voc13.yaml"], "segmentation", "config file not found"),
    (["torchrun", "--nproc_per_node", "2", "main.py", "tset"], "segmentation", "No such command 'tset'"),
    (["torchrun", "--nnodes", "2", "--bogus", "main.py"], "segmentation", "torchrun flags"),
    (["./train.sh", "--epoch", "3", "--bogus"], "classification", "unrecognized arguments: --bogus"),
    (["python", "gen_label.py"], ".", "no script"),
    (["frobnicate", "x"], ".", "unknown command 'frobnicate'"),
])
def test_the_check_catches_wrong_commands(argv, cwd, expected, shims, tmp_path, monkeypatch):
    """The checker is not a no-op: wrong flags, values, config keys, subcommands and scripts are reported."""
    error = check(argv, [REPO / cwd], {}, shims, tmp_path / "record", monkeypatch)
    assert error is not None and expected in error, error


def test_documents_have_commands():
    files = {c.file for c in COMMANDS}
    assert {"README.md", "classification/README.md", "segmentation/README.md"} <= files
    assert len(COMMANDS) > 30


@pytest.mark.parametrize("command", COMMANDS, ids=[f"{c.file}:{c.line}" for c in COMMANDS])
def test_documented_command_parses(command, shims, tmp_path, monkeypatch):
    for i, argv in enumerate(variants(command.argv)):
        error = check(argv, command.cwds, command.env, shims, tmp_path / f"record{i}", monkeypatch)
        assert error is None, f"{command.where} (run as {shlex.join(argv)}): {error}"


# --- the README's scoring command, for real --------------------------------------------------


def test_readme_scoring_command_scores(tmp_path, monkeypatch):
    """``tools/eval_labels.py`` as the README writes it, on synthetic data laid out at its paths:
    perfect CAMs (the masks) and labels (copies of the masks) score 100%."""
    import shutil

    import numpy as np

    from nsrom.files import read_json
    from nsrom.images import read_label, write_grey
    from nsrom.synthetic import generate
    from tools.eval_labels import build_parser

    commands = [c for c in COMMANDS if c.file == "README.md" and any(a.endswith("eval_labels.py") for a in c.argv)]
    assert commands, "README.md shows no tools/eval_labels.py command"
    for n, command in enumerate(commands):
        argv = variants(command.argv)[0]
        script = next(i for i, a in enumerate(argv) if a.endswith("eval_labels.py"))
        args = build_parser().parse_args(argv[script + 1:])
        work = tmp_path / f"cwd{n}"
        layout = generate(work / args.data_root, num_train=4, num_val=1, size=32, num_classes=3, seed=n)
        split = args.split or layout.train_split
        if split != layout.train_split:
            shutil.copy(layout.list_path(layout.train_split), layout.list_path(split))
        for folder in args.cams:
            for image_id, classes in layout.image_labels(split).items():
                mask = read_label(layout.mask_path(image_id))
                for c in classes:
                    write_grey(work / folder / f"{image_id}_{c}.png", ((mask == c + 1) * 255).astype(np.uint8))
        for folder in args.labels:
            shutil.copytree(layout.mask_dir, work / folder)
        assert Path(argv[0]).name in PYTHONS, command.where
        # Run as written, in a folder that holds the data at the command's relative paths.
        error = run_python([str(REPO / argv[1]), *argv[2:]], work, monkeypatch, parse_only=False)
        assert error is None, f"{command.where}: {error}"
        results = read_json(work / args.out)
        assert set(results) == {str(f) for f in [*args.cams, *args.labels]}, command.where
        for folder, result in results.items():
            assert result["miou"] == 1.0 and result["num_images"] == 4, (command.where, folder)
