"""The Dockerfile: linted by hadolint in `make lint`; here, its install steps in a clean venv.

There is no Docker engine on the CI machine, so this replays what the image's RUN line does
(`pip install .` of the build context) in a fresh virtualenv and runs the installed tool the
way the image's ENTRYPOINT would, from a directory outside the checkout.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")


def test_image_runs_bulkdelete_as_a_non_root_user_with_an_audit_volume() -> None:
    """USER is numeric and not 0, the ENTRYPOINT is bulkdelete, and /audit is a volume."""
    users = re.findall(r"^USER\s+(\S+)", DOCKERFILE, re.MULTILINE)
    assert users, "the image must switch to a non-root USER"
    assert users[-1].isdigit()
    assert users[-1] != "0"
    assert 'ENTRYPOINT ["bulkdelete"]' in DOCKERFILE
    assert 'VOLUME ["/audit"]' in DOCKERFILE


def test_install_steps_work_in_a_clean_virtualenv(tmp_path: Path) -> None:
    """The image's install step, replayed: `pip install .` of the COPYed files, then a demo."""
    context = tmp_path / "context"
    for copied in re.findall(r"^COPY\s+(.+?)\s+\S+$", DOCKERFILE, re.MULTILINE):
        for name in copied.split():
            source = ROOT / name
            if source.is_dir():
                shutil.copytree(
                    source, context / name, ignore=shutil.ignore_patterns("__pycache__")
                )
            else:
                context.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, context / name)
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    install = re.search(r"RUN pip install (--no-cache-dir )?\.", DOCKERFILE)
    assert install is not None, "the Dockerfile's install step changed: update this test"
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(context)],
        check=True,
        timeout=240,
    )
    elsewhere = tmp_path / "audit"
    elsewhere.mkdir()

    version = subprocess.run(
        [env_dir / "bin" / "bulkdelete", "--version"],
        capture_output=True, text=True, check=True, cwd=elsewhere,
    )  # fmt: skip
    demo = subprocess.run(
        [env_dir / "bin" / "bulkdelete", "demo", "--audit", "demo.jsonl"],
        capture_output=True, text=True, check=False, cwd=elsewhere, timeout=120,
    )  # fmt: skip

    assert version.stdout.startswith("bulkdelete, version")
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert (elsewhere / "demo.jsonl").is_file()
    assert sys.prefix not in demo.stdout  # the samples came from the new install, not this venv
