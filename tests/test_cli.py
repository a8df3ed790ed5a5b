"""The command line: thin, fast to start, one clear line per error."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

HEAVY = ("globus_compute", "globus_sdk", "parsl", "jsonschema", "rich", "yaml", "jinja2", "psutil")


def test_help_imports_nothing_heavy():
    code = (
        "import sys; from click.testing import CliRunner; from siteagent.cli import cli; "
        "r = CliRunner().invoke(cli, ['--help']); assert r.exit_code == 0, r.output; "
        f"print([m for m in sys.modules if m.split('.')[0] in {HEAVY!r}])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_version(run_cli):
    from siteagent import __version__

    r = run_cli("--version")
    assert r.returncode == 0 and __version__ in r.stdout


def test_profiles_list_json(run_cli):
    r = run_cli("profiles", "list", "--json")
    assert r.returncode == 0, r.stderr
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    assert {"local", "perlmutter", "polaris", "aurora", "frontier"} <= set(rows)
    assert rows["polaris"]["scheduler"] == "pbspro" and rows["polaris"]["error"] is None


def test_profiles_show_yaml_and_json(run_cli):
    r = run_cli("profiles", "show", "aurora")
    assert r.returncode == 0
    assert yaml.safe_load(r.stdout)["node"]["tiles_per_gpu"] == 2
    r = run_cli("profiles", "show", "aurora", "--json")
    assert json.loads(r.stdout)["launcher"] == "mpiexec"


def test_profiles_show_masks_proxy_password(run_cli, tmp_path):
    text = (
        "name: secret\nscheduler: local\nlauncher: none\nendpoint: {name: s}\n"
        "node: {cores: 1, gpus: 0}\nproxy: {http: 'http://alice:hunter2@proxy.example:3128'}\n"
    )
    (tmp_path / "secret.yaml").write_text(text)
    for args in (("secret.yaml",), ("secret.yaml", "--json")):
        r = run_cli("profiles", "show", *args)
        assert r.returncode == 0, r.stderr
        assert "hunter2" not in r.stdout and "alice:***@proxy.example" in r.stdout


def test_bad_profile_is_one_line_exit_2(run_cli, tmp_path):
    (tmp_path / "bad.yaml").write_text("name: bad\nscheduler: slurm\nlauncher: srun\n")
    r = run_cli("profiles", "show", "bad.yaml")
    assert r.returncode == 2
    assert r.stderr == "site-agent: error: bad.yaml:1: endpoint: is required\n"


def test_render_validate_round_trip(run_cli, tmp_path):
    r = run_cli("endpoint", "render", "--site", "frontier", "--out", str(tmp_path / "ep"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("created ") == 5  # the four endpoint files and bin/site-agent-exec
    r = run_cli("endpoint", "validate", str(tmp_path / "ep"), "--config", '{"account": "hep1"}')
    assert r.returncode == 0, r.stderr
    assert "SlurmProvider" in r.stdout
    (tmp_path / "cfg.json").write_text('{"account": "hep1", "nodes": 3, "gpus_per_rank": 1}')
    r = run_cli("endpoint", "validate", str(tmp_path / "ep"), "--config", "@cfg.json", "--show")
    assert r.returncode == 0, r.stderr
    assert "nodes_per_block: 3" in r.stdout


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ('{"account": "a\\nb"}', "user_endpoint_config: account: "),
        ('{"account": "a;b"}', "user_endpoint_config: account: "),
        ('{"account": "a", "nodes": 0}', "user_endpoint_config: nodes: must be >= 1"),
        ("{not json", "--config: not valid JSON"),
        ("[1]", "--config: must be a JSON object"),
        ("@missing.json", "--config: cannot read missing.json"),
    ],
)
def test_validate_errors_are_one_line(run_cli, tmp_path, config, expected):
    run_cli("endpoint", "render", "--site", "frontier", "--out", str(tmp_path / "ep"))
    r = run_cli("endpoint", "validate", str(tmp_path / "ep"), "--config", config)
    assert r.returncode == 2
    assert r.stderr.startswith(f"site-agent: error: {expected}")
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_render_refuses_edited_file_then_force_keeps_backup(run_cli, tmp_path):
    ep = tmp_path / "ep"
    run_cli("endpoint", "render", "--site", "local", "--out", str(ep))
    (ep / "config.yaml").write_text((ep / "config.yaml").read_text() + "# mine\n")
    r = run_cli("endpoint", "render", "--site", "local", "--out", str(ep))
    assert r.returncode == 1 and "config.yaml edited" in r.stderr and "--force" in r.stderr
    r = run_cli("endpoint", "render", "--site", "local", "--out", str(ep), "--force")
    assert r.returncode == 0 and "backed up config.yaml" in r.stdout


def test_unknown_option_is_usage_error(run_cli):
    r = run_cli("endpoint", "render", "--site", "local")
    assert r.returncode == 2 and "Missing option '--out'" in r.stderr
