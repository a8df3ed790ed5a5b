"""Every sourced site fact (tests/site_facts.yaml, docs/sites.md) against what site-agent produces.

Each fact runs one probe through the CLI only (wrapper header/render, endpoint render+validate,
pilot --dry-run --json on a fake compute node, profiles show), so the checks outlive internal
refactors. Facts the code gets wrong today are strict xfails: they fail loudly once fixed, and the
mark goes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

HERE = Path(__file__).resolve().parent
FACTS_FILE = HERE / "site_facts.yaml"
SITES_DOC = HERE.parent / "docs" / "sites.md"
STATUSES = {"agrees", "disagrees", "unconfirmed"}
PROBE_KINDS = {"header", "render", "endpoint", "pilot", "setup", "profile"}
EXPECT_KEYS = {
    "rc",
    "contains",
    "absent",
    "contains_any",
    "json",
    "json_has",
    "json_lacks",
    "pairs",
}
ACCOUNT = "m0000"
# a compute node's launcher and site-agent variables that must not leak in from the test run
SCRUB = ("SLURM_", "PALS_", "PMI_", "PBS_", "SITE_AGENT_", "http_proxy", "https_proxy", "no_proxy")
SCRUB_EXACT = {"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"}
CVMFS_REPOS = (
    "atlas.cern.ch",
    "atlas-condb.cern.ch",
    "atlas-nightlies.cern.ch",
    "sft.cern.ch",
    "unpacked.cern.ch",
)


def load_facts() -> list[dict[str, Any]]:
    """The table, one entry per (site, fact): `sites: [...]` entries are expanded."""
    raw = yaml.safe_load(FACTS_FILE.read_text())["facts"]
    facts = []
    for entry in raw:
        sites = entry.get("sites") or [entry.get("site")]
        for site in sites:
            fact = {k: v for k, v in entry.items() if k != "sites"}
            fact["site"] = site
            facts.append(fact)
    return facts


FACTS = load_facts()


def _param(fact: dict[str, Any]):
    marks = []
    if fact.get("status") == "disagrees":
        reason = f"docs/sites.md disagreement: {fact.get('disagreement', '')}"
        marks.append(pytest.mark.xfail(strict=True, reason=reason))
    return pytest.param(fact, id=f"{fact['site']}-{fact['id']}", marks=marks)


# ---------------------------------------------------------------- the table itself
def test_table_is_well_formed():
    seen = set()
    for fact in FACTS:
        key = (fact["site"], fact["id"])
        assert key not in seen, f"duplicate fact {key}"
        seen.add(key)
        assert fact["site"] in {"perlmutter", "polaris", "aurora", "frontier"}, key
        assert fact.get("fact"), f"{key}: no fact text"
        assert str(fact.get("source", "")).startswith("https://"), f"{key}: source is not a URL"
        assert fact.get("status") in STATUSES, f"{key}: status {fact.get('status')!r}"
        assert bool(fact.get("disagreement")) == (fact["status"] == "disagrees"), (
            f"{key}: a disagreement text goes with status disagrees, and only with it"
        )
        assert fact["probe"]["kind"] in PROBE_KINDS, f"{key}: probe kind"
        assert fact["expect"] and set(fact["expect"]) <= EXPECT_KEYS, f"{key}: expect keys"


def test_every_fact_is_in_the_document():
    """docs/sites.md names each fact by its id, and each source URL it cites is in the table."""
    doc = SITES_DOC.read_text()
    missing = sorted(
        {f"{f['site']}/{f['id']}" for f in FACTS if f"`{f['site']}/{f['id']}`" not in doc}
    )
    assert not missing, f"facts not in docs/sites.md: {missing}"
    unsourced = sorted({f["source"] for f in FACTS if f["source"] not in doc})
    assert not unsourced, f"sources not cited in docs/sites.md: {unsourced}"


def test_every_disagreement_is_listed():
    """Each xfail of the table appears in the document's disagreement list."""
    doc = SITES_DOC.read_text()
    section = doc.split("## Disagreements with the profiles", 1)[-1]
    missing = sorted(
        {
            f"{f['site']}/{f['id']}"
            for f in FACTS
            if f["status"] == "disagrees" and f"`{f['site']}/{f['id']}`" not in section
        }
    )
    assert not missing, f"disagreements missing from the list in docs/sites.md: {missing}"


# ---------------------------------------------------------------- probes through the CLI
class Probes:
    """Runs (and remembers) the CLI probes; one fake compute node for every pilot probe."""

    def __init__(self, root: Path):
        self.root = root
        self.cache: dict[str, Any] = {}
        self.gpu_roots = {name: self._gpu_tree(name) for name in ("nvidia", "amd", "intel", "none")}
        self.cvmfs = {"native": root / "cvmfs-native", "empty": root / "cvmfs-empty"}
        for repo in CVMFS_REPOS:
            (self.cvmfs["native"] / repo).mkdir(parents=True)
        self.cvmfs["empty"].mkdir()
        (root / "cvmfsexec").mkdir()
        (root / "home").mkdir()
        (root / "tmp").mkdir()

    def _gpu_tree(self, vendor: str) -> Path:
        base = self.root / f"gpus-{vendor}"
        if vendor == "nvidia":  # 4 x A100
            for i in range(4):
                (base / f"proc/driver/nvidia/gpus/0000:{i:02x}:00.0").mkdir(parents=True)
        elif vendor == "amd":  # 8 GCDs; KFD node 0 is the CPU (gpu_id 0)
            for i in range(9):
                node = base / f"sys/class/kfd/kfd/topology/nodes/{i}"
                node.mkdir(parents=True)
                (node / "gpu_id").write_text(f"{1000 + i if i else 0}\n")
        elif vendor == "intel":  # 6 x Max 1550, 2 tiles each
            for i in range(6):
                dev = base / f"sys/class/drm/card{i}/device"
                (dev / "tile0").mkdir(parents=True)
                (dev / "tile1").mkdir()
                (dev / "vendor").write_text("0x8086\n")
        base.mkdir(exist_ok=True)
        return base

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(SCRUB) and k not in SCRUB_EXACT
        }
        env |= {
            "HOME": str(self.root / "home"),
            "TMPDIR": str(self.root / "tmp"),
            "PYTHONUNBUFFERED": "1",
        }
        return env | (extra or {})

    def cli(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        key = json.dumps([args, env], sort_keys=True)
        if key not in self.cache:
            self.cache[key] = subprocess.run(
                [sys.executable, "-m", "siteagent", *args],
                capture_output=True,
                text=True,
                timeout=120,
                env=self.env(env),
                cwd=self.root,
            )
        return self.cache[key]

    def endpoint_dir(self, site: str) -> Path:
        out = self.root / "endpoints" / site
        if not out.exists():
            r = self.cli("endpoint", "render", "--site", site, "--out", str(out))
            assert r.returncode == 0, r.stderr
        return out

    def run(self, site: str, probe: dict[str, Any]) -> subprocess.CompletedProcess:
        kind = probe["kind"]
        config = json.dumps({"account": ACCOUNT} | probe.get("config", {}), sort_keys=True)
        if kind == "header":
            return self.cli("wrapper", "header", "--site", site, "--config", config)
        if kind == "render":
            return self.cli("wrapper", "render", "--site", site)
        if kind == "profile":
            return self.cli("profiles", "show", site, "--json")
        if kind == "endpoint":
            ep = str(self.endpoint_dir(site))
            return self.cli("endpoint", "validate", ep, "--config", config, "--show")
        if kind == "pilot":
            return self.pilot(site, probe, "--json")
        if kind == "setup":  # where a container's setup commands could run: both, as text
            with_container = json.dumps(
                {"account": ACCOUNT, "container": "docker://ghcr.io/x/y:1"}, sort_keys=True
            )
            ep = str(self.endpoint_dir(site))
            endpoint = self.cli("endpoint", "validate", ep, "--config", with_container, "--show")
            pilot_probe = {"gpus": "none", "cvmfs": "empty", "env": {"SLURM_LOCALID": "0"}}
            pilot_probe["args"] = ["--container", "docker://ghcr.io/x/y:1"]
            pilot = self.pilot(site, pilot_probe)
            return subprocess.CompletedProcess(
                args=["setup"],
                returncode=endpoint.returncode,
                stdout=endpoint.stdout + "\n" + pilot.stdout,
                stderr=endpoint.stderr + pilot.stderr,
            )
        raise AssertionError(f"unknown probe kind {kind}")

    def pilot(self, site: str, probe: dict[str, Any], *fmt: str) -> subprocess.CompletedProcess:
        env = {
            "SITE_AGENT_GPU_ROOT": str(self.gpu_roots[probe.get("gpus", "none")]),
            "SITE_AGENT_CVMFS_ROOT": str(self.cvmfs[probe.get("cvmfs", "empty")]),
            "SITE_AGENT_CVMFSEXEC_DIR": str(self.root / "cvmfsexec"),
        } | probe.get("env", {})
        args = [*probe.get("args", []), "--dry-run", *fmt, "--", "true"]
        return self.cli("pilot", "--site", site, *args, env=env)


@pytest.fixture(scope="module")
def probes(tmp_path_factory) -> Probes:
    return Probes(tmp_path_factory.mktemp("site-facts"))


# ---------------------------------------------------------------- checking one fact
def lookup(data: Any, path: str) -> Any:
    """`a.b.0.c` in nested dicts/lists; a `layers` list is addressed by layer name."""
    node = data
    for part in path.split("."):
        if isinstance(node, list) and node and isinstance(node[0], dict) and "name" in node[0]:
            by_name = {item["name"]: item for item in node}
            assert part in by_name, f"{path}: no layer {part!r} (have {sorted(by_name)})"
            node = by_name[part]
        elif isinstance(node, list):
            assert part.isdigit() and int(part) < len(node), f"{path}: no item {part} in {node}"
            node = node[int(part)]
        else:
            assert isinstance(node, dict) and part in node, f"{path}: no {part!r} in {node}"
            node = node[part]
    return node


def rank_pairs(wrapper: str, ranks: int, var: str) -> dict[str, str]:
    """GPU value -> cpu-bind set of the rank that gets it, for `ranks` ranks of one GPU each."""
    m = re.search(rf'\[ "\$ranks" -eq {ranks} \] && cpu_bind="list:([^"]+)"', wrapper)
    assert m, f"the wrapper has no cpu-bind list for {ranks} ranks per node"
    cpu_sets = m.group(1).split(":")
    pairs = {}
    for rank in range(ranks):
        line = re.search(rf"(?m)^\s*1:{rank}\)(.*);;$", wrapper)
        assert line, f"the wrapper has no binding for local rank {rank}"
        gpu = re.search(rf"\b{var}=(\S+)", line.group(1))
        assert gpu, f"local rank {rank} sets no {var}: {line.group(1)}"
        pairs[gpu.group(1)] = cpu_sets[rank]
    return pairs


def check(result: subprocess.CompletedProcess, fact: dict[str, Any]) -> None:
    expect, probe = fact["expect"], fact["probe"]
    where = f"{fact['site']}/{fact['id']}"
    want_rc = expect.get("rc", 0)
    assert result.returncode == want_rc, (
        f"{where}: exit {result.returncode}, want {want_rc}\n{result.stdout}\n{result.stderr}"
    )
    if want_rc != 0:
        assert result.stderr.strip(), f"{where}: a refusal must say why"
        return
    text = result.stdout
    for s in expect.get("contains", []):
        assert s in text, f"{where}: {s!r} not in\n{text}"
    for s in expect.get("absent", []):
        assert s not in text, f"{where}: {s!r} in\n{text}"
    for options in expect.get("contains_any", []):
        assert any(s in text for s in options), f"{where}: none of {options} in\n{text}"
    if {"json", "json_has", "json_lacks"} & set(expect):
        data = json.loads(text)
        for path, value in expect.get("json", {}).items():
            assert lookup(data, path) == value, f"{where}: {path} = {lookup(data, path)!r}"
        for path, items in expect.get("json_has", {}).items():
            got = lookup(data, path)
            for item in items:
                assert item in got, f"{where}: {item!r} not in {path} = {got!r}"
        for path, items in expect.get("json_lacks", {}).items():
            got = lookup(data, path)
            for item in items:
                assert item not in got, f"{where}: {item!r} in {path} = {got!r}"
    if "pairs" in expect:
        got = rank_pairs(text, probe["ranks"], probe["var"])
        assert got == expect["pairs"], f"{where}: GPU -> cpu-bind set {got}"


@pytest.mark.parametrize("fact", [_param(f) for f in FACTS])
def test_site_fact(fact, probes):
    check(probes.run(fact["site"], fact["probe"]), fact)
