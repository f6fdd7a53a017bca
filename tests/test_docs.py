"""Every citation of the model's reference in the code names something docs/model.md has.

The code cites the reference in a few forms: a numbered section
(``docs/model.md 1.3``, ``docs/model.md section 3``), a row of section 3
(``section 3, "KSM merge" row``, ``section 3's dirty-log row``, ``section 3,
THP rows``), a named part (``docs/model.md's "key oracles"``), and the ids of
fault-path steps, ordering rules and key oracles (``F6``, ``R4``, ``O4``), with
or without the file name in front. Older code cites the same things under
the reference's former name (``OLD_NAME``); those citations are checked
against docs/model.md as if they were already rewritten, so this test means
the same before and after the rewrite.

docs/model.md defines a section by a numbered heading (``### 1.3 ...``), a row
of section N by a heading numbered N.M whose title holds the row's name, an id
by a heading or a first table cell that starts with it, in its home section
(F in 1.2, R in 2, O in 4), and a named part by a heading holding the name.
"""

from __future__ import annotations

import re
from pathlib import Path

import attrs
import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "model.md"

#: where citations are looked for: the code's packages, and the prose around it
CODE_DIRS = ("mmu", "actors", "scenarios", "mmurace")
PROSE = ("README.md", "ARCHITECTURE.md")

#: the name citations used before they were rewritten to docs/model.md (spelt so
#: that rewriting every occurrence in the tree leaves this test meaning the same)
OLD_NAME = "KERNEL" + ".md"
#: the names a citation of the reference starts with
TOKEN = re.compile(r"docs/model\.md|" + re.escape(OLD_NAME))
#: the section each kind of id is defined in
ID_HOMES = {"F": "1.2", "R": "2", "O": "4"}
_ID = r"[FRO]\d+b?"

_NAMED = re.compile(r"""'s\ "(?P<name>[^"]+)\"""", re.X)
_REF = re.compile(
    rf"""section\ (?P<section>\d+(?:\.\d+)*)
           (?:'s\ (?P<own_row>[A-Za-z][\w-]*(?:\ [A-Za-z][\w-]*)?)\ (?P<own_kind>rows?)\b)?
       | (?P<number>\d+\.\d+)
       | (?P<id>{_ID})\b""",
    re.X,
)
_ROW = re.compile(
    r""""(?P<quoted>[^"]+)"(?:\ (?P<quoted_kind>rows?)\b)?
      | (?P<bare>[A-Za-z][\w-]*(?:\ [A-Za-z][\w-]*)?)\ (?P<bare_kind>rows?)\b""",
    re.X,
)
_SEP = re.compile(r",\ |\ and\ ")
#: a bare id anywhere, or a range of them (``F2-F3``)
_BARE_ID = re.compile(rf"\b(?P<first>{_ID})(?:-(?P<last>{_ID}))?\b")
_HEADING = re.compile(r"^(?P<hashes>#{2,4})\s+(?P<title>.+?)\s*$")
_NUMBER = re.compile(r"^(?P<number>\d+(?:\.\d+)*)\.?\s")
_TABLE_ID = re.compile(rf"^\|\s*(?P<id>{_ID})\s*\|")
_TITLE_ID = re.compile(rf"^(?P<id>{_ID})\b")


@attrs.frozen
class Ref:
    """One thing a citation names: ``kind`` is section, row, id or named."""

    kind: str
    name: str
    section: str = ""
    plural: bool = False


@attrs.frozen
class Citation:
    """Where a citation was found, what it says, and what it names."""

    where: str
    text: str
    refs: tuple[Ref, ...]


@attrs.frozen
class Doc:
    """What docs/model.md defines."""

    sections: dict[str, str]  # number -> heading title
    ids: dict[str, str]  # id -> the section it is defined in
    titles: tuple[str, ...]  # every heading title

    @classmethod
    def parse(cls, text: str) -> Doc:
        sections: dict[str, str] = {}
        ids: dict[str, str] = {}
        titles: list[str] = []
        current = ""
        for line in text.splitlines():
            heading = _HEADING.match(line)
            if heading:
                title = heading["title"]
                titles.append(title)
                number = _NUMBER.match(title)
                if number:
                    current = number["number"]
                    sections[current] = title[number.end() :]
                found = _TITLE_ID.match(title)
            else:
                found = _TABLE_ID.match(line)
            if found:
                ids.setdefault(found["id"], current)
        return cls(sections, ids, tuple(titles))

    def rows(self, section: str) -> list[str]:
        """The titles of section ``section``'s numbered subsections (its rows)."""
        return [
            title
            for number, title in self.sections.items()
            if number.startswith(section + ".") and number.count(".") == section.count(".") + 1
        ]

    def problem(self, ref: Ref) -> str | None:
        """Say why ``ref`` names nothing here, or None if it does."""
        if ref.kind == "section":
            return None if ref.name in self.sections else f"no section {ref.name}"
        if ref.kind == "row":
            word = re.compile(rf"(?<![\w-]){re.escape(ref.name)}(?![\w-])", re.I)
            hits = [title for title in self.rows(ref.section) if word.search(title)]
            wanted = 2 if ref.plural else 1
            if len(hits) < wanted:
                return f"section {ref.section} has {len(hits)} row(s) named {ref.name!r}, wants {wanted}"
            return None
        if ref.kind == "id":
            home = ID_HOMES[ref.name[0]]
            where = self.ids.get(ref.name)
            if where is None:
                return f"{ref.name} is not defined"
            if where != home and not where.startswith(home + "."):
                return f"{ref.name} is defined in section {where}, not in its home section {home}"
            return None
        if ref.kind == "named":
            found = any(ref.name.lower() in title.lower() for title in self.titles)
            return None if found else f"no heading holds {ref.name!r}"
        raise AssertionError(f"unknown ref kind {ref.kind!r}")


def _ids(first: str, last: str | None) -> list[str]:
    """``F2`` alone, or every id of a range ``F4-F8``."""
    if last is None or last[0] != first[0] or not first[1:].isdigit() or not last[1:].isdigit():
        return [first] + ([last] if last else [])
    return [f"{first[0]}{n}" for n in range(int(first[1:]), int(last[1:]) + 1)]


def parse_citation(after: str) -> tuple[tuple[Ref, ...], int]:
    """The refs of the citation whose text after the file name is ``after``
    (none if it cannot be read), and how much of ``after`` they span."""
    named = _NAMED.match(after)
    if named:
        return (Ref("named", named["name"]),), named.end()
    if not after.startswith(" "):
        return (), 0
    refs: list[Ref] = []
    pos = 1
    while True:
        ref = _REF.match(after, pos)
        if ref is None:
            break
        pos = ref.end()
        if ref["section"]:
            section = ref["section"]
            refs.append(Ref("section", section))
            if ref["own_row"]:
                refs.append(Ref("row", ref["own_row"], section, ref["own_kind"] == "rows"))
            while (sep := _SEP.match(after, pos)) and (row := _ROW.match(after, sep.end())):
                name = row["quoted"] or row["bare"]
                kind = row["quoted_kind"] or row["bare_kind"]
                refs.append(Ref("row", name, section, kind == "rows"))
                pos = row.end()
        elif ref["number"]:
            refs.append(Ref("section", ref["number"]))
        else:
            refs.append(Ref("id", ref["id"]))
        sep = _SEP.match(after, pos)
        if sep is None or not _REF.match(after, sep.end()):
            break
        pos = sep.end()
    return tuple(refs), pos if refs else 0


def _flatten(text: str, python: bool) -> str:
    """One line of prose: comment markers gone, whitespace collapsed."""
    if python:
        text = "\n".join(re.sub(r"^\s*#+", "", line) for line in text.splitlines())
    return re.sub(r"\s+", " ", text)


def citations(text: str, where: str, *, python: bool) -> list[Citation]:
    """Every citation in ``text``: those after the file name, then bare ids."""
    flat = _flatten(text, python)
    found = []
    read: list[range] = []  # spans the citations after a file name cover
    for token in TOKEN.finditer(flat):
        refs, length = parse_citation(flat[token.end() : token.end() + 200])
        end = token.end() + length
        found.append(Citation(where, flat[token.start() : max(end, token.end() + 6)], refs))
        read.append(range(token.start(), end))
    for bare in _BARE_ID.finditer(flat):
        if not any(bare.start() in span for span in read):
            refs = tuple(Ref("id", i) for i in _ids(bare["first"], bare["last"]))
            found.append(Citation(where, bare.group(), refs))
    return found


def code_citations() -> list[Citation]:
    """Every citation in the code and the prose around it."""
    found = []
    for top in CODE_DIRS:
        for path in sorted((ROOT / top).rglob("*.py")):
            found += citations(path.read_text(), str(path.relative_to(ROOT)), python=True)
    docs = sorted(p for p in (ROOT / "docs").glob("*.md") if p != DOC)
    for path in [ROOT / name for name in PROSE] + docs:
        found += citations(path.read_text(), str(path.relative_to(ROOT)), python=False)
    return found


def unresolved(found: list[Citation], doc: Doc) -> list[str]:
    """One line per citation that names nothing in ``doc``, or that cannot be read."""
    bad = []
    for citation in found:
        if not citation.refs:
            bad.append(f"{citation.where}: cannot read the citation {citation.text!r}")
        for ref in citation.refs:
            problem = doc.problem(ref)
            if problem is not None:
                bad.append(f"{citation.where}: {citation.text!r}: {problem}")
    return bad


@pytest.fixture(scope="module")
def doc() -> Doc:
    return Doc.parse(DOC.read_text())


def test_every_citation_in_the_code_resolves(doc: Doc) -> None:
    found = code_citations()
    assert any(TOKEN.match(c.text) for c in found), "no citation of the reference found: is the scan broken?"
    assert unresolved(found, doc) == []


def test_the_reference_cites_no_other_reference() -> None:
    assert OLD_NAME not in DOC.read_text()


def test_the_reference_defines_every_id_it_promises(doc: Doc) -> None:
    """F0-F9, R1-R6 and O1-O5, each in its home section."""
    wanted = [f"F{n}" for n in range(10)] + [f"R{n}" for n in range(1, 7)] + [f"O{n}" for n in range(1, 6)]
    assert [problem for i in wanted if (problem := doc.problem(Ref("id", i)))] == []


@pytest.mark.parametrize(
    ("text", "refs"),
    [
        ("docs/model.md 1.3): one", (Ref("section", "1.3"),)),
        ("docs/model.md section 3: the lock", (Ref("section", "3"),)),
        ("docs/model.md F6: x86", (Ref("id", "F6"),)),
        ("docs/model.md O4). next", (Ref("id", "O4"),)),
        (
            'docs/model.md section 3, "COW break (wp_page_copy)" row). A',
            (Ref("section", "3"), Ref("row", "COW break (wp_page_copy)", "3")),
        ),
        ('docs/model.md section 3, "mremap move"). KVM', (Ref("section", "3"), Ref("row", "mremap move", "3"))),
        ("docs/model.md section 3, THP rows. A", (Ref("section", "3"), Ref("row", "THP", "3", plural=True))),
        (
            "(docs/model.md 1.5, section 3's dirty-log row): with",
            (Ref("section", "1.5"), Ref("section", "3"), Ref("row", "dirty-log", "3")),
        ),
        ("""docs/model.md's "key oracles" do""", (Ref("named", "key oracles"),)),
        (f"{OLD_NAME}\n    # section 3, dirty-log row.", (Ref("section", "3"), Ref("row", "dirty-log", "3"))),
        ("breaks R1/R2 (F4-F6)", (Ref("id", "R1"), Ref("id", "R2"), Ref("id", "F4"), Ref("id", "F5"), Ref("id", "F6"))),
    ],
)
def test_each_form_the_code_uses_is_read(text: str, refs: tuple[Ref, ...]) -> None:
    found = citations(text, "example", python=True)
    assert tuple(ref for c in found for ref in c.refs) == refs


def test_a_bare_file_name_with_nothing_readable_after_it_is_a_failure(doc: Doc) -> None:
    found = citations("as docs/model.md says", "example", python=False)
    assert unresolved(found, doc) == ["example: cannot read the citation 'docs/model.md says'"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("see docs/model.md section 9.", "no section 9"),
        ("see docs/model.md 1.9.", "no section 1.9"),
        ("see docs/model.md F12.", "F12 is not defined"),
        ("see R7.", "R7 is not defined"),
        (f"see {OLD_NAME} O8.", "O8 is not defined"),
        ('see docs/model.md section 3, "swap-out" row.', "section 3 has 0 row(s) named 'swap-out', wants 1"),
        ("see docs/model.md section 3's hugetlbfs row.", "section 3 has 0 row(s) named 'hugetlbfs', wants 1"),
        ("see docs/model.md section 3, KSM rows.", "section 3 has 1 row(s) named 'KSM', wants 2"),
        ('see docs/model.md\'s "secret oracles".', "no heading holds 'secret oracles'"),
    ],
)
def test_a_made_up_citation_fails(doc: Doc, text: str, problem: str) -> None:
    bad = unresolved(citations(text, "example", python=False), doc)
    assert len(bad) == 1 and bad[0].endswith(problem), bad


def test_an_id_outside_its_home_section_does_not_count() -> None:
    """An id mentioned in passing elsewhere is not a definition."""
    doc = Doc.parse("## 1. One\n### 1.2 Fault path\n| F1 | x |\n## 4. Oracles\n| R1 | in the wrong place |\n")
    assert doc.problem(Ref("id", "F1")) is None
    assert doc.problem(Ref("id", "R1")) == "R1 is defined in section 4, not in its home section 2"
