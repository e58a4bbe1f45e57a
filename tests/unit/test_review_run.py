"""`python3 -m review run`'s own parts on a real git repository (no Pulumi): which revision it
reviews against, which files make the working tree, and the review stack's file."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from review import run

LAB = "config:\n  hashicluster:machines:\n    provider: nspawn\n    network: 10.210.1.0/24\n"


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t.invalid", *args],
                   check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "stacks").mkdir()
    (repo / "stacks" / "lab.yaml").write_text(LAB)
    (repo / ".gitignore").write_text("ignored.txt\n")
    (repo / "kept.py").write_text("v1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    return repo


def test_base_defaults_to_head_without_origin(repo: Path) -> None:
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert run.resolve_base(repo, None) == head
    assert run.resolve_base(repo, "main") == head


def test_unknown_base_names_the_fix(repo: Path) -> None:
    with pytest.raises(run.ReviewError, match=r"'nope' is not a commit .* Fix: pass --base REV"):
        run.resolve_base(repo, "nope")


def test_base_tree_is_the_commit_and_working_tree_is_the_files_now(repo: Path, tmp_path: Path) -> None:
    commit = run.resolve_base(repo, "main")
    (repo / "kept.py").write_text("v2\n")
    (repo / "new.py").write_text("new\n")
    (repo / "ignored.txt").write_text("x\n")
    run.export_revision(repo, commit, tmp_path / "base")
    run.copy_working_tree(repo, tmp_path / "head")
    assert (tmp_path / "base" / "kept.py").read_text() == "v1\n"
    assert not (tmp_path / "base" / "new.py").exists()
    assert (tmp_path / "head" / "kept.py").read_text() == "v2\n"
    assert (tmp_path / "head" / "new.py").read_text() == "new\n"
    assert not (tmp_path / "head" / "ignored.txt").exists()


def test_review_stack_file_moves_the_lab_network(repo: Path) -> None:
    run.prepare(repo, repo, "review", "10.210.5.0/24")
    text = (repo / "Pulumi.review.yaml").read_text()
    assert "network: 10.210.5.0/24" in text and "10.210.1.0/24" not in text
    assert (repo / "venv").is_symlink()


def test_a_stack_file_without_the_lab_network_is_refused(repo: Path) -> None:
    (repo / "stacks" / "lab.yaml").write_text(LAB.replace("10.210.1.0/24", "10.210.3.0/24"))
    with pytest.raises(run.ReviewError, match=r"no `network: 10\.210\.1\.0/24` line"):
        run.prepare(repo, repo, "review", "10.210.5.0/24")
