"""Argo CD health checks (deploy/argocd/aoai.dev/<Kind>/health.lua) run by Debian's Lua 5.1 against the
sample objects listed in each health_test.yaml (Argo CD's own layout for resource customizations)."""
import json
import os
import pathlib
import re
import shutil
import subprocess

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
ARGOCD = ROOT / "deploy" / "argocd"
KINDS = ["AIAccount", "ModelDeployment"]


def lua_literal(value) -> str:
    """A Lua table constructor for a JSON-like value (how Argo CD hands the object to the script)."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid Lua 5.1 escapes for these samples
    if isinstance(value, list):
        return "{" + ", ".join(lua_literal(v) for v in value) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"[{json.dumps(str(k))}] = {lua_literal(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


def run_health(kind: str, obj: dict, tmp_path: pathlib.Path):
    lua = shutil.which("lua5.1")
    if lua is None:
        pytest.fail("lua5.1 is not installed (apt-get install lua5.1; `cargo xtask test` installs it as root)")
    script = ARGOCD / "aoai.dev" / kind / "health.lua"
    runner = tmp_path / "runner.lua"
    runner.write_text(
        f"obj = {lua_literal(obj)}\n"
        f"local hs = dofile({json.dumps(str(script))})\n"
        'io.write(hs.status, "\\n", hs.message or "", "\\n")\n'
    )
    proc = subprocess.run([lua, str(runner)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    status, message = proc.stdout.split("\n", 1)
    return status, message.rstrip("\n")


def cases():
    for kind in KINDS:
        spec = yaml.safe_load((ARGOCD / "aoai.dev" / kind / "health_test.yaml").read_text())
        for test in spec["tests"]:
            yield pytest.param(kind, test, id=f"{kind}-{pathlib.Path(test['inputPath']).stem}")


@pytest.mark.parametrize("kind, test", list(cases()))
def test_health(kind, test, tmp_path):
    obj = yaml.safe_load((ARGOCD / "aoai.dev" / kind / test["inputPath"]).read_text())
    assert obj["kind"] == kind
    status, message = run_health(kind, obj, tmp_path)
    assert status == test["healthStatus"]["status"]
    assert message == test["healthStatus"]["message"]


def test_every_argocd_status_is_covered():
    for kind in KINDS:
        spec = yaml.safe_load((ARGOCD / "aoai.dev" / kind / "health_test.yaml").read_text())
        statuses = {t["healthStatus"]["status"] for t in spec["tests"]}
        assert {"Healthy", "Progressing", "Degraded"} <= statuses, kind
        for test in spec["tests"]:
            assert (ARGOCD / "aoai.dev" / kind / test["inputPath"]).is_file()


def test_argocd_cm_patch_embeds_the_tested_scripts():
    patch = yaml.safe_load((ARGOCD / "argocd-cm-patch.yaml").read_text())
    for kind in KINDS:
        embedded = patch["data"][f"resource.customizations.health.aoai.dev_{kind}"]
        assert embedded == (ARGOCD / "aoai.dev" / kind / "health.lua").read_text()


def test_readme_patch_command_installs_the_checks(testbed, tmp_path):
    """The README's `kubectl -n argocd patch configmap argocd-cm --patch-file ...`, against the emulator."""
    readme = (ROOT / "README.md").read_text()
    command = re.search(r"`(kubectl -n argocd patch configmap argocd-cm --patch-file \S+)`", readme).group(1)
    env = {**os.environ, "KUBECONFIG": str(testbed.kubeconfig)}
    cache = ["--cache-dir", str(tmp_path / "cache")]
    subprocess.run(["kubectl", *cache, "create", "namespace", "argocd"], env=env, check=True, capture_output=True, timeout=60)
    subprocess.run(["kubectl", *cache, "-n", "argocd", "create", "configmap", "argocd-cm", "--from-literal=url=https://argocd.example"],
                   env=env, check=True, capture_output=True, timeout=60)
    done = subprocess.run(["bash", "-c", command.replace("kubectl ", "kubectl --cache-dir " + str(tmp_path / "cache") + " ", 1)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    got = json.loads(subprocess.run(["kubectl", *cache, "-n", "argocd", "get", "configmap", "argocd-cm", "-o", "json"],
                                    env=env, check=True, capture_output=True, text=True, timeout=60).stdout)
    assert got["data"]["url"] == "https://argocd.example"  # merged, not replaced
    for kind in KINDS:
        assert got["data"][f"resource.customizations.health.aoai.dev_{kind}"] == (ARGOCD / "aoai.dev" / kind / "health.lua").read_text()
