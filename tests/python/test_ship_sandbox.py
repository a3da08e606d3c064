"""`cargo xtask sandbox --until-ready`: the newcomer's one command converges every example, and prints
each one's endpoint and Key Vault reference."""
import os
import pathlib
import re
import signal
import subprocess
import tempfile

import yaml

from conftest import read_env_file

ROOT = pathlib.Path(__file__).resolve().parents[2]


def examples():
    found = []
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] in ("AIAccount", "ModelDeployment"):
                meta = doc["metadata"]
                name = f"{meta['namespace']}/{meta['name']}" if "namespace" in meta else meta["name"]
                found.append((doc["kind"], name, doc))
    return found


def test_examples_cover_the_issue():
    docs = [doc for kind, _, doc in examples() if kind == "ModelDeployment"]
    skus = {d["spec"]["sku"]["name"] for d in docs}
    assert "GlobalStandard" in skus and "GlobalBatch" in skus
    assert skus & {"ProvisionedManaged", "GlobalProvisionedManaged", "DataZoneProvisionedManaged"}
    models = {(d["spec"]["model"].get("format", "OpenAI"), d["spec"]["model"]["name"]) for d in docs}
    assert ("OpenAI", "gpt-4o-mini") in models
    assert any(fmt != "OpenAI" for fmt, _ in models), "a non-OpenAI Foundry model"
    assert any(".ft-" in name for _, name in models), "a fine-tuned model"
    assert [kind for kind, _, _ in examples()].count("AIAccount") == 1


def test_sandbox_until_ready():
    directory = pathlib.Path(tempfile.mkdtemp(prefix="sandbox-"))
    proc = subprocess.Popen(
        ["cargo", "xtask", "sandbox", "--until-ready", "--timeout", "150", "--dir", str(directory)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # so a timeout can stop the sandbox and everything it started
    )
    try:
        output, _ = proc.communicate(timeout=400)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        raise AssertionError("cargo xtask sandbox --until-ready did not finish:\n" + output[-6000:])
    assert proc.returncode == 0, output[-6000:]

    azure_env = read_env_file(directory / "azure.env")
    vault = azure_env["AZURE_KEY_VAULT_URI"].rstrip("/")
    ready = {}
    for line in output.splitlines():
        match = re.match(r"^READY (\S+) (\S+) endpoint=(\S*)(?: deployment=(\S+))? keyVaultSecret=(\S*)$", line)
        if match:
            kind, name, endpoint, deployment, secret = match.groups()
            ready[(kind, name)] = (endpoint, deployment, secret)
    expected = {(kind, name) for kind, name, _ in examples()}
    assert set(ready) == expected, output[-6000:]
    for (kind, name), (endpoint, deployment, secret) in ready.items():
        assert endpoint.startswith("https://"), (kind, name, endpoint)
        # The Key Vault reference points into the sandbox's vault: <vault>/secrets/<name>/<version>.
        assert re.match(re.escape(vault) + r"/secrets/[A-Za-z0-9-]+/[0-9a-f]+$", secret), (kind, name, secret)
        if kind == "ModelDeployment":
            assert deployment, (kind, name)
    # Every deployment points at the same account key.
    assert len({secret for _, _, secret in ready.values()}) == 1
    assert f"KUBECONFIG={directory / 'kubeconfig'}" in output
    # The sandbox stopped what it started.
    assert "testbed ready" in output


def test_sandbox_ml_examples_until_ready():
    """examples/ml (an AIWorkspace, a managed-compute and a serverless ModelDeployment) converge in
    the sandbox; each endpoint's key has its own Key Vault secret."""
    directory = pathlib.Path(tempfile.mkdtemp(prefix="sandbox-ml-"))
    proc = subprocess.Popen(
        ["cargo", "xtask", "sandbox", "--until-ready", "--timeout", "150", "--dir", str(directory),
         "--examples", str(ROOT / "examples" / "ml")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=400)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        raise AssertionError("the sandbox did not finish:\n" + output[-6000:])
    assert proc.returncode == 0, output[-6000:]
    vault = read_env_file(directory / "azure.env")["AZURE_KEY_VAULT_URI"].rstrip("/")
    found = re.findall(r"^READY ModelDeployment (\S+) endpoint=(\S+)(?: deployment=\S+)? keyVaultSecret=(\S+)$",
                       output, re.M)
    ready = {name: (endpoint, secret) for name, endpoint, secret in found}
    docs = [doc for path in sorted((ROOT / "examples" / "ml").glob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text()) if doc and doc["kind"] == "ModelDeployment"]
    assert {f"{d['metadata']['namespace']}/{d['metadata']['name']}" for d in docs} == set(ready), output[-6000:]
    assert {"managedCompute", "serverless"} <= {k for d in docs for k in d["spec"]}
    for name, (endpoint, secret) in ready.items():
        assert endpoint.startswith("https://"), (name, endpoint)
        assert secret.startswith(vault + "/secrets/"), (name, secret)
    assert len({secret for _, secret in ready.values()}) == len(ready), "one secret per endpoint"


def processes_mentioning(text: str) -> list:
    found = []
    for proc in pathlib.Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                environ = (proc / "environ").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            # The test bed has DIR on its command line; the operator has KUBECONFIG=DIR/kubeconfig in its environment.
            if text in cmdline or f"KUBECONFIG={text}" in environ:
                found.append((int(proc.name), cmdline))
    return found


def test_sandbox_stops_cleanly_on_ctrl_c(tmp_path):
    directory = pathlib.Path(tempfile.mkdtemp(prefix="sandbox-int-"))
    examples_dir = tmp_path / "examples"
    examples_dir.mkdir()
    for name in ("00-namespace.yaml", "01-aiaccount.yaml", "10-chat-gpt-4o-mini.yaml"):
        (examples_dir / name).write_text((ROOT / "examples" / name).read_text())
    proc = subprocess.Popen(
        ["cargo", "xtask", "sandbox", "--dir", str(directory), "--examples", str(examples_dir)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    seen = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if "Ctrl-C stops it" in line:
                break
        else:
            raise AssertionError("the sandbox never became ready:\n" + "".join(seen)[-6000:])
        # The README's app-team commands, verbatim, against the running sandbox.
        readme = (ROOT / "README.md").read_text()
        block = next(b for b in re.findall(r"```sh\n(.*?)```", readme, re.S) if "kubectl wait" in b)
        env = {**os.environ, "KUBECONFIG": str(directory / "kubeconfig")}
        for command in [line for line in block.splitlines() if line.strip()]:
            done = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, (command, done.stdout, done.stderr)
            if "jsonpath" in command:
                assert done.stdout.startswith("https://") and "team-a.chat" in done.stdout, done.stdout
                assert "vaultUri" in done.stdout, done.stdout
        running = processes_mentioning(str(directory))
        assert any("testbed" in cmd for _, cmd in running), running
        assert any("aoai-operator" in cmd for _, cmd in running), running
        proc.send_signal(signal.SIGINT)  # what Ctrl-C delivers
        rest, _ = proc.communicate(timeout=60)
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    assert proc.returncode == 0, rest
    assert "sandbox stopped" in rest
    leftovers = [cmd for pid, cmd in processes_mentioning(str(directory)) if pid != os.getpid()]
    assert leftovers == [], leftovers
