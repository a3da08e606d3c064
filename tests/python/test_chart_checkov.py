"""checkov (PyPI checkov) on the chart's rendered manifests: no failed checks. The only skip is rendered by
the chart itself with its justification (CKV_K8S_43, image by digest, when no image.digest is set)."""
import json
import pathlib
import subprocess
import sys

import helm_python as helm
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "aoai-operator"
CHECKOV = pathlib.Path(sys.executable).parent / "checkov"
ALLOWED_SKIPS = {"CKV_K8S_43"}


def run_checkov(directory: pathlib.Path) -> list:
    # --skip-download: no call to Prisma Cloud (tests never leave the machine).
    proc = subprocess.run(
        [str(CHECKOV), "-d", str(directory), "--framework", "kubernetes", "--skip-download", "-o", "json", "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.stdout.strip(), proc.stderr
    report = json.loads(proc.stdout)
    return report if isinstance(report, list) else [report]


@pytest.mark.parametrize(
    "values",
    [
        {},
        {
            "metrics": {"serviceMonitor": {"enabled": True}},
            "networkPolicy": {"enabled": True},
            "podDisruptionBudget": {"enabled": True},
            "workloadIdentity": {"enabled": True, "clientId": "11111111-2222-3333-4444-555555555555"},
        },
        {"image": {"digest": "sha256:" + "b" * 64, "pullPolicy": "IfNotPresent"}, "workloadIdentity": {"enabled": False}},
    ],
    ids=["defaults", "everything-on", "digest"],
)
def test_checkov_has_no_failed_checks(values, tmp_path):
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values, name="aoai-operator", namespace="aoai-system")
    written = 0
    for path, text in manifests.items():
        if path.endswith(".yaml") and text.strip():
            (tmp_path / path.replace("/", "_")).write_text(text)
            written += 1
    assert written >= 4  # serviceaccount, rbac (4 objects), deployment, service
    reports = run_checkov(tmp_path)
    failed, passed, skipped = [], 0, []
    for report in reports:
        results = report.get("results", {})
        failed += [f"{c['check_id']} {c['check_name']} ({c['resource']})" for c in results.get("failed_checks", [])]
        passed += report.get("summary", {}).get("passed", 0)
        skipped += [c["check_id"] for c in results.get("skipped_checks", [])]
    assert failed == [], "\n".join(failed)
    assert passed > 50
    assert set(skipped) <= ALLOWED_SKIPS
    if values.get("image", {}).get("digest"):
        assert skipped == []
