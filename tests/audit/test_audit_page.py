"""The broker's auditor page and read-only audit API, over real HTTP (TAX's broker
in this process), and in real headless Chromium driven by Playwright."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
from prov.model import ProvDocument

from audit.conftest import Story, govshare, schema
from integration.world import Broker, start_broker

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).parent.parent.parent / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def broker(story: Story) -> Iterator[Broker]:
    b = start_broker(story.world, "TAX")
    yield b
    b.close()


def test_the_page_is_public_but_holds_no_data(broker: Broker) -> None:
    r = broker.client.get("/audit")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "govshare audit" in r.text and "crypto.subtle.digest" in r.text
    csp = r.headers["content-security-policy"]
    assert "connect-src 'self'" in csp and "default-src 'none'" in csp
    assert "http://" not in r.text and "https://" not in r.text  # no CDN, no external asset
    assert not re.search("0x[0-9a-f]{40}", r.text)  # no record, hash or account in it


def test_fragments_need_an_auditor_or_admin_token(broker: Broker, story: Story) -> None:
    url = f"/audit/view?record_id={story.versions[0]}"
    assert broker.client.get(url).status_code == 401
    assert broker.client.get(url, headers=broker.auth("clerk")).status_code == 403
    for who in ("auditor", "admin"):
        r = broker.client.get(url, headers=broker.auth(who))
        assert r.status_code == 200, r.text
        assert "Trail verified: 5 of 5 receipts" in r.text and "<svg" in r.text


def test_lookup_by_hash_and_status(broker: Broker, story: Story) -> None:
    import hashlib

    h = hashlib.sha256(story.files[1].read_bytes()).hexdigest()
    r = broker.client.get(f"/audit/view?hash={h}", headers=broker.auth("auditor"))
    assert r.status_code == 200 and story.versions[1] in r.text and "v2 of 3" in r.text
    miss = broker.client.get(f"/audit/view?hash={'0' * 64}", headers=broker.auth("auditor"))
    assert "Not anchored" in miss.text
    bad = broker.client.get("/audit/view?hash=xyz", headers=broker.auth("auditor"))
    assert bad.status_code == 400
    st = broker.client.get("/audit/status", headers=broker.auth("auditor"))
    assert st.status_code == 200
    assert "All anchored receipts verified." in st.text and f"#{story.overdue}" in st.text


def readable(html: str) -> None:
    """A fragment reads as prose: no Python booleans, no "(s)" plurals, no header cell
    without a title, every table in a box that scrolls sideways."""
    text = re.sub(r"<[^>]+>", " ", html)
    assert not re.search(r"\b(True|False|None)\b", text), text
    assert not re.search(r"\w\((s|es|ies)\)", text), text
    assert not re.search(r"<th[^>]*>\s*</th>", html)
    assert html.count("<table") == html.count("<div class=scroll><table")


def test_fragments_read_as_prose(broker: Broker, story: Story) -> None:
    import hashlib

    auth = broker.auth("auditor")
    trail = broker.client.get(f"/audit/view?record_id={story.versions[0]}", headers=auth).text
    readable(trail)
    assert "3 accesses" in trail and "2 accesses" in trail  # the graph's boxes
    assert (
        "1 reminder, 1 escalation"
        in broker.client.get(f"/audit/view?record_id={story.versions[2]}", headers=auth).text
        or "reminder" not in trail
    )
    h = hashlib.sha256(story.files[1].read_bytes()).hexdigest()
    matches = broker.client.get(f"/audit/view?hash={h}", headers=auth).text
    readable(matches)
    assert "is 1 record." in matches
    readable(broker.client.get("/audit/status", headers=auth).text)


def test_trail_api_json_and_prov(broker: Broker, story: Story) -> None:
    r = broker.client.get(f"/v1/audit/trail/{story.versions[2]}", headers=broker.auth("auditor"))
    assert r.status_code == 200
    jsonschema.validate(r.json(), schema("audit-trail"))
    p = broker.client.get(
        f"/v1/audit/trail/{story.versions[2]}?format=prov", headers=broker.auth("auditor")
    )
    ProvDocument.deserialize(content=p.text, format="json")
    unknown = broker.client.get(f"/v1/audit/trail/0x{'12' * 32}", headers=broker.auth("auditor"))
    assert unknown.status_code == 404


def test_manifests_are_served_to_the_cli_which_need_not_trust_the_broker(
    broker: Broker, story: Story, tmp_path: Path
) -> None:
    batch = story.tax.ledger.access.get_receipt_batch("TAX", 1)
    r = broker.client.get(f"/v1/audit/manifests/{batch.manifest_cid}", headers=broker.auth("admin"))
    assert r.status_code == 200 and r.content.startswith(b'{"chain_id"')
    other = story.tax.ledger.records.get_record(story.versions[0]).cid  # a ciphertext: not served
    assert (
        broker.client.get(f"/v1/audit/manifests/{other}", headers=broker.auth("admin")).status_code
        == 404
    )
    auditor = tmp_path / "auditor"
    auditor.mkdir()
    shutil.copy(story.home / "deployment.json", auditor / "deployment.json")
    token = broker.tokens["auditor"]
    os.environ["GOVSHARE_AUDIT_TOKEN"] = token
    try:
        out = govshare(
            auditor, "audit", "receipts", "--dept", "TAX", "--manifests", broker.dept.url
        )
    finally:
        del os.environ["GOVSHARE_AUDIT_TOKEN"]
    assert out.exit_code == 0, out.output
    assert "All 5 receipt(s) verified." in out.stdout


@pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (make setup installs it as root)"
)
def test_the_page_in_chromium(broker: Broker, story: Story) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(broker.dept.url + "/audit")
            page.fill("#token", broker.tokens["auditor"])

            # by record id: the demo's certificate, its publisher, approval and access
            page.fill("#record", story.versions[0])
            page.click("#find-record")
            page.wait_for_selector("#trail")
            text = page.inner_text("#result")
            tax_broker = story.world["TAX"].broker.address
            assert f"TAX anchored record {story.versions[0]}" in text
            assert tax_broker[:12] in text  # the publishing account
            assert "approved request" in text.lower() or "APPROVED" in text
            assert (
                f"MARKET received version 1 from TAX under grant #{story.grants['MARKET']}" in text
            )
            assert "Trail verified" in page.inner_text("#verdict")
            assert page.locator("#graph rect").count() >= 3
            page.screenshot(path=str(ARTIFACTS / "audit-page-trail.png"), full_page=True)

            # by file: hashed in the browser, never uploaded
            sent: list[str] = []
            page.on("request", lambda r: sent.append(r.method + " " + r.url))
            page.set_input_files("#file", str(story.files[1]))
            page.click("#find-file")
            page.wait_for_selector("#matches")
            assert "v2 of 3" in page.inner_text("#result")
            assert all(s.startswith("GET ") for s in sent), sent
            page.click("#result a.rec")
            page.wait_for_selector(f"#trail[data-record='{story.versions[1]}']")

            # batches and overdue requests
            page.click("#refresh")
            page.wait_for_selector("#batch-status")
            status = page.inner_text("#status")
            assert "All anchored receipts verified." in status and f"#{story.overdue}" in status
            page.screenshot(path=str(ARTIFACTS / "audit-page-status.png"), full_page=True)

            # on a narrow window the page does not scroll sideways: long ids wrap and a
            # table still too wide scrolls inside its own box
            page.set_viewport_size({"width": 760, "height": 900})
            page.fill("#record", story.versions[0])
            page.click("#find-record")
            page.wait_for_selector(f"#trail[data-record='{story.versions[0]}']")
            fits = page.evaluate(
                """() => ({
                  page: document.documentElement.scrollWidth <= window.innerWidth,
                  boxed: [...document.querySelectorAll('table')].every(
                    (t) => t.parentElement.classList.contains('scroll')
                      && t.parentElement.getBoundingClientRect().right <= window.innerWidth),
                  emptyHeads: [...document.querySelectorAll('thead th')].filter(
                    (th) => !th.textContent.trim()).length,
                })"""
            )
            assert fits == {"page": True, "boxed": True, "emptyHeads": 0}, fits
            text = page.inner_text("#result")
            assert "3 accesses" in text or "2 accesses" in text
            assert not re.search(r"\b(True|False)\b|\w\((s|es|ies)\)", text), text
            page.screenshot(path=str(ARTIFACTS / "audit-page-narrow.png"), full_page=True)
            assert errors == []
        finally:
            browser.close()
    assert (ARTIFACTS / "audit-page-trail.png").stat().st_size > 10_000


@pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (make setup installs it as root)"
)
def test_the_html_report_in_chromium(story: Story, tmp_path: Path) -> None:
    """`audit report --format html`: words for yes/no, no empty header row, right
    plurals, and a page that fits a narrow window (its tables wrap or scroll)."""
    from playwright.sync_api import sync_playwright

    auditor = tmp_path / "auditor"
    auditor.mkdir()
    shutil.copy(story.home / "deployment.json", auditor / "deployment.json")
    out = tmp_path / "report.html"
    r = govshare(
        auditor, "audit", "report", "--since", "2000-01-01", "--until", "now",
        "--manifests", f"local:{story.home / 'depts' / 'TAX' / 'blobs'}",
        "--format", "html", "-o", str(out),
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 760, "height": 900})
            page.goto(out.as_uri())
            text = page.inner_text("body")
            assert "1 anomaly found." in text
            assert not re.search(r"\b(True|False)\b|\w\((s|es|ies)\)", text), text
            decisions = page.evaluate(
                """() => {
                  const h = [...document.querySelectorAll('h2')].find(
                    (e) => e.textContent === 'Decisions');
                  const t = h.nextElementSibling.querySelector('table');
                  const col = [...t.querySelectorAll('thead th')].findIndex(
                    (th) => th.textContent === 'deadline');
                  return [...t.querySelectorAll('tbody tr')].map(
                    (tr) => tr.children[col].textContent);
                }"""
            )
            assert decisions and set(decisions) <= {"on time", "late"}, decisions
            fits = page.evaluate(
                """() => ({
                  page: document.documentElement.scrollWidth <= window.innerWidth,
                  emptyHeads: [...document.querySelectorAll('th')].filter(
                    (th) => !th.textContent.trim()).length,
                  headerRows: [...document.querySelectorAll('thead tr')].filter(
                    (tr) => !tr.textContent.trim()).length,
                })"""
            )
            assert fits == {"page": True, "emptyHeads": 0, "headerRows": 0}, fits
            page.screenshot(path=str(ARTIFACTS / "audit-report-narrow.png"), full_page=True)
        finally:
            browser.close()


def test_a_wrong_token_says_so_in_the_page(broker: Broker, story: Story) -> None:
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (make setup installs it as root)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(broker.dept.url + "/audit")
            page.fill("#token", "gs_wrong")
            page.fill("#record", story.versions[0])
            page.click("#find-record")
            page.wait_for_selector("#verdict.bad")
            assert "token" in page.inner_text("#verdict").lower()
        finally:
            browser.close()
