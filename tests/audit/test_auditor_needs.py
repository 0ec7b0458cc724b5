"""What an auditor needs is said the same way everywhere, and exactly: the
deployment file and a chain node for documents and trails; for access receipts
also their manifests, from a Kubo node of the swarm, a broker with that broker's
auditor token, or a copy of the stores. Not "only the deployment file"."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from govshare.audit.errors import ManifestUnavailable
from govshare.audit.sources import ManifestSources
from govshare.cli.main import cli
from govshare.storage import compute_cid

ROOT = Path(__file__).resolve().parents[2]


def _help(*args: str) -> str:
    r = CliRunner().invoke(cli, [*args, "--help"], terminal_width=200)
    assert r.exit_code == 0, r.output
    return re.sub(r"\s+", " ", r.output)


def test_audit_help_names_what_receipts_need() -> None:
    group = _help("audit")
    assert "from the chain alone" not in group
    assert "deployment file" in group and "chain node" in group
    assert "GOVSHARE_AUDIT_TOKEN" in group and "Kubo" in group and "--manifests" in group
    for cmd in ("receipts", "trail", "report"):
        assert "GOVSHARE_AUDIT_TOKEN" in _help("audit", cmd), cmd


def test_a_missing_manifest_says_where_one_can_come_from() -> None:
    cid = str(compute_cid(b"a manifest no source holds\n"))
    with pytest.raises(ManifestUnavailable) as err:
        ManifestSources([]).fetch(cid)
    msg = str(err.value)
    assert "--manifests" in msg and "Kubo" in msg and "GOVSHARE_AUDIT_TOKEN" in msg
    assert "GOVSHARE_AUDIT_TOKEN" in ManifestUnavailable.remedy


@pytest.mark.parametrize("doc", ["README.md", "docs/audit.md"])
def test_the_docs_do_not_oversell_the_deployment_file(doc: str) -> None:
    text = re.sub(r"\s+#?\s*", " ", (ROOT / doc).read_text(encoding="utf-8"))
    assert "needs only the deployment file" not in text
    assert "GOVSHARE_AUDIT_TOKEN" in text and "manifests" in text
