"""README.md and docs/ are true: their runnable blocks run as written, and the options, fields,
exit codes and links they name exist.

A fenced block right after ``<!-- runnable -->`` is run, in page order, in a temporary directory
holding a copy of ``sample_inputs/``, against a real fake server on a free port. Each page has a
directory and a fake server of its own, so that no page leans on another by accident; only the
pages of a sequence in SEQUENCES share theirs, run one after the other in the order given. The
marker may say ``exit=N`` (the block's documented exit status) or ``file=NAME`` (save the block
as NAME instead of running it). ``sh`` blocks run under ``bash -e -o pipefail``, each in a shell
of its own with the environment the README's fake-server preamble sets; ``python`` blocks run
with this interpreter.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest
from helpers import API_KEY, stop_process, without_proxies

from bulkdelete.cli import ExitCode, cli
from bulkdelete.settings import DEFAULTS

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
README_SERVER = "http://127.0.0.1:8080"  # where the README's fake server listens
BLOCK_TIMEOUT = 60.0
# One worker runs every block once: the module-scoped run would otherwise repeat on each worker.
pytestmark = pytest.mark.xdist_group("docs")

README_MAX_BYTES = 15 * 1024  # the front door: what a newcomer needs first, the rest in docs/
TRYING_IT = "../README.md#trying-it-against-the-fake-server"  # where docs/ pages' commands run

# Pages read in sequence: each reads files the pages before it wrote, so they share one directory
# and one fake server, in this order. The README's recipes erase the sample users and leave their
# audits; the nightly purge then finds those users gone, the auditors' page verifies, reads back
# and follows up the GDPR recipe's audit, and the reports page reads it and the resumed run's.
SEQUENCES: tuple[tuple[str, ...], ...] = (
    (
        "README.md",
        "docs/nightly-purge.md",
        "docs/resume.md",
        "docs/auditors.md",
        "docs/reports.md",
    ),
)
# The sections that must name every audit field, every summary field and every exit code.
AUDIT_SECTION = ("docs/audit.md", "The audit")
SUMMARY_SECTION = ("docs/summary.md", "Progress and the end-of-run summary")
EXIT_CODES_SECTION = ("README.md", "Exit codes")
DELETE_OPTIONS_SECTION = ("docs/delete.md", "Options of `bulkdelete delete`")
STOP_GRACE_PAGE = "docs/resume.md"

_MARKER = re.compile(r"<!-- runnable(?P<options>(?: [a-z]+=[^ ]+)*) -->")
_FENCE_OPEN = re.compile(r"```(?P<lang>[a-z]*)")
_FENCE_CLOSE = "```"
_HEADING = re.compile(r"(?P<hashes>#{1,6}) (?P<title>.+)")
# A link's text may run over several lines; its target is one word.
_LINK = re.compile(r"\[(?P<text>[^\]]*)\]\((?P<target>[^)\s]*)\)")
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*:")  # https:, mailto:: outside this repository
# `bulkdelete WORD` as a command: not part of a path or a longer name, WORD then a blank or the end.
_COMMAND = re.compile(
    r"(?<![\w/.-])bulkdelete[ \t]+(?P<word>[a-z][a-z-]*|--?[a-z][a-z-]*)(?=[ \t]|$)"
)
_OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z-]*)")
_COMMAND_END = re.compile(r"[|;&#]")  # a pipe, a list, a background job or a comment
_INLINE_CODE = re.compile(r"`([^`\n]+)`")
# "| `--max-share F` | `0.98` |": an option's row whose default is one code span.
_TABLE_DEFAULT = re.compile(r"^\| `(?P<option>--[a-z-]+)[^`]*` \| `(?P<default>[^`]+)` \|", re.M)
# "`--concurrency` (default 100)", "**`--max-share`** (default 0.98)", across a line break too.
_PROSE_DEFAULT = re.compile(r"`(?P<option>--[a-z-]+)`\**\s+\(default\s+(?P<default>[0-9.]+)")


def pages() -> list[Path]:
    """Return README.md and every page of docs/."""
    return [README, *sorted(DOCS.rglob("*.md"))]


def name_of(page: Path) -> str:
    """Return the page's path from the repository's root, as the tests name it."""
    return page.relative_to(ROOT).as_posix()


def text_of(name: str) -> str:
    """Return the page named by its path from the repository's root as text."""
    return (ROOT / name).read_text(encoding="utf-8")


def readme_text() -> str:
    """Return the README as text."""
    return README.read_text(encoding="utf-8")


@dataclass(frozen=True, slots=True)
class Block:
    """One fenced code block of a page."""

    page: str
    line: int  # of the opening fence, counting from 1
    lang: str
    text: str
    runnable: bool
    exit_code: int
    save_as: str | None

    def __str__(self) -> str:
        return f"{self.page}:{self.line} ({self.lang or 'plain'} block)"


def _fences(lines: list[str]) -> Iterator[tuple[int, int]]:
    """Yield the indexes of each fenced block's opening and closing lines."""
    number = 0
    while number < len(lines):
        if _FENCE_OPEN.fullmatch(lines[number]):
            end = lines.index(_FENCE_CLOSE, number + 1)
            yield number, end
            number = end + 1
        else:
            number += 1


def parse_blocks(text: str, page: str = "README.md") -> list[Block]:
    """Return every fenced block of ``text`` with its runnable marker, if it has one."""
    lines = text.splitlines()
    blocks: list[Block] = []
    for number, end in _fences(lines):
        opening = _FENCE_OPEN.fullmatch(lines[number])
        assert opening is not None
        marker = _MARKER.fullmatch(lines[number - 1]) if number else None
        options = dict(o.split("=", 1) for o in marker["options"].split()) if marker else {}
        assert set(options) <= {"exit", "file"}, f"{page}:{number}: unknown marker option"
        blocks.append(
            Block(
                page=page,
                line=number + 1,
                lang=opening["lang"],
                text="\n".join(lines[number + 1 : end]) + "\n",
                runnable=marker is not None,
                exit_code=int(options.get("exit", "0")),
                save_as=options.get("file"),
            )
        )
    return blocks


def page_blocks(page: Path) -> list[Block]:
    """Return every fenced block of a page."""
    return parse_blocks(page.read_text(encoding="utf-8"), name_of(page))


def prose(text: str) -> str:
    """Return ``text`` with the lines of its fenced blocks blanked, so line numbers still hold."""
    lines = text.splitlines()
    for number, end in _fences(lines):
        lines[number : end + 1] = [""] * (end + 1 - number)
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class Heading:
    """One heading of a page, outside its code blocks."""

    index: int  # of its line, counting from 0
    level: int
    title: str


def headings(text: str) -> list[Heading]:
    """Return the headings of a page in order."""
    return [
        Heading(index, len(found["hashes"]), found["title"].strip())
        for index, line in enumerate(prose(text).splitlines())
        if (found := _HEADING.fullmatch(line))
    ]


def section(text: str, title: str) -> str:
    """Return the section headed ``title``: to the next heading of its level or above."""
    lines = text.splitlines()
    found = headings(text)
    start = next((heading for heading in found if heading.title == title), None)
    assert start is not None, f"no heading {title!r}"
    end = next(
        (h.index for h in found if h.index > start.index and h.level <= start.level), len(lines)
    )
    return "\n".join(lines[start.index : end]) + "\n"


def slug(title: str) -> str:
    """Return the anchor GitHub gives a heading: its text lowercased, without punctuation,
    blanks as hyphens."""
    text = _LINK.sub(r"\g<text>", title).replace("`", "")
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Return every heading anchor of a page; a repeated heading gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for heading in headings(text):
        anchor = slug(heading.title)
        repeats = seen.get(anchor, 0)
        seen[anchor] = repeats + 1
        found.add(f"{anchor}-{repeats}" if repeats else anchor)
    return found


def links(text: str) -> list[str]:
    """Return the target of every Markdown link of a page, outside code."""
    return [found["target"] for found in _LINK.finditer(_INLINE_CODE.sub("", prose(text)))]


def link_problems(page: Path, root: Path) -> list[str]:
    """Return each relative link of ``page`` to a file missing under ``root`` or to an anchor
    no heading of its page makes."""
    problems = []
    where = page.relative_to(root).as_posix()
    for target in links(page.read_text(encoding="utf-8")):
        if _SCHEME.match(target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.is_relative_to(root) or not linked.exists():
            problems.append(f"{where}: ({target}): no such file")
        elif anchor and (
            linked.suffix != ".md" or anchor not in anchors(linked.read_text(encoding="utf-8"))
        ):
            problems.append(f"{where}: ({target}): no such heading")
    return problems


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


def sessions() -> list[tuple[Path, ...]]:
    """Return the pages whose runnable blocks share a directory and a fake server, in order:
    each sequence, and every other page alone."""
    sequences = [tuple(ROOT / name for name in sequence) for sequence in SEQUENCES]
    sequenced = [page for sequence in sequences for page in sequence]
    assert len(set(sequenced)) == len(sequenced), "a page is in two sequences"
    assert set(sequenced) <= set(pages()), "a sequence names a page that is not there"
    return [*((page,) for page in pages() if page not in sequenced), *sequences]


@dataclass(frozen=True, slots=True)
class Ran:
    """What one runnable block did."""

    block: Block
    returncode: int
    stdout: str
    stderr: str


@dataclass(frozen=True, slots=True)
class DocsRun:
    """Every runnable block's result, and the directories they ran in."""

    results: list[Ran]
    directories: list[Path]

    def files(self, pattern: str) -> list[Path]:
        """Return the files the blocks left whose names match ``pattern``."""
        return sorted(path for directory in self.directories for path in directory.rglob(pattern))


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
        path = directory / f"block-{Path(block.page).stem}-{block.line}.py"
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


def _environment() -> dict[str, str]:
    """Return the environment of the README's second terminal, less the fake server's URL."""
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
    return env


@contextmanager
def _fake_server(directory: Path, env: dict[str, str]) -> Iterator[str]:
    """Run the fake server with the sample users on a free port; yield its base URL."""
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
        yield base_url
    finally:
        stop_process(server)


def _run_session(session: tuple[Path, ...], directory: Path, env: dict[str, str]) -> list[Ran]:
    """Run the runnable blocks of the session's pages in order, against one fresh fake server."""
    shutil.copytree(ROOT / "sample_inputs", directory / "sample_inputs")
    results = []
    with _fake_server(directory, env) as base_url:
        env = {**env, "COMETCHAT_BASE_URL": base_url}
        server_root = base_url.removesuffix("/v3")
        for page in session:
            for block in page_blocks(page):
                if not block.runnable:
                    continue
                script = _script(block, server_root)
                if block.save_as is not None:
                    saved = directory / block.save_as
                    saved.write_text(script, encoding="utf-8")
                    saved.chmod(0o755)
                else:
                    results.append(_run(block, script, directory, env))
    return results


@pytest.fixture(scope="module")
def docs_run(tmp_path_factory: pytest.TempPathFactory) -> DocsRun:
    """Run every runnable block of the README and docs/, each session in a directory of its own."""
    env = _environment()
    results: list[Ran] = []
    directories: list[Path] = []
    for session in sessions():
        if not any(block.runnable for page in session for block in page_blocks(page)):
            continue
        directory = tmp_path_factory.mktemp(session[0].stem.lower())
        directories.append(directory)
        results += _run_session(session, directory, env)
    return DocsRun(results, directories)


def test_runnable_blocks_exit_as_documented(docs_run: DocsRun) -> None:
    """Every runnable block, run as written against the fake server, exits as its marker says."""
    failures = [
        f"{ran.block} exited {ran.returncode}, expected {ran.block.exit_code}\n"
        f"--- stdout\n{ran.stdout[-2000:]}\n--- stderr\n{ran.stderr[-2000:]}"
        for ran in docs_run.results
        if ran.returncode != ran.block.exit_code
    ]
    assert failures == []
    assert len(docs_run.results) >= 15  # the recipes are still marked runnable


def test_the_api_key_never_appears_in_what_the_blocks_print(docs_run: DocsRun) -> None:
    """No block's output, stdout or stderr, shows the API key it was given."""
    leaks = [str(ran.block) for ran in docs_run.results if API_KEY in ran.stdout + ran.stderr]
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


def test_every_audit_field_the_blocks_wrote_is_documented(docs_run: DocsRun) -> None:
    """Each field, event and outcome in the audits the blocks wrote is in The audit."""
    page, title = AUDIT_SECTION
    documented = section(text_of(page), title)
    audits = docs_run.files("*.jsonl")
    assert len(audits) >= 5
    names: set[str] = set()
    for audit in audits:
        for line in audit.read_text(encoding="utf-8").splitlines():
            names |= _audit_names(json.loads(line))
    assert sorted(name for name in names if f"`{name}`" not in documented) == []


def test_every_summary_json_field_is_documented(docs_run: DocsRun) -> None:
    """Each field of the --summary-json files the blocks wrote is in its table."""
    page, title = SUMMARY_SECTION
    documented = section(text_of(page), title)
    summaries = docs_run.files("*.summary.json")
    assert summaries
    names = set().union(*(json.loads(path.read_text(encoding="utf-8")) for path in summaries))
    assert sorted(name for name in names if f"`{name}`" not in documented) == []


def test_every_option_written_after_a_command_exists() -> None:
    """In code blocks, inline code and the CronJob's args, every option belongs to its command."""
    problems: list[str] = []
    every = all_options()
    for page in pages():
        for block in page_blocks(page):
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
        for code in _INLINE_CODE.findall(prose(page.read_text(encoding="utf-8"))):
            where = f"{name_of(page)}: inline `{code}`"
            if code.startswith("--"):
                problems += [
                    f"{where}: no command has {option}"
                    for option in _OPTION.findall(code)
                    if option not in every
                ]
            else:
                problems += command_problems(code, where)
    assert problems == []


def test_option_check_catches_a_wrong_option() -> None:
    """The option check itself finds an option its command lacks, and an unknown command."""
    assert command_problems("bulkdelete verify a.jsonl --yes | cat --x", "t") == [
        "t: 'bulkdelete verify' has no option --yes"
    ]
    assert command_problems("bulkdelete delte x", "t") == ["t: no command 'bulkdelete delte'"]
    assert command_problems("bulkdelete finished: 3 rows --x\nbulkdelete --version", "t") == []


def test_every_exit_code_is_in_the_exit_code_table() -> None:
    """Each of the CLI's exit codes has a row in the one exit-code table."""
    page, title = EXIT_CODES_SECTION
    table = section(text_of(page), title)
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
    assert any(line.startswith("<!-- runnable") for line in readme_text().splitlines())
    for page in pages():
        lines = page.read_text(encoding="utf-8").splitlines()
        for n, line in enumerate(lines):
            if line.startswith("<!-- runnable"):
                where = f"{name_of(page)}:{n + 1}"
                assert _MARKER.fullmatch(line), f"{where}: malformed marker"
                assert _FENCE_OPEN.fullmatch(lines[n + 1]), f"{where}: no fence right after"
        for block in page_blocks(page):
            if block.runnable:
                assert block.lang in {"sh", "python"}, str(block)
                assert not re.search(r"^\s*(make|docker|kubectl) ", block.text, re.MULTILINE)


def test_every_relative_link_and_anchor_resolves() -> None:
    """Each link between the README and the pages of docs/, and each #anchor, leads somewhere."""
    assert [problem for page in pages() for problem in link_problems(page, ROOT)] == []


def test_link_check_catches_a_missing_page_and_a_missing_heading(tmp_path: Path) -> None:
    """The link check itself finds a page that is not there and an anchor no heading makes."""
    root = tmp_path.resolve()
    (root / "docs").mkdir()
    (root / "docs" / "audit.md").write_text(
        "# The audit\n\n## The `prev` field, and the chain\n\n```sh\n# Not a heading\n```\n",
        encoding="utf-8",
    )
    readme = root / "README.md"
    readme.write_text(
        "# Title\n\n## Exit codes\n\n[a](#exit-codes) [b](docs/audit.md#the-audit)\n"
        "[c](docs/audit.md#the-prev-field-and-the-chain) [d](https://example.com/x)\n"
        "[e](docs/gone.md) [f](#exit-code) [g\nh](docs/audit.md#not-a-heading) `[i](#j)`\n"
        "[k](../outside.md)\n",
        encoding="utf-8",
    )
    assert link_problems(readme, root) == [
        "README.md: (docs/gone.md): no such file",
        "README.md: (#exit-code): no such heading",
        "README.md: (docs/audit.md#not-a-heading): no such heading",
        "README.md: (../outside.md): no such file",
    ]


def test_every_docs_page_is_linked_from_the_readme() -> None:
    """A page of docs/ that the README does not link to is one a newcomer never finds."""
    linked = {
        (README.parent / target.partition("#")[0]).resolve()
        for target in links(readme_text())
        if not _SCHEME.match(target)
    }
    assert [name_of(page) for page in pages() if page not in linked and page != README] == []


def test_every_docs_page_with_commands_says_where_they_run() -> None:
    """A page with runnable blocks links to the README's fake-server preamble they rely on."""
    assert [
        name_of(page)
        for page in pages()[1:]
        if any(block.runnable for block in page_blocks(page))
        and TRYING_IT not in links(page.read_text(encoding="utf-8"))
    ] == []


def test_readme_is_a_short_front_door_that_says_what_comes_after_the_demo() -> None:
    """The README stays under 15 KB, and its quick start ends with next steps for a newcomer."""
    text = readme_text()
    size = len(text.encode("utf-8"))
    assert size < README_MAX_BYTES
    next_steps = section(section(text, "Quick start"), "Next steps")
    assert {"#setting-up", "#trying-it-against-the-fake-server", "#documentation"} <= set(
        links(next_steps)
    )


def _said(value: object) -> str:
    """Return a default as the docs write it: 300.0 as 300, 0.98 as 0.98."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def test_the_defaults_the_docs_give_are_the_cli_defaults() -> None:
    """Each default the docs give a delete option (in its table, or as "(default N)") is the
    one its --help shows, which comes from the one defaults table; so is the stop grace."""
    options = {
        spelling: _said(param.default)
        for param in cli.commands["delete"].params
        if isinstance(param, click.Option) and param.show_default
        for spelling in param.opts
    }
    table = section(text_of(DELETE_OPTIONS_SECTION[0]), DELETE_OPTIONS_SECTION[1])
    given = list(_TABLE_DEFAULT.finditer(table))
    for path in pages():
        given += _PROSE_DEFAULT.finditer(prose(path.read_text(encoding="utf-8")))
    wrong = [
        (found["option"], found["default"], options.get(found["option"]))
        for found in given
        if found["option"] in options and options[found["option"]] != found["default"]
    ]
    assert len(given) >= 10  # the table's numbers are still read
    assert wrong == []
    grace = f"requests in flight get {_said(DEFAULTS.stop_grace)} seconds to finish"
    assert grace in " ".join(text_of(STOP_GRACE_PAGE).split())
