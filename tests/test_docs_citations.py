"""Docstrings and comments cite what a reader can open: ``docs/PROTOCOL.md §N.M``, never a private spec.

Two checks over the project's text files:

- no file cites the private specification (``SEA_SPEC``, ``spec §…``) or "the seed" (the original
  SEA code, which docs/PROTOCOL.md §9.2 names with a link) as a document;
- every ``PROTOCOL.md §X`` cited anywhere, and every ``§X`` inside docs/PROTOCOL.md itself, is a
  numbered heading of docs/PROTOCOL.md.

The checkers are plain functions so that the negative controls below can show that each one
catches the mistake it is for.
"""
import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROTOCOL = ROOT / "docs" / "PROTOCOL.md"

#: Where project text lives. ``sea_tf/configs`` is a link to ``configs/`` and is not walked twice.
SCANNED_DIRS = ("sea_tf", "export", "device", "configs", "docs", "benchmarks", "tests", "scripts")
SCANNED_FILES = ("README.md", "Makefile", "setup.cfg", "pyproject.toml")
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".sbatch", ".cfg", ".toml", ".txt", ".sh", ".json"}
SELF = Path(__file__).resolve()

#: References to documents a reader of the repository cannot open. "seed" alone is a random
#: seed; only phrasings that treat "the seed" as a body of code are references.
FORBIDDEN = [
    (re.compile(r"SEA_SPEC"), "the private spec file"),
    (re.compile(r"\bspec\s*§", re.IGNORECASE), "a section of the private spec"),
    (re.compile(r"\bspec\s+section\b", re.IGNORECASE), "a section of the private spec"),
    (re.compile(r"shared/spec\b"), "the private spec directory"),
    (re.compile(r"\bissue\s*§", re.IGNORECASE), "a section of an issue's text"),
    (re.compile(r"\bseed's\b", re.IGNORECASE), "the seed code"),
    (re.compile(r"\bseed\s+(?:code|repo|repository|project|scripts?)\b", re.IGNORECASE), "the seed code"),
    (re.compile(r"\bthe\s+seed\s+(?:did|does|used|uses|needed|needs|pruned|trained|ships|shipped|"
                r"wrote|writes|computed|computes|saved|saves|had|has)\b", re.IGNORECASE), "the seed code"),
]

#: ``§3``, ``§3.4``, ``§4.1–4.2`` (en dash or hyphen), ``§1.2 (a)``.
SECTION_REF = re.compile(r"§\s*(\d+(?:\.\d+)?)(?:\s*[–-]\s*(\d+(?:\.\d+)?))?")
HEADING = re.compile(r"^(#{2,4})\s+(\d+(?:\.\d+)*)\.?\s+\S")


def project_text_files():
    """Every text file of the project the checks cover, as paths relative to the repository root."""
    found = [ROOT / name for name in SCANNED_FILES if (ROOT / name).is_file()]
    for top in SCANNED_DIRS:
        base = ROOT / top
        if not base.is_dir() or base.is_symlink():
            continue
        for dirpath, dirnames, filenames in os.walk(base):     # followlinks=False: no link is walked
            dirnames[:] = [d for d in dirnames if d != "__pycache__" and not d.startswith(".")]
            for name in filenames:
                path = Path(dirpath) / name
                if path.suffix in TEXT_SUFFIXES and not path.is_symlink() and path.resolve() != SELF:
                    found.append(path)
    return sorted(found)


def forbidden_references(text):
    """``[(line number, what it refers to, line)]`` for each reference to an unopenable document."""
    hits = []
    for number, line in enumerate(text.splitlines(), 1):
        for pattern, what in FORBIDDEN:
            if pattern.search(line):
                hits.append((number, what, line.strip()))
    return hits


def protocol_sections(text):
    """Heading numbers of docs/PROTOCOL.md: ``{"1", "1.1", ...}``."""
    return {m.group(2) for m in map(HEADING.match, text.splitlines()) if m}


def cited_sections(text, own=False):
    """``[(line number, section)]`` cited as ``PROTOCOL.md §X`` (every ``§X`` on such a line).

    With ``own=True`` (the text *is* docs/PROTOCOL.md) every ``§X`` counts.
    """
    cited = []
    for number, line in enumerate(text.splitlines(), 1):
        if not own and "PROTOCOL.md" not in line:
            continue
        for m in SECTION_REF.finditer(line):
            cited += [(number, s) for s in m.groups() if s]
    return cited


def unknown_citations(text, sections, own=False):
    """Cited sections that are not headings; ``4`` is satisfied by ``## 4.``, ``4.1`` by ``### 4.1``."""
    return [(number, s) for number, s in cited_sections(text, own) if s not in sections]


def read(path):
    return path.read_text(encoding="utf-8", errors="replace")


# --- negative controls: each checker catches what it is for ----------------------------------------

def test_checkers_catch_each_kind_of_mistake():
    bad = ('"""Framing (spec §1.3)."""\n# see SEA_SPEC §2\n# as the seed did\n'
           '# L1 for the seed\'s kernel\n# 1026 DFT (issue §9)\n')
    assert [n for n, _, _ in forbidden_references(bad)] == [1, 2, 3, 4, 5]
    # A random seed is not a reference.
    assert forbidden_references("seed: 20180216  # the seed and the pass fix the order\n") == []

    sections = protocol_sections("## 1. Teacher\n### 1.1 Architecture\n### 1.2 Front ends\n## 4. Down\n")
    assert sections == {"1", "1.1", "1.2", "4"}
    text = ("x (docs/PROTOCOL.md §1.1, §1.2 (a))\n"
            "y (docs/PROTOCOL.md §1.1–1.3)\n"
            "z §9.9 without the file name is not a citation\n"
            "w docs/PROTOCOL.md §4 and §7.2\n")
    assert unknown_citations(text, sections) == [(2, "1.3"), (4, "7.2")]
    assert unknown_citations("see §9.9 below\n", sections, own=True) == [(1, "9.9")]


# --- the repository -------------------------------------------------------------------------------

def test_protocol_has_numbered_unique_sections():
    text = read(PROTOCOL)
    numbers = [m.group(2) for m in map(HEADING.match, text.splitlines()) if m]
    assert len(numbers) == len(set(numbers)), "docs/PROTOCOL.md repeats a section number"
    # The sections the code leans on most (framing, distillation, protocols, departures) exist.
    assert {"1.3", "2.3", "3.1", "3.2", "3.4", "3.5", "4.1", "4.2", "8"} <= set(numbers)
    # Each subsection sits under its own top-level section.
    top = {n for n in numbers if "." not in n}
    assert all(n.split(".")[0] in top for n in numbers)


def test_no_file_cites_the_private_spec_or_the_seed():
    offenders = []
    for path in project_text_files():
        for number, what, line in forbidden_references(read(path)):
            offenders.append(f"{path.relative_to(ROOT)}:{number}: {what}: {line[:100]}")
    assert not offenders, ("cite docs/PROTOCOL.md §N.M (or 'the original SEA code') instead:\n"
                           + "\n".join(offenders))


def test_every_protocol_citation_exists():
    sections = protocol_sections(read(PROTOCOL))
    missing = []
    for path in project_text_files():
        own = path.resolve() == PROTOCOL.resolve()
        for number, section in unknown_citations(read(path), sections, own=own):
            missing.append(f"{path.relative_to(ROOT)}:{number}: §{section}")
    assert not missing, ("these cite a section docs/PROTOCOL.md does not have "
                         f"(it has {', '.join(sorted(sections, key=_key))}):\n" + "\n".join(missing))


def _key(section):
    return tuple(int(part) for part in section.split("."))


def test_protocol_names_its_sources():
    # The protocol page names the papers and repositories its numbers come from (titles wrap).
    text = " ".join(read(PROTOCOL).split())
    for source in ("github.com/marl/openl3", "github.com/ksangeeta2429/edgel3",
                   "github.com/ksangeeta2429/embedding-approx", "github.com/keunwoochoi/kapre",
                   "Specialized Embedding Approximation", "Look, Listen and Learn More",
                   "EdgeL3: Compressing L3-Net", "Look, Listen and Learn.\"", "Taxonomy for Urban Sound",
                   "ESC: Dataset", "SONYC-UST", "Determinantal Point Processes", "Adaptive Pooling Operators"):
        assert source in text, f"docs/PROTOCOL.md does not cite {source}"
