"""The HTML report reads as prose for a person: yes/no values as words ("on time",
"late"), counts with their noun in the right number, a summary without an empty
header row, and tables that fit the page (long ids wrap; a table still too wide
scrolls in its own box). Rendered from a report dict, no chain needed; the
browser checks are in test_audit_page.py."""

from __future__ import annotations

import re
from typing import Any

import pytest

from govshare.audit.report import render_report_html
from govshare.util import plural

RID = "0x" + "ab" * 32
TX = "0x" + "cd" * 32
ADMIN = "0xe3c919EAaa9b8438BD5aF454eebb65f7f029D453"


def report(*, anomalies: int = 1, late: tuple[bool, ...] = (False, True)) -> dict[str, Any]:
    at = "2026-12-05T16:33:51Z"
    return {
        "department": None,
        "since_iso": "2026-12-01T00:00:00Z",
        "until_iso": "2026-12-06T00:00:00Z",
        "chain_id": 31337,
        "generated_at_iso": at,
        "summary": {
            "records_published": 1,
            "requests": 2,
            "approved": 1,
            "denied": 1,
            "revoked": 0,
            "accesses": 1,
            "anomalies": anomalies,
            "decision_delay_seconds": {"mean": 1.5, "median": 1.5, "max": 2},
        },
        "anomalies": [
            {"kind": "overdue", "code": "request.overdue", "message": f"Request #{i} is late."}
            for i in range(anomalies)
        ],
        "published": [
            {
                "at_iso": at,
                "department": "TAX",
                "category": "tax-clearance",
                "record_id": RID,
                "tx_hash": TX,
            }
        ],
        "requests": [],
        "decisions": [
            {
                "at_iso": at,
                "id": i + 1,
                "kind": "approved",
                "by": ADMIN,
                "delay_seconds": 1,
                "after_deadline": was_late,
            }
            for i, was_late in enumerate(late)
        ],
        "revocations": [],
        "accesses_per_grant": [],
    }


def cells(page: str, title: str) -> list[str]:
    """The texts of one column of the table under the heading ``title``."""
    section = page.split(f"<h2>{title}</h2>", 1)[1].split("<h2>", 1)[0]
    heads = re.findall(r"<th[^>]*>(.*?)</th>", section.split("</thead>", 1)[0])
    rows = re.findall(r"<tr>(.*?)</tr>", section.split("<tbody>", 1)[1])
    return [heads] + [re.findall(r"<td[^>]*>(.*?)</td>", r) for r in rows]  # type: ignore[list-item]


def test_booleans_are_words() -> None:
    page = render_report_html(report())
    table = cells(page, "Decisions")
    col = table[0].index("deadline")
    assert [row[col] for row in table[1:]] == ["on time", "late"]
    assert not re.search(r">\s*(True|False)\s*<", page)


def test_the_summary_has_no_empty_header_row() -> None:
    page = render_report_html(report())
    assert not re.search(r"<th[^>]*>\s*</th>", page)
    summary = page.split("<h2>Summary</h2>", 1)[1].split("<h2>", 1)[0]
    assert "<thead>" not in summary
    assert '<th scope="row">records published</th><td>1</td>' in summary


@pytest.mark.parametrize(("n", "said"), [(1, "1 anomaly found."), (2, "2 anomalies found.")])
def test_counts_take_the_right_number(n: int, said: str) -> None:
    page = render_report_html(report(anomalies=n))
    assert said in page
    assert not re.search(r"\w\((s|es|ies)\)", page)


def test_tables_fit_the_page() -> None:
    page = render_report_html(report())
    tables = page.count("<table")
    # every table but the summary's sits in a box that scrolls sideways
    assert page.count('<div class="scroll"><table>') == tables - 1
    assert ".scroll{overflow-x:auto" in page
    # long identifiers wrap instead of widening their column
    assert f"<td class=id>{RID}</td>" in page and f"<td class=id>{ADMIN}</td>" in page
    assert "td code,td.id{word-break:break-all}" in page


def test_plural() -> None:
    assert plural(1, "receipt") == "1 receipt" and plural(0, "receipt") == "0 receipts"
    assert plural(2, "access", "accesses") == "2 accesses"
    assert plural(1, "anomaly", "anomalies") == "1 anomaly"
