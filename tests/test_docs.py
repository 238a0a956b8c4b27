"""The README is true: its runnable blocks run as written, its options, fields and codes exist.

A fenced block right after ``<!-- runnable -->`` is run, in README order, against a real fake
server on a free port, in a temporary directory holding a copy of ``sample_inputs/``. The
marker may say ``exit=N`` (the block's documented exit status) or ``file=NAME`` (save the
block as NAME instead of running it). ``sh`` blocks run under ``bash -e -o pipefail``, each in
a shell of its own with the environment the README's fake-server preamble sets; ``python``
blocks run with this interpreter.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import API_KEY, stop_process, without_proxies

from bulkdelete.cli import ExitCode, cli

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
README_SERVER = "http://127.0.0.1:8080"  # where the README's fake server listens
BLOCK_TIMEOUT = 60.0

_MARKER = re.compile(r"<!-- runnable(?P<options>(?: [a-z]+=[^ ]+)*) -->")
_FENCE_OPEN = re.compile(r"```(?P<lang>[a-z]*)")
_FENCE_CLOSE = "```"
# `bulkdelete WORD` as a command: not part of a path or a longer name, WORD then a blank or the end.
_COMMAND = re.compile(
    r"(?<![\w/.-])bulkdelete[ \t]+(?P<word>[a-z][a-z-]*|--?[a-z][a-z-]*)(?=[ \t]|$)"
)
_OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z-]*)")
_COMMAND_END = re.compile(r"[|;&#]")  # a pipe, a list, a background job or a comment
_INLINE_CODE = re.compile(r"`([^`\n]+)`")


@dataclass(frozen=True, slots=True)
class Block:
    """One fenced code block of the README."""

    line: int  # of the opening fence, counting from 1
    lang: str
    text: str
    runnable: bool
    exit_code: int
    save_as: str | None

    def __str__(self) -> str:
        return f"README.md:{self.line} ({self.lang or 'plain'} block)"


def readme_text() -> str:
    """Return the README as text."""
    return README.read_text(encoding="utf-8")


def parse_blocks(text: str) -> list[Block]:
    """Return every fenced block of ``text`` with its runnable marker, if it has one."""
    lines = text.splitlines()
    blocks: list[Block] = []
    number = 0
    while number < len(lines):
        opening = _FENCE_OPEN.fullmatch(lines[number])
        if opening is None:
            number += 1
            continue
        end = lines.index(_FENCE_CLOSE, number + 1)
        marker = _MARKER.fullmatch(lines[number - 1]) if number else None
        options = dict(o.split("=", 1) for o in marker["options"].split()) if marker else {}
        assert set(options) <= {"exit", "file"}, f"README.md:{number}: unknown marker option"
        blocks.append(
            Block(
                line=number + 1,
                lang=opening["lang"],
                text="\n".join(lines[number + 1 : end]) + "\n",
                runnable=marker is not None,
                exit_code=int(options.get("exit", "0")),
                save_as=options.get("file"),
            )
        )
        number = end + 1
    return blocks


def section(text: str, title: str) -> str:
    """Return the body of the ``## title`` section of the README."""
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else len(text)]


def options_of(command: str) -> set[str]:
    """Return every option spelling a CLI command (``""`` for the group itself) accepts."""
    target = cli if not command else cli.commands[command]
    found = {"--help", "-h"}
    for param in target.params:
        found.update(param.opts)
        found.update(param.secondary_opts)
    return found


def all_options() -> set[str]:
    """Return every option of every command."""
    return set().union(*(options_of(name) for name in ["", *cli.commands]))


def command_problems(code: str, where: str) -> list[str]:
    """Return what is wrong with each ``bulkdelete COMMAND --option ...`` written in ``code``."""
    problems = []
    for line in re.sub(r"\\\n[ \t]*", " ", code).splitlines():
        for found in _COMMAND.finditer(line):
            word = found["word"]
            command = "" if word.startswith("-") else word
            if command and command not in cli.commands:
                problems.append(f"{where}: no command 'bulkdelete {word}'")
                continue
            rest = line[found.start("word") :]
            rest = _COMMAND_END.split(rest, maxsplit=1)[0]
            known = options_of(command)
            problems += [
                f"{where}: 'bulkdelete {command}' has no option {option}"
                for option in _OPTION.findall(rest)
                if option not in known
            ]
    return problems


@dataclass(frozen=True, slots=True)
class Ran:
    """What one runnable block did."""

    block: Block
    returncode: int
    stdout: str
    stderr: str


@dataclass(frozen=True, slots=True)
class ReadmeRun:
    """Every runnable block's result, and the directory they ran in."""

    results: list[Ran]
    directory: Path


def _script(block: Block, server_root: str) -> str:
    """Return the block as it runs here: the test's server, without the line starting one."""
    lines = [
        line
        for line in block.text.replace(README_SERVER, server_root).splitlines()
        if not ("bulkdelete fake-server" in line and "--port 8080" in line)
    ]
    return "\n".join(lines) + "\n"


def _run(block: Block, script: str, directory: Path, env: dict[str, str]) -> Ran:
    if block.lang == "python":
        path = directory / f"readme-block-{block.line}.py"
        path.write_text(script, encoding="utf-8")
        command = [sys.executable, str(path)]
    else:
        command = ["bash", "-e", "-o", "pipefail", "-c", script]
    done = subprocess.run(
        command,
        cwd=directory,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT,
        check=False,
    )
    return Ran(block, done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="module")
def readme_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReadmeRun]:
    """Run every runnable block of the README, in order, against one fake server."""
    directory = tmp_path_factory.mktemp("readme")
    shutil.copytree(ROOT / "sample_inputs", directory / "sample_inputs")
    scripts = Path(sys.executable).parent
    assert (scripts / "bulkdelete").exists(), f"no bulkdelete script beside {sys.executable}"
    env = without_proxies(
        {
            name: value
            for name, value in os.environ.items()
            if not name.startswith("COMETCHAT_") and name != "BULKDELETE_AUDIT_KEY"
        }
    )
    env["PATH"] = f"{scripts}{os.pathsep}{env.get('PATH', '')}"
    env["COMETCHAT_API_KEY"] = API_KEY
    users = directory / "sample_inputs" / "fake_server_users.txt"
    server = subprocess.Popen(
        [sys.executable, "-m", "bulkdelete", "fake-server", "--port", "0", "--users-file", users],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert server.stdout is not None
        base_url = server.stdout.readline().strip()  # the first line, or "" if it crashed
        assert base_url.startswith("http://127.0.0.1:"), f"the fake server said {base_url!r}"
        env["COMETCHAT_BASE_URL"] = base_url
        server_root = base_url.removesuffix("/v3")
        results = []
        for block in parse_blocks(readme_text()):
            if not block.runnable:
                continue
            script = _script(block, server_root)
            if block.save_as is not None:
                saved = directory / block.save_as
                saved.write_text(script, encoding="utf-8")
                saved.chmod(0o755)
            else:
                results.append(_run(block, script, directory, env))
        yield ReadmeRun(results, directory)
    finally:
        stop_process(server)


def test_runnable_blocks_exit_as_documented(readme_run: ReadmeRun) -> None:
    """Every runnable block, run as written against the fake server, exits as its marker says."""
    failures = [
        f"{ran.block} exited {ran.returncode}, expected {ran.block.exit_code}\n"
        f"--- stdout\n{ran.stdout[-2000:]}\n--- stderr\n{ran.stderr[-2000:]}"
        for ran in readme_run.results
        if ran.returncode != ran.block.exit_code
    ]
    assert failures == []
    assert len(readme_run.results) >= 15  # the recipes are still marked runnable


def test_the_api_key_never_appears_in_what_the_blocks_print(readme_run: ReadmeRun) -> None:
    """No block's output, stdout or stderr, shows the API key it was given."""
    leaks = [str(ran.block) for ran in readme_run.results if API_KEY in ran.stdout + ran.stderr]
    assert leaks == []


def _audit_names(record: dict[str, Any]) -> set[str]:
    """Return the field names of an audit record, nested ones included, and its event."""
    names = set(record)
    for field in ("settings", "operator", "totals"):
        if isinstance(record.get(field), dict):
            names |= set(record[field])
    for item in record.get("inputs") or ():
        names |= set(item)
    names |= {str(record[key]) for key in ("event", "outcome", "result") if key in record}
    return names


def test_every_audit_field_the_blocks_wrote_is_documented(readme_run: ReadmeRun) -> None:
    """Each field, event and outcome in the audits the README's runs wrote is in The audit."""
    documented = section(readme_text(), "The audit")
    audits = sorted(readme_run.directory.rglob("*.jsonl"))
    assert len(audits) >= 5
    names: set[str] = set()
    for audit in audits:
        for line in audit.read_text(encoding="utf-8").splitlines():
            names |= _audit_names(json.loads(line))
    assert sorted(name for name in names if f"`{name}`" not in documented) == []


def test_every_summary_json_field_is_documented(readme_run: ReadmeRun) -> None:
    """Each field of the --summary-json files the README's runs wrote is in its table."""
    documented = section(readme_text(), "Progress and the end-of-run summary")
    summaries = sorted(readme_run.directory.rglob("*.summary.json"))
    assert summaries
    names = set().union(*(json.loads(path.read_text(encoding="utf-8")) for path in summaries))
    assert sorted(name for name in names if f"`{name}`" not in documented) == []


def test_every_option_written_after_a_command_exists() -> None:
    """In code blocks, inline code and the CronJob's args, every option belongs to its command."""
    text = readme_text()
    problems: list[str] = []
    for block in parse_blocks(text):
        if block.lang == "python":
            continue
        problems += command_problems(block.text, str(block))
        for args in re.findall(r"args: (\[.*?\])", block.text, flags=re.DOTALL):
            command, *rest = json.loads(args)
            known = options_of(command)
            problems += [
                f"{block}: args of 'bulkdelete {command}' have no option {option}"
                for option in rest
                if option.startswith("--") and option not in known
            ]
    prose = re.sub(r"^```.*?^```$", "", text, flags=re.DOTALL | re.MULTILINE)
    every = all_options()
    for code in _INLINE_CODE.findall(prose):
        if code.startswith("--"):
            problems += [
                f"inline `{code}`: no command has {option}"
                for option in _OPTION.findall(code)
                if option not in every
            ]
        else:
            problems += command_problems(code, f"inline `{code}`")
    assert problems == []


def test_option_check_catches_a_wrong_option() -> None:
    """The option check itself finds an option its command lacks, and an unknown command."""
    assert command_problems("bulkdelete verify a.jsonl --yes | cat --x", "t") == [
        "t: 'bulkdelete verify' has no option --yes"
    ]
    assert command_problems("bulkdelete delte x", "t") == ["t: no command 'bulkdelete delte'"]
    assert command_problems("bulkdelete finished: 3 rows --x\nbulkdelete --version", "t") == []


def test_every_exit_code_is_in_the_exit_code_table() -> None:
    """Each of the CLI's exit codes has a row in the README's one exit-code table."""
    table = section(readme_text(), "Exit codes")
    documented = {
        int(code)
        for row in re.findall(r"^\| ([0-9, ]+) \|", table, flags=re.MULTILINE)
        for code in row.split(",")
    }
    assert {int(code) for code in ExitCode} <= documented


def test_quick_start_is_the_first_block() -> None:
    """The README opens with the two commands of the quick start, and nothing before them."""
    first = parse_blocks(readme_text())[0]
    assert first.lang == "sh"
    assert [line.split("#")[0].strip() for line in first.text.splitlines()] == [
        "make demo",
        "make test",
    ]
    assert not first.runnable


def test_runnable_markers_sit_right_above_a_runnable_kind_of_block() -> None:
    """A marker that does not touch its fence would silently not run; sh and python only."""
    text = readme_text()
    lines = text.splitlines()
    marked = [n for n, line in enumerate(lines) if line.startswith("<!-- runnable")]
    assert marked
    for n in marked:
        assert _MARKER.fullmatch(lines[n]), f"README.md:{n + 1}: malformed marker"
        assert _FENCE_OPEN.fullmatch(lines[n + 1]), f"README.md:{n + 1}: no fence right after"
    for block in parse_blocks(text):
        if block.runnable:
            assert block.lang in {"sh", "python"}, str(block)
            assert not re.search(r"^\s*(make|docker|kubectl) ", block.text, re.MULTILINE)
