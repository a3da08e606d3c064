"""Shared pytest fixtures: start the project's test bed (`testbed up --dir DIR`: a real Kubernetes control
plane and the Azure emulator) as a subprocess and hand its files (kubeconfig, ca.pem, azure.env) to the tests."""
import os
import pathlib
import subprocess
import tempfile
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _bin(name: str, env_var: str) -> pathlib.Path:
    explicit = os.environ.get(env_var)
    if explicit:
        return pathlib.Path(explicit)
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return target / "debug" / name


def read_env_file(path: pathlib.Path) -> dict:
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            env[key] = value
    return env


class Testbed:
    def __init__(self, proc, directory: pathlib.Path):
        self.proc = proc
        self.dir = directory
        self.kubeconfig = directory / "kubeconfig"
        self.ca = directory / "ca.pem"
        env_file = directory / "azure.env"
        self.azure_env = read_env_file(env_file) if env_file.exists() else {}

    def env(self, **extra) -> dict:
        """The process environment a client gets after `set -a; . DIR/azure.env`."""
        merged = dict(os.environ)
        merged.update(self.azure_env)
        merged["KUBECONFIG"] = str(self.kubeconfig)
        merged.update(extra)
        return merged


def start_testbed(subcommand: str = "up"):
    binary = _bin("testbed", "TESTBED_BIN")
    if not binary.exists():
        pytest.fail(f"{binary} not found: build it with `cargo build -p testbed` (cargo xtask test does)")
    directory = pathlib.Path(tempfile.mkdtemp(prefix="testbed-"))
    proc = subprocess.Popen(
        [str(binary), subcommand, "--dir", str(directory)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    # Starting takes seconds; building the control plane first (when `cargo xtask test` has not) minutes.
    deadline = time.time() + 1200
    seen = []
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if "ready" in line:
            return Testbed(proc, directory)
    proc.kill()
    pytest.fail("testbed did not become ready:\n" + "".join(seen))


def stop(tb: Testbed):
    tb.proc.terminate()
    try:
        tb.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        tb.proc.kill()


@pytest.fixture(scope="session")
def testbed():
    tb = start_testbed("up")
    yield tb
    stop(tb)


@pytest.fixture(scope="session")
def operator_bin() -> pathlib.Path:
    binary = _bin("aoai-operator", "AOAI_OPERATOR_BIN")
    if not binary.exists():
        pytest.fail(f"{binary} not found: build it with `cargo build` (cargo xtask test does)")
    return binary
