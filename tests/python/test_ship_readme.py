"""README.md stays true: its commands, flags, values, files and snippets exist and work."""
import ast
import pathlib
import re
import subprocess

import helm_python as helm
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def code_blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", README, re.S)


def test_the_two_commands_come_first():
    first = code_blocks("sh")[0]
    commands = [line.split("#")[0].strip() for line in first.splitlines() if line.strip()]
    assert commands == ["cargo xtask sandbox", "cargo xtask test"]
    assert README.index("cargo xtask sandbox") < README.index("helm install")


def test_xtask_has_every_subcommand_the_readme_names():
    proc = subprocess.run(["cargo", "xtask", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    for sub in set(re.findall(r"cargo xtask (\w+)", README)):
        assert re.search(rf"^\s+{sub}\b", proc.stdout, re.M), sub
    proc = subprocess.run(["cargo", "xtask", "sandbox", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    for flag in ("--until-ready", "--timeout"):
        assert flag in proc.stdout


def test_helm_install_command_values_are_valid():
    install = re.search(r"helm install (\S+) (\S+) -n (\S+) --create-namespace \\\n\s+(.*)\n", README)
    assert install, "helm install command not found"
    release, chart, namespace, rest = install.groups()
    assert (ROOT / chart / "Chart.yaml").is_file()
    sets = dict(s.split("=", 1) for s in re.findall(r"--set (\S+)", rest))
    values = {}
    for key, value in sets.items():
        if value.startswith("$"):
            value = "11111111-2222-3333-4444-555555555555"  # what az identity show prints
        values = {**values, **helm.parse_set_string(f"{key}={value}")}
    with helm.Chart.load(ROOT / chart) as loaded:
        loaded.validate_schema(loaded.merge_values(values))
        manifests = loaded.render(values, name=release, namespace=namespace)
    sa = yaml.safe_load(manifests[f"{release}/templates/serviceaccount.yaml"])
    # The federated credential's subject in the README matches the ServiceAccount the chart creates.
    assert f"--subject system:serviceaccount:{namespace}:{sa['metadata']['name']}" in README
    assert sa["metadata"]["annotations"]["azure.workload.identity/client-id"] == values["workloadIdentity"]["clientId"]
    # Every value in the README's values table exists in values.yaml.
    defaults = yaml.safe_load((ROOT / chart / "values.yaml").read_text())
    section = README.split("## Install into a cluster", 1)[1].split("\n## ", 1)[0]
    cells = re.findall(r"^\| `([a-zA-Z.]+)`", section, re.M)
    assert len(cells) >= 5
    for cell in cells:
        node = defaults
        for part in cell.split("."):
            assert part in node, cell
            node = node[part]


def test_role_names_are_the_azure_built_in_roles():
    assert '--role "Cognitive Services Contributor"' in README
    assert '--role "Key Vault Secrets Officer"' in README


def test_python_snippet_is_valid_and_uses_the_configmap_keys():
    (snippet,) = code_blocks("python")
    ast.parse(snippet)
    assert "AzureOpenAI(" in snippet and "chat.completions.create" in snippet
    keys = set(re.findall(r'os.environ\["([A-Z_]+)"\]', snippet))
    # The operator writes these keys into the connection ConfigMap (src/reconcile/deployment.rs).
    source = (ROOT / "src").rglob("*.rs")
    text = "\n".join(p.read_text() for p in source)
    for key in keys:
        assert f'"{key}"' in text, key


def test_linked_files_exist():
    for link in re.findall(r"\]\(([^)#]+)\)", README):
        if not link.startswith("http"):
            assert (ROOT / link).exists(), link


def test_operator_flags_in_the_configuration_table_exist(operator_bin):
    proc = subprocess.run([str(operator_bin), "run", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    table = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    for flag in set(re.findall(r"`(--[a-z-]+)", table)):
        assert flag in proc.stdout, flag


def test_chart_arguments_are_accepted_by_the_operator(operator_bin):
    with helm.Chart.load(ROOT / "charts" / "aoai-operator") as chart:
        manifests = chart.render({}, name="aoai-operator", namespace="aoai-system")
    deployment = yaml.safe_load(manifests["aoai-operator/templates/deployment.yaml"])
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    proc = subprocess.run([str(operator_bin), "run", "--help"], capture_output=True, text=True, timeout=60)
    for arg in args[1:]:
        flag = arg.split("=", 1)[0]
        assert flag in proc.stdout, flag
