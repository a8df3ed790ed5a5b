"""site-agent sweep without the engine: grids, bad input, results file, ranking, winner, plot."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from siteagent.errors import ConfigError
from siteagent.harvester.config import queue_config
from siteagent.harvester.shape import worker_config
from siteagent.profiles import load_profile
from siteagent.sweep.grid import Grid, build_grid, expand, parse_grid_words
from siteagent.sweep.objective import Objective, make_objective, rank
from siteagent.sweep.output import queue_keys, skipped_lines
from siteagent.sweep.plot import svg
from siteagent.sweep.results import RECORD_FIELDS, ResultsFile, make_record, run_key
from siteagent.sweep.runner import plan_runs

PAYLOADS = Path(__file__).parent / "sweep_payloads"


@pytest.fixture(scope="module")
def local():
    return load_profile("local")


@pytest.fixture(scope="module")
def perlmutter():
    return load_profile("perlmutter")


# ---------------------------------------------------------------- grid
def test_grid_words_are_typed_by_the_site_schema(perlmutter):
    axes = parse_grid_words(
        perlmutter,
        [
            "nodes=1,2,2",
            "container=none,docker://img:1",
            "cvmfs_repos=atlas.cern.ch+sft.cern.ch,none",
        ],
    )
    assert axes == {
        "nodes": [1, 2],
        "container": ["none", "docker://img:1"],
        "cvmfs_repos": [["atlas.cern.ch", "sft.cern.ch"], []],
    }


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (
            ["gpus=1,2"],
            "--grid: gpus: not a user_endpoint_config field of site perlmutter (known: ",
        ),
        (["nodes=1,x"], "--grid: nodes: 'x' is not a whole number"),
        (["nodes"], "--grid: 'nodes' is not FIELD=V1,V2,..."),
        (["nodes=1", "nodes=2"], "--grid: nodes: given twice"),
        (["nodes="], "--grid: nodes: no values"),
        (["env=A"], "--grid: env: a mapping; give it in a grid file (--grid-file)"),
        (["control=1"], "--grid: control: not a user_endpoint_config field"),
    ],
)
def test_bad_grid_words(perlmutter, words, message):
    with pytest.raises(ConfigError) as err:
        parse_grid_words(perlmutter, words)
    assert str(err.value).startswith(message)


def test_impossible_shapes_are_skipped_with_the_reason(perlmutter):
    grid = Grid(
        axes={"ranks_per_node": [1, 4], "gpus_per_rank": [1, 2]},
        config={"account": "m0000"},
    )
    points, skipped = expand(perlmutter, grid)
    assert [p.values for p in points] == [
        {"ranks_per_node": 1, "gpus_per_rank": 1},
        {"ranks_per_node": 1, "gpus_per_rank": 2},
        {"ranks_per_node": 4, "gpus_per_rank": 1},
    ]
    assert skipped_lines(skipped) == [
        "skipped ranks_per_node=4 gpus_per_rank=2: gpus_per_rank: 4 ranks x 2 GPUs needs 8 "
        "per node, but a perlmutter node has 4"
    ]
    # every point is the canonical config the submitter would send
    assert points[2].config["cores_per_rank"] == 16 and points[2].config["account"] == "m0000"


def test_grid_file_with_constraints(tmp_path, perlmutter):
    f = tmp_path / "grid.yaml"
    f.write_text(
        "grid:\n  ranks_per_node: [1, 2, 4]\n  gpus_per_rank: [0, 1]\n"
        "config:\n  account: m0000\n  walltime: '0:30:00'\n"
        "constraints:\n  - ranks_per_node * gpus_per_rank >= 2 or gpus_per_rank == 0\n"
    )
    grid = build_grid(perlmutter, ["gpus_per_rank=1"], f)  # --grid overrides the file's axis
    points, skipped = expand(perlmutter, grid)
    assert [p.values for p in points] == [
        {"ranks_per_node": 2, "gpus_per_rank": 1},
        {"ranks_per_node": 4, "gpus_per_rank": 1},
    ]
    assert {p.config["walltime"] for p in points} == {"00:30:00"}
    assert skipped[0].reason == (
        "constraint 'ranks_per_node * gpus_per_rank >= 2 or gpus_per_rank == 0' is false"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("grid: {nodez: [1]}\n", "grid: nodez: not a user_endpoint_config field"),
        ("grid: {nodes: []}\n", "grid.nodes: must be a non-empty list of values"),
        ("grid: {nodes: [1]}\nextra: 1\n", "extra: unknown key (grid, config, constraints)"),
        ("grid: {nodes: [1]}\nconstraints: ['gpu > 1']\n", "constraints: 'gpu > 1': gpu: not a"),
        (
            "grid: {nodes: [1]}\nconstraints: ['__import__(\"os\")']\n",
            "only fields, numbers, strings, arithmetic",
        ),
        ("grid: [1\n", "not valid YAML"),
        ("grid: {nodes: ['2']}\n", "grid.nodes: '2' is not a whole number"),
        ("grid: {container: [1]}\n", "grid.container: 1 is not a string"),
    ],
)
def test_bad_grid_files(tmp_path, perlmutter, text, message):
    f = tmp_path / "g.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=None) as err:
        build_grid(perlmutter, [], f)
    assert message in str(err.value)


# ---------------------------------------------------------------- bad input on the command line
BAD_INPUT = [
    (
        ["--payload", "true", "--grid", "gpus=1"],
        "site-agent: error: --grid: gpus: not a user_endpoint_config field of site local",
    ),
    (["--payload", "true"], "site-agent: error: --grid: empty grid: give at least one"),
    (
        [
            "--payload",
            "true",
            "--grid",
            "walltime=" + ",".join(f"0:{m:02d}:00" for m in range(1, 23)),
        ],
        "site-agent: error: --grid: 22 points x 1 repetition(s); over 20 points needs --yes",
    ),
    (
        ["--payload", "no-such-command-xyz --fast", "--grid", "ranks_per_node=1"],
        "site-agent: error: --payload: no-such-command-xyz: command not found on PATH",
    ),
    (
        ["--payload", "./missing.sh", "--grid", "ranks_per_node=1"],
        "site-agent: error: --payload: ./missing.sh: not found or not executable",
    ),
    (
        ["--payload", "no_such_module_xyz:run", "--grid", "ranks_per_node=1"],
        "site-agent: error: --payload: no_such_module_xyz:run: cannot import no_such_module_xyz",
    ),
    (
        ["--payload", "true", "--grid", "ranks_per_node=1", "--objective", "throughput"],
        "site-agent: error: --metric: required with --objective throughput",
    ),
    (
        ["--payload", "true", "--grid", "gpus_per_rank=1,2"],
        "site-agent: error: --grid: no possible point on site local (all 2 skipped)",
    ),
]


@pytest.mark.parametrize(("args", "start"), BAD_INPUT)
def test_bad_input_is_one_line_exit_2_nothing_submitted(run_cli, tmp_path, args, start):
    r = run_cli("sweep", "--results", str(tmp_path / "r.jsonl"), *args, timeout=60)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith(start), r.stderr
    assert r.stderr.count("\n") == 1
    assert not (tmp_path / "r.jsonl").exists() and not (tmp_path / "r.html").exists()


def test_over_the_limit_runs_with_max_points_or_yes(local):
    from siteagent.sweep.run import SweepOptions, prepare

    words = ["walltime=" + ",".join(f"0:{m:02d}:00" for m in range(1, 23))]
    plan = prepare(SweepOptions(payload="true", grid=words, max_points=3))
    assert [p.values["walltime"] for p in plan.points] == ["0:01:00", "0:02:00", "0:03:00"]
    assert len(prepare(SweepOptions(payload="true", grid=words, yes=True)).points) == 22


# ---------------------------------------------------------------- results and resume
def outcome(seconds, ranks=1, exit_code=0, metrics=None, queue=None, started=1000.0):
    reports = [
        {
            "rank": r,
            "host": "n1",
            "reason": "finished" if exit_code == 0 else "failed",
            "exit_code": exit_code,
            "payload_seconds": seconds - 0.3,
            "layers": [{"name": "plan", "seconds": 0.1}, {"name": "container", "seconds": 0.2}],
        }
        for r in range(ranks)
    ]
    return {
        "host": "n1",
        "started": started,
        "seconds": seconds,
        "exit_code": exit_code,
        "metrics": metrics or [],
        "reports": reports,
        "job_id": "42" if queue else None,
        "queue": queue,
        "stdout_tail": "",
        "stderr_tail": "boom\nsite-agent pilot: failed, exit code 3; report /gone.json\n"
        if exit_code
        else "",
    }


def record(local, values, seconds, rep=0, **kw):
    from siteagent.userconfig import canonicalize

    config = canonicalize(local, values)
    ranks = config["ranks_per_node"]
    o = outcome(seconds, ranks=ranks, **kw)
    return make_record("local", "p", values, config, rep, o, 990.0, 1000.0 + seconds)


def test_record_fields_and_values(local):
    r = record(
        local,
        {"ranks_per_node": 2},
        3.6,
        metrics=[{"events": 10, "name": "x"}, {"events": 30}],
        queue={"submit": 980.0, "start": 995.0},
    )
    assert set(r) == set(RECORD_FIELDS)
    assert r["ok"] and r["error"] is None and r["job_id"] == "42"
    assert r["node_hours"] == pytest.approx(3.6 / 3600)
    assert r["layers"] == {"plan": 0.1, "container": 0.2, "payload": 3.3}
    assert r["metrics"] == {"events": 40}  # summed over ranks; text is not a metric
    assert r["queue_wait_s"] == 5.0  # the job started 5 s after this run was submitted at 990
    assert [x["rank"] for x in r["ranks"]] == [0, 1]
    json.dumps(r)
    # a later run on the running job saw no wait
    later = record(local, {"ranks_per_node": 2}, 3.6, queue={"submit": 900.0, "start": 950.0})
    assert later["queue_wait_s"] == 0.0


def test_failed_and_missing_ranks_are_not_ok(local):
    failed = record(local, {"ranks_per_node": 1}, 1.0, exit_code=3)
    assert not failed["ok"] and failed["error"] == "exit code 3; stderr: boom"
    config = {"nodes": 1, "ranks_per_node": 2}
    short = make_record("local", "p", {}, config, 0, outcome(1.0, ranks=1), 0.0, 1.0)
    assert not short["ok"] and short["error"].startswith("1 of 2 pilot reports")
    remote = make_record("local", "p", {}, config, 0, None, 0.0, 1.0, "TaskFailed: x")
    assert not remote["ok"] and remote["error"] == "TaskFailed: x" and remote["seconds"] is None


def test_results_append_load_and_resume(tmp_path, local):
    f = ResultsFile(tmp_path / "r.jsonl")
    a = record(local, {"ranks_per_node": 1}, 2.0)
    f.append(a)
    with open(f.path, "a") as fh:
        fh.write('{"v": 1, "site": "local", "cut sh')  # a crash mid-line
    b = record(local, {"ranks_per_node": 2}, 1.0)
    f.append(b)
    assert f.load() == [a, b]
    grid = Grid(axes={"ranks_per_node": [1, 2]})
    points, _ = expand(local, grid)
    runs, have = plan_runs(points, 2, "local", "p", f.done_keys())
    assert have == 2
    assert [(r.point.values["ranks_per_node"], r.rep) for r in runs] == [(1, 1), (2, 1)]
    assert run_key("local", "other", a["config"], 0) not in f.done_keys()
    # a run whose ranks a stop signal ended is no measurement: a rerun runs it again
    stopped = record(local, {"ranks_per_node": 1}, 0.5, rep=1, exit_code=143)
    stopped["ranks"][0]["reason"] = "signalled"
    f.append(stopped)
    assert run_key("local", "p", stopped["config"], 1) not in f.done_keys()
    # so is one that never got a result (its user endpoint did not start)
    lost = make_record("local", "p", {}, b["config"], 1, None, 0.0, 1.0, "submit: OSError: x")
    f.append(lost)
    assert run_key("local", "p", b["config"], 1) not in f.done_keys()
    assert run_key("local", "p", b["config"], 0) in f.done_keys()


def test_progress_lines_when_piped_and_live_on_a_terminal(local):
    import io

    from siteagent.sweep.progress import Reporter
    from siteagent.sweep.runner import Progress

    done = record(local, {"ranks_per_node": 2}, 1.234)
    piped = io.StringIO()
    report = Reporter(piped)  # not a terminal: plain lines
    report(Progress(total=3, running=1, queued=2, elapsed=1.0))
    report(Progress(total=3, running=1, queued=2, elapsed=1.5))  # a tick: no new line
    report(Progress(total=3, done=1, running=1, queued=1, elapsed=65, eta=130.4, last=done))
    report.close()
    assert piped.getvalue().splitlines() == [
        "[0/3] done 0 (0 failed), running 1, queued 2, elapsed 0:01, eta ?",
        "[1/3] done 1 (0 failed), running 1, queued 1, elapsed 1:05, eta 2:10 | "
        "ranks_per_node=2 rep 0: 1.23s ok",
    ]
    tty = io.StringIO()
    live = Reporter(tty, live=True)
    live(Progress(total=3, done=1, running=1, queued=1, elapsed=65, eta=130.4, last=done))
    live.close()
    assert "ranks_per_node=2 rep 0: 1.23s ok" in tty.getvalue()


def test_json_objects_of_ranks_that_shared_a_line():
    from siteagent.sweep.task import json_objects

    out = 'hello\n{"a": 1}{"a": 2}\n\n {"b": "x"} \n{"cut": \nnot json {"c": 3}\n[1, 2]\n'
    assert json_objects(out) == [{"a": 1}, {"a": 2}, {"b": "x"}]


# ---------------------------------------------------------------- objective and ranking
def test_ranking_follows_the_objective(local):
    records = [
        record(local, {"ranks_per_node": 1}, 4.0, metrics=[{"ev": 100}]),
        record(local, {"ranks_per_node": 1}, 6.0, rep=1, metrics=[{"ev": 100}]),
        record(local, {"ranks_per_node": 2}, 3.0, metrics=[{"ev": 50}, {"ev": 50}]),
        record(local, {"ranks_per_node": 1, "cores_per_rank": 1}, 1.0, exit_code=1),
    ]
    by_time = rank(records, Objective("time"))
    assert [(e.point, e.rank, e.value) for e in by_time] == [
        ({"ranks_per_node": 2}, 1, 3.0),
        ({"ranks_per_node": 1}, 2, 5.0),  # median of 4 and 6
        ({"ranks_per_node": 1, "cores_per_rank": 1}, None, None),  # failed: last, unranked
    ]
    by_nh = rank(records, make_objective("node-hours", "ev"))
    assert by_nh[0].value == pytest.approx(3.0 / 3600 / 100, rel=1e-4)
    by_tp = rank(records, make_objective("throughput", "ev"))
    assert [e.value for e in by_tp[:2]] == [100, 100]
    fast = record(local, {"ranks_per_node": 2}, 3.0, rep=1, metrics=[{"ev": 400}])
    assert rank([*records, fast], make_objective("throughput", "ev"))[0].point == {
        "ranks_per_node": 2
    }


def test_winner_is_ready_for_the_harvester_queue_config(perlmutter, tmp_path):
    from siteagent.userconfig import canonicalize

    config = canonicalize(
        perlmutter,
        {"account": "m0000", "ranks_per_node": 2, "gpus_per_rank": 2, "container": "docker://a:1"},
    )
    keys = queue_keys(config)
    assert (keys["nodesPerWorker"], keys["ranksPerNode"], keys["gpusPerWorker"]) == (1, 2, 4)

    class Plugin:  # the queue config as Harvester sets it on its plugins
        site = "perlmutter"

    for k, v in json.loads(json.dumps(keys)).items():
        setattr(Plugin, k, v)

    class WorkSpec:
        workerID, nCore, maxWalltime, minRamCount = 1, None, None, None

    assert worker_config(queue_config(Plugin()), perlmutter, WorkSpec()) == config


def test_plot_is_one_svg_with_the_best_marked(local):
    records = [
        record(local, {"ranks_per_node": 1}, 4.0),
        record(local, {"ranks_per_node": 2}, 3.0),
        record(local, {"ranks_per_node": 1, "cores_per_rank": 1}, 1.0, exit_code=1),
    ]
    text = svg(rank(records, Objective("time")), Objective("time"), "sweep <test>")
    root = ET.fromstring(text)  # well-formed, self-contained
    labels = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "★ ranks_per_node=2" in labels and "ranks_per_node=1" in labels
    assert "sweep <test>" in labels and "failed" in labels
    assert "<script" not in text and "http://" not in text.replace("http://www.w3.org/2000/svg", "")


def test_readme_documents_every_record_field():
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme.split("## Resource sweep")[1].split("\n## ")[0]
    for name, meaning in RECORD_FIELDS.items():
        assert f"| `{name}` | {meaning} |" in section
    example = json.loads(
        section.split("One record of the sweep above:\n\n```json\n")[1].split("\n```")[0]
    )
    assert set(example) == set(RECORD_FIELDS)
