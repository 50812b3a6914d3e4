"""The repository stands alone (issue 16): no file points at data or documents outside it.

`outside_references(root)` scans every text file under src/, tests/, benchmarks/, docs/ and .ci/,
and the files at the top level (README.md, BENCHMARKS.md, Makefile, pyproject.toml...), for:
- the workspace's sibling folder (a `..` + `/shared` path) and the workspace root (`/` + `work/`);
- absolute home folders (`/home/<user>`, `/Users/<user>`, the root user's, Windows user folders);
- Python `Path(__file__)` chains (`.parent`, `.parents[k]`) that climb above the repository
  root, and `.parent` / `/ ".."` applied to a name bound to the root (`ROOT` then `.parent`);
- shell `$(dirname "$0")/..` chains that climb above the root;
- Markdown links whose target is outside the repository or missing.
Scratch locations (`/tmp/...`) and URLs are not references to files the project needs.
The patterns are spelled so that this file does not match itself.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCANNED_DIRS = ("src", "tests", "benchmarks", "docs", ".ci")
SKIPPED_DIRS = {"__pycache__", ".pytest_cache", ".hypothesis", "build", "dist"}

PATTERNS = [
    (re.compile(r"\.\.[/\\]+shared\b"), "a path into the workspace's sibling folder"),
    (re.compile(r"(?<![\w.-])/wor[k]/"), "an absolute path into the workspace"),
    (re.compile(r"(?<![\w.-])/(?:hom[e]|User[s])/[A-Za-z0-9_.-]+"), "an absolute home folder"),
    (re.compile(r"(?<![\w.-])/roo[t]/"), "an absolute home folder"),
    (re.compile(r"\b[A-Za-z]:\\\\?User[s]\\"), "an absolute home folder"),
]
_FILE_CHAIN = re.compile(r"Path\(__file__\)(?:\.resolve\(\)|\.absolute\(\))?"
                         r"(?P<chain>(?:\.parents\[\d+\]|\.parent\b)*)")
_CHAIN_STEP = re.compile(r"\.parents\[(\d+)\]|\.parent\b")
_ASSIGNED_CHAIN = re.compile(r"^\s*(?P<name>[A-Za-z_]\w*)\s*(?::[^=]+)?=\s*" + _FILE_CHAIN.pattern, re.M)
_DIRNAME_CHAIN = re.compile(r"\$\(dirname \"?\$(?:0|\{BASH_SOURCE\[0\]\}|BASH_SOURCE)\"?\)(?P<ups>(?:/\.\.)+)")
_MD_LINK = re.compile(r"\[[^\]]*\]\((?P<target>[^)\s]+)\)")


def _levels(chain: str) -> int:
    """How many folders a `.parent` / `.parents[k]` chain climbs from the file itself."""
    return sum(int(m.group(1)) + 1 if m.group(1) is not None else 1 for m in _CHAIN_STEP.finditer(chain))


def scanned_files(root: Path) -> list[Path]:
    """Text files of the repository the check reads (generated folders and binary files left out)."""
    files = [p for p in root.iterdir() if p.is_file()]
    for name in SCANNED_DIRS:
        if (root / name).is_dir():
            files += [p for p in (root / name).rglob("*") if p.is_file()
                      and not any(part in SKIPPED_DIRS or part.endswith(".egg-info")
                                  for part in p.relative_to(root).parts)]
    out = []
    for p in sorted(files):
        data = p.read_bytes()
        if b"\0" in data or data[:2] == b"\x1f\x8b":
            continue
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        out.append(p)
    return out


def check_text(path: Path, text: str, root: Path) -> list[str]:
    """Problems of one file, as `relative/path:line: what (the text)`."""
    rel = path.relative_to(root)
    depth = len(rel.parts) - 1  # folders between the root and the file
    problems = []

    def report(pos: int, what: str, found: str) -> None:
        line = text.count("\n", 0, pos) + 1
        problems.append(f"{rel}:{line}: {what} ({found})")

    for pattern, what in PATTERNS:
        for m in pattern.finditer(text):
            report(m.start(), what, m.group(0))
    if path.suffix == ".py":
        for m in _FILE_CHAIN.finditer(text):
            if _levels(m.group("chain")) > depth + 1:
                report(m.start(), "a path above the repository root", m.group(0))
        for m in _ASSIGNED_CHAIN.finditer(text):
            if _levels(m.group("chain")) == depth + 1:  # the name is bound to the root
                name = re.escape(m.group("name"))
                for up in re.finditer(rf"\b{name}\.parent\b|\b{name}\s*/\s*[\"']\.\.", text):
                    report(up.start(), "a path above the repository root", up.group(0))
    for m in _DIRNAME_CHAIN.finditer(text):
        if m.group("ups").count("..") > depth:
            report(m.start(), "a path above the repository root", m.group(0))
    if path.suffix == ".md":
        for m in _MD_LINK.finditer(text):
            target = m.group("target").split("#")[0]
            if not target or re.match(r"[a-z][a-z0-9+.-]*:", target):
                continue  # an anchor or a URL
            resolved = (path.parent / target).resolve()
            if not resolved.is_relative_to(root.resolve()):
                report(m.start(), "a link outside the repository", target)
            elif not resolved.exists():
                report(m.start(), "a link to a missing file", target)
    return problems


def outside_references(root: Path) -> tuple[list[str], int]:
    """(problems, number of files scanned) for the repository at `root`."""
    files = scanned_files(root)
    problems = [p for f in files for p in check_text(f, f.read_text(encoding="utf-8"), root)]
    return problems, len(files)


def test_the_repository_refers_to_nothing_outside_it():
    problems, scanned = outside_references(ROOT)
    assert scanned > 80  # src, tests, benchmarks, docs and the top-level files were all read
    assert not problems, "references outside the repository:\n" + "\n".join(problems)


def test_the_checker_finds_planted_references(tmp_path):
    root = tmp_path / "repo"
    up, sib = "..", "shared"
    planted = {
        "src/pkg/mod.py": f'DATA = "{up}/{sib}/data/x.json"\n',
        "tests/t_escape.py": "from pathlib import Path\nX = Path(__file__)" + ".resolve().parents[2] / 'data'\n",
        "tests/t_root.py": "from pathlib import Path\nROOT = Path(__file__)" + ".resolve().parents[1]\n"
                           "DATA = ROOT" + ".parent / 'data'\n",
        "benchmarks/run.sh": 'cd "$(dirname "$0")' + '/../.."\n',
        "docs/a.md": "See [the spec](../../DESIGN.md).\n",
        "docs/b.md": "See [the spec](missing.md).\n",
        "README.md": "Data in " + "/" + "home/alice/data, or " + "/" + "work/x.\n",
        "Makefile": "test:\n\tcp " + "/" + "root/x .\n",
    }
    clean = {
        "src/pkg/ok.py": "from pathlib import Path\nHERE = Path(__file__).resolve().parent\n"
                         "ROOT = Path(__file__)" + ".parents[2]\nCFG = ROOT / 'configs'\nOUT = '/tmp/x'\n",
        "tests/t_ok.py": "from pathlib import Path\nROOT = Path(__file__).resolve().parents[1]\n",
        ".ci/run": 'cd "$(dirname "$0")/.."\n',
        "docs/c.md": "[README](../README.md), [site](https://example.org/a/../b), [top](#top)\n",
        "src/pkg/blob.bin": "\0" + f"{up}/{sib}",
    }
    for rel, text in {**planted, **clean}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    problems, scanned = outside_references(root)
    assert scanned == len(planted) + len(clean) - 1  # the binary file is skipped
    flagged = {p.split(":")[0] for p in problems}
    assert flagged == set(planted), "\n".join(problems)
    readme = [p for p in problems if p.startswith("README.md")]
    assert len(readme) == 2 and all(":1:" in p for p in readme)


def test_design_document_is_in_the_repository_and_linked():
    assert (ROOT / "docs" / "design.md").is_file()
    for doc in ("README.md", "docs/architecture.md"):
        assert re.search(r"\]\((?:\./)?(?:docs/)?design\.md\)", (ROOT / doc).read_text()), doc
