"""The endpoint's own schema holds the site's limits by itself: globus-compute-endpoint checks
``user_config_schema.json`` before any site-agent code runs, so a Globus Compute SDK user who
sends a config straight to the endpoint meets the same node fit, walltime limit and protected
environment names as one who goes through ``site-agent validate``."""

from __future__ import annotations

import functools

import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from siteagent.errors import ConfigError
from siteagent.profiles import load_profile, parse_profile
from siteagent.schema_errors import describe
from siteagent.userconfig import user_config_schema, validate

LOCAL = "scheduler: local\nlauncher: none\nendpoint: {name: ep}\n"
# no GPUs, one thread per core: a CPU-only site
CPU_SITE = parse_profile("name: cpusite\n" + LOCAL + "node: {cores: 12, gpus: 0}\n", "c.yaml")
# 3 GPUs, 4 cores: at 3 and 4 ranks one core each, but one GPU only at 3
GPU_BOX = parse_profile(
    "name: gpubox\n" + LOCAL + "node: {cores: 4, gpus: 3, gpu_vendor: nvidia}\n", "g.yaml"
)
TEST_SITES = {"cpusite": CPU_SITE, "gpubox": GPU_BOX}


@functools.cache
def _endpoint_validator(site: str) -> Draft202012Validator:
    profile = TEST_SITES.get(site) or load_profile(site)
    return Draft202012Validator(user_config_schema(profile))


def endpoint_refusal(site: str, config: dict) -> str | None:
    """What the endpoint says of ``config``: jsonschema.validate's one error (the best match
    of the schema's errors), in the words site-agent's endpoint template gives it."""
    error = best_match(_endpoint_validator(site).iter_errors(config))
    if error is None:
        return None
    where, problem = describe(error)
    return f"{where}: {problem}"


def _base(site: str) -> dict:
    return {} if site in TEST_SITES else {"account": "a"}


# site -> (GPU slots, hardware threads) of its node
NODES = {"polaris": (4, 64), "frontier": (8, 112), "cpusite": (0, 12), "gpubox": (3, 4)}


@pytest.mark.parametrize("site", sorted(NODES))
def test_the_endpoint_fits_every_rank_count_to_the_node(site):
    slots, threads = NODES[site]
    name = site

    def most(ranks: int) -> tuple[int, int]:  # GPUs and cores each of ``ranks`` ranks may have
        return slots // ranks, threads // ranks

    base = _base(site)
    for ranks in range(1, threads + 1):
        gpus, cores = most(ranks)
        shape = base | {"ranks_per_node": ranks, "gpus_per_rank": gpus, "cores_per_rank": cores}
        assert endpoint_refusal(site, shape) is None, shape
        more_gpus = endpoint_refusal(site, shape | {"gpus_per_rank": gpus + 1})
        more_cores = endpoint_refusal(site, shape | {"cores_per_rank": cores + 1})
        if ranks == 1:
            assert more_gpus == f"gpus_per_rank: must be <= {slots}"
            assert more_cores == f"cores_per_rank: must be <= {threads}"
            continue
        # the message names every rank count with these same limits
        same = [r for r in range(2, threads + 1) if most(r) == most(ranks)]
        span = f"{same[0]}" if len(same) == 1 else f"{same[0]}-{same[-1]}"
        where = f"with {span} ranks per node a {name} node"
        assert more_gpus == f"gpus_per_rank: {where} ({slots} GPUs) has at most {gpus} per rank"
        assert more_cores == (
            f"cores_per_rank: {where} ({threads} hardware threads) has at most {cores} per rank"
        )
    too_many = base | {"ranks_per_node": threads + 1, "cores_per_rank": 1}
    assert endpoint_refusal(site, too_many) == f"ranks_per_node: must be <= {threads}"
    # without ranks_per_node the worker has one rank, which may have the whole node
    assert (
        endpoint_refusal(site, base | {"gpus_per_rank": slots, "cores_per_rank": threads}) is None
    )


def test_site_agent_and_the_endpoint_agree_on_the_node_fit():
    profile = load_profile("polaris")
    for ranks, gpus, cores in ((3, 1, 21), (4, 1, 16), (5, 0, 12), (40, 0, 1)):
        shape = {"account": "a", "ranks_per_node": ranks, "gpus_per_rank": gpus}
        validate(profile, shape | {"cores_per_rank": cores})
        for too_much in ({"gpus_per_rank": gpus + 1}, {"cores_per_rank": cores + 1}):
            field = next(iter(too_much))
            with pytest.raises(ConfigError, match=f"^user_endpoint_config: {field}: {ranks} "):
                validate(profile, shape | {"cores_per_rank": cores} | too_much)
            assert endpoint_refusal("polaris", shape | {"cores_per_rank": cores} | too_much)


def _written(seconds: int) -> list[str]:
    """``seconds`` as a submitter may write it: hours unpadded, padded to 2 and to 3 digits."""
    h, m, s = seconds // 3600, seconds % 3600 // 60, seconds % 60
    return [f"{h:0{width}d}:{m:02d}:{s:02d}" for width in (1, 2, 3)]


@pytest.mark.parametrize(
    "limit",
    ["00:00:30", "00:01:00", "00:45:10", "01:00:00", "02:30:45", "24:00:00", "48:00:59"],
)
def test_the_endpoint_accepts_walltimes_up_to_the_site_limit_only(limit):
    h, m, s = (int(x) for x in limit.split(":"))
    top = h * 3600 + m * 60 + s
    profile = load_profile("local", {"limits": {"max_walltime": limit}})
    check = Draft202012Validator(user_config_schema(profile))
    near = {top + d for d in (-3601, -3600, -61, -60, -59, -1, 0, 1, 59, 60, 61, 3600, 3601)}
    for seconds in sorted({1, 59, 60, 61, 3599, 3600, 3601} | near):
        if seconds <= 0:
            continue
        for text in _written(seconds):
            error = best_match(check.iter_errors({"walltime": text}))
            if seconds <= top:
                assert error is None, (limit, text)
            else:
                assert describe(error) == ("walltime", f"{text} exceeds the site limit {limit}")


@pytest.mark.parametrize("zero", ["0:00:00", "00:00:00", "000:00:00"])
def test_the_endpoint_refuses_a_zero_walltime(zero):
    # Slurm reads --time=0 as no limit at all
    assert endpoint_refusal("cpusite", {"walltime": zero}) == (
        "walltime: must be longer than 00:00:00"
    )


def test_the_endpoint_refuses_a_number_for_a_walltime_as_the_wrong_type():
    for number in (0, 1.0, 3600):
        assert endpoint_refusal("cpusite", {"walltime": number}) == (
            "walltime: must be of type string"
        )


PROTECTED = ["LD_PRELOAD", "LD_LIBRARY_PATH", "BASH_ENV", "SITE_AGENT_JOB_START", "PATH"]
PROTECTED += ["PYTHONPATH", "HTTPS_PROXY", "GLOBUS_COMPUTE_ENDPOINT", "APPTAINER_BIND"]


@pytest.mark.parametrize("name", PROTECTED)
def test_a_user_cannot_set_the_variables_sites_keep(name):
    message = f"env: has a key '{name}' that is not allowed"
    with pytest.raises(ConfigError) as err:
        validate(CPU_SITE, {"env": {name: "x"}})
    assert str(err.value) == f"user_endpoint_config: {message}"
    assert endpoint_refusal("cpusite", {"env": {name: "x"}}) == message


def test_a_user_sets_other_variables():
    env = {"ATHENA_PROC_NUMBER": "8", "MY_PATH": "/a", "OMP_NUM_THREADS": "4", "XLD_": "1"}
    validate(CPU_SITE, {"env": env})
    assert endpoint_refusal("cpusite", {"env": env}) is None
