"""Plain text laid out in columns is read column by column; other text is left alone.

Pure tests (no database): the layouts are built here with textwrap, the way pdftotext
-layout writes them (columns padded side by side, pages separated by form feeds).
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from ingest.loaders import load_file
from ingest.loaders.text_columns import in_column_order
from tests import doc_factory as make

SHARED_FR = Path(__file__).resolve().parents[2] / "shared" / "docs"
FR_TEXT = SHARED_FR / "federal-register-p1-3-cp1252.txt"

LEFT = (
    "The pump station was built in the spring of the year after the flood, when the "
    "council had finally agreed to pay for it. Its two engines run on diesel and can "
    "move the water of the whole lower valley within a single day. The keeper checks "
    "the valves every morning and writes the pressure into a book that nobody reads."
)
MIDDLE = (
    "Visitors often ask why the building has no windows on the river side. The answer "
    "is simple: the engineers wanted the walls to hold back the water if the dike ever "
    "broke again. The roof was added later and leaks in heavy rain, which the keeper "
    "catches in buckets that he empties into the drain beside the door."
)
RIGHT = (
    "In the autumn the station opens for a weekend and children may press the big red "
    "button that starts the second engine. The noise is tremendous and the floor shakes "
    "under their feet. Afterwards everyone drinks warm cider in the yard while the "
    "keeper tells the story of the night when the water came over the fields."
)


def wrapped(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width)


def side_by_side(columns: list[list[str]], *, width: int, gap: int = 6, indent: int = 4) -> str:
    """Columns of lines padded next to each other, as pdftotext -layout writes them."""
    rows = max(len(column) for column in columns)
    lines = []
    for row in range(rows):
        cells = [column[row] if row < len(column) else "" for column in columns]
        line = " " * indent + (" " * gap).join(cell.ljust(width) for cell in cells)
        lines.append(line.rstrip())
    return "\n".join(lines) + "\n"


def flat(text: str) -> str:
    return " ".join(text.split())


def write(tmp_path: Path, name: str, text: str) -> str:
    return load_file(make.write_text(tmp_path / name, text))[0].page_content


# --- Read in columns ------------------------------------------------------------------


def test_two_columns_are_read_column_by_column(tmp_path: Path) -> None:
    layout = side_by_side([wrapped(LEFT, 38), wrapped(MIDDLE, 38)], width=38)

    text = write(tmp_path, "two.txt", layout)

    assert flat(text) == flat(LEFT + " " + MIDDLE)


def test_three_columns_are_read_column_by_column(tmp_path: Path) -> None:
    layout = side_by_side([wrapped(LEFT, 30), wrapped(MIDDLE, 30), wrapped(RIGHT, 30)], width=30)

    text = write(tmp_path, "three.txt", layout)

    assert flat(text) == flat(f"{LEFT} {MIDDLE} {RIGHT}")


def test_pages_are_read_in_order_with_their_header_line_on_its_own(tmp_path: Path) -> None:
    header = "    Pump Station Chronicle / Issue 4 / Page {} / Spring edition of the valley"
    first = side_by_side([wrapped(LEFT, 30), wrapped(MIDDLE, 30)], width=30)
    second = side_by_side([wrapped(RIGHT, 30), wrapped(LEFT, 30)], width=30)
    layout = f"{header.format(1)}\n\n{first}\f{header.format(2)}\n\n{second}"

    text = write(tmp_path, "pages.txt", layout)

    assert flat(text) == flat(
        f"{header.format(1)} {LEFT} {MIDDLE} {header.format(2)} {RIGHT} {LEFT}"
    )


def test_blank_rows_from_another_columns_baseline_do_not_split_a_sentence(
    tmp_path: Path,
) -> None:
    # pdftotext puts a line whose baseline sits between two lines of the other column on
    # a row of its own, leaving a blank row in that column between two of its lines.
    left = wrapped(LEFT, 34)
    right = wrapped(RIGHT, 34)
    left[3:3] = [""]
    right[6:6] = [""]
    layout = side_by_side([left, right], width=34)
    assert any(line.strip() and not line[:38].strip() for line in layout.splitlines())

    text = write(tmp_path, "baselines.txt", layout)

    assert "\n\n" not in text
    assert flat(text) == flat(f"{LEFT} {RIGHT}")


def test_a_word_hyphenated_at_a_line_end_is_joined_when_the_text_spells_it_out(
    tmp_path: Path,
) -> None:
    left = [
        "The council proposed a new pump for",
        "the lower valley in the spring, and the",
        "keeper wrote down what the engineers",
        "told him about the valves and the",
        "diesel engines that would be pro-",
        "posed to the council at its next",
        "meeting in the town hall by the",
        "river, where the minutes are kept.",
        "The clerk used a well-",
        "known form and a hand-",
        "written note for the keeper.",
    ]
    right = [
        "Visitors often ask why the building",
        "has no windows on the river side, and",
        "the answer is that the engineers want",
        "ed the walls to hold back the water",
        "if the dike ever broke again, which",
        "it did twice in the last century when",
        "the snow melted early in the hills",
        "and the river rose over its banks.",
        "Nobody on the council still remembers",
        "who signed the order for the walls,",
        "but everyone knows the well-known form.",
    ]

    text = write(tmp_path, "hyphens.txt", side_by_side([left, right], width=38))

    assert "diesel engines that would be proposed\nto the council" in text
    assert "The clerk used a well-known\nform and a hand-\nwritten note" in text


def test_the_federal_register_sample_reads_in_whole_sentences() -> None:
    if not FR_TEXT.is_file():
        pytest.skip(f"{FR_TEXT} is absent")

    # Dashes end lines inside numbers ("737–" / "9"); the PDF's text has none there.
    text = re.sub(r"(?<=–) ", "", flat(load_file(FR_TEXT)[0].page_content))

    assert "DATES: The FAA must receive comments on this proposed AD by September 21, 2020." in (
        text
    )
    assert (
        "SUMMARY: The FAA proposes to supersede Airworthiness Directive (AD) 2018–23–51, "
        "which applies to all The Boeing Company Model 737–8 and 737–9 (737 MAX) airplanes."
    ) in text
    assert (
        "For information on the availability of this material at the FAA, call 206–231–3195."
    ) in text
    assert "The FAA proposes to this material" not in text


# --- Left alone -----------------------------------------------------------------------


PROSE = "\n\n".join(textwrap.fill(paragraph, 72) for paragraph in (LEFT, MIDDLE, RIGHT) * 3)

MARKDOWN = """# Pump station

The station   has two engines.  It was built after the flood.

| Engine | Fuel   | Power  |
|--------|--------|--------|
| North  | diesel | 400 kW |
| South  | diesel | 380 kW |

```python
def pressure(bar: float) -> float:      # the keeper's formula
    return bar * 14.5                   # psi, as the old gauges show
```

- keeper:   checks the valves
  - every morning
- council:  pays for repairs
"""

TABLE = """Engine room inventory, checked on 2024-03-01

Item                         Location           Quantity    Last checked
Diesel engine, north         Hall A             1           2024-02-28
Diesel engine, south         Hall A             1           2024-02-28
Spare valve, large           Store 2            4           2024-01-15
Spare valve, small           Store 2            12          2024-01-15
Pressure gauge               Control room       3           2024-02-01
Oil drum, 200 litres         Yard shed          6           2024-02-20
Rubber gasket set            Store 1            20          2023-12-11
Fire extinguisher            Hall A, Hall B     5           2024-01-02
Emergency lamp               Control room       2           2024-02-01
Ladder, aluminium            Yard shed          2           2023-11-30
"""

# Two wide text columns, but each row is an entry of its own (a glossary, a FAQ).
WIDE_TABLE = "\n".join(
    f"{term:<44}{meaning}"
    for term, meaning in [
        ("Pump station on the lower river bank", "Building that moves water out of the valley"),
        ("Keeper of the station and its log book", "Person who checks the valves every day"),
        ("Council of the valley and its members", "Body that pays for repairs and new parts"),
        ("Dike along the river from the old mill", "Wall of earth that holds back the water"),
        ("North engine in the main hall of it", "Diesel engine built in the year of flood"),
        ("South engine in the main hall of it", "Second diesel engine for the busy days"),
        ("Open weekend in the autumn for all", "Days when children may press the button"),
        ("Cider in the yard after the weekend", "Drink served warm while the keeper talks"),
        ("Flood of the year before the station", "Night when the water came over the fields"),
        ("Book of pressures kept by the keeper", "Record that nobody reads but him alone"),
    ]
)

CODE = '''"""Pump control."""

LIMITS = {
    "north": 400,        # kW, from the plate on the engine
    "south": 380,        # kW, the older engine
}


def start(engine: str, *, force: bool = False) -> None:
    if engine not in LIMITS and not force:      # unknown engines never start
        raise ValueError(engine)
    print("starting", engine)                   # the keeper listens for this
    print("started", engine)                    # and for this
'''

CSV = "\n".join(
    ["engine,fuel,power,notes"]
    + [f"engine {n},diesel,{300 + n},checked by the keeper on day {n}" for n in range(30)]
)


@pytest.mark.parametrize(
    "text",
    [
        PROSE,
        MARKDOWN,
        TABLE,
        WIDE_TABLE,
        CODE,
        CSV,
        # Too short to tell, though laid out in two columns.
        side_by_side([wrapped(LEFT, 38)[:4], wrapped(MIDDLE, 38)[:4]], width=38),
    ],
    ids=["prose", "markdown", "aligned-table", "wide-table", "code", "csv", "short-layout"],
)
def test_text_not_laid_out_in_columns_is_unchanged(text: str) -> None:
    assert in_column_order(text) == text


def test_an_aligned_table_in_a_text_file_keeps_its_rows(tmp_path: Path) -> None:
    text = write(tmp_path, "inventory.txt", TABLE)

    assert "Spare valve, large Store 2 4 2024-01-15" in text


def test_markdown_files_are_not_read_in_columns(tmp_path: Path) -> None:
    layout = side_by_side([wrapped(LEFT, 38), wrapped(MIDDLE, 38)], width=38)
    first_row = flat(layout.splitlines()[0])

    markdown = load_file(make.write_text(tmp_path / "layout.md", layout))[0].page_content

    assert flat(markdown.splitlines()[0]) == first_row
