"""A local Ray sweep listens on 127.0.0.1 only, and a level that fits no node is refused with
what the cluster has instead of waiting forever."""

from __future__ import annotations

import os

import numpy as np
import pytest

from core.sweep.executors.resources import check_fits, is_loopback
from core.sweep.runner import LevelResult, RunnerSpec


def test_is_loopback():
    for host in ("127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "192.0.2.2", "::ffff:192.0.2.2", "10.0.0.1", "*", ""):
        assert not is_loopback(host), host


def test_check_fits_names_the_flag_and_what_the_cluster_has():
    check_fits({"CPU": 1.0, "GPU": 0.0}, [{"CPU": 2.0}], "here")
    check_fits({"CPU": 2.0, "GPU": 0.5}, [{"CPU": 1.0}, {"CPU": 4.0, "GPU": 1.0}], "cluster c")
    with pytest.raises(
        ValueError, match=r"--gpus-per-level: a level asks for 1 GPU but here has 0"
    ):
        check_fits({"CPU": 1.0, "GPU": 1.0}, [{"CPU": 2.0}], "here")
    with pytest.raises(ValueError, match=r"--cpus-per-level: .*1000 CPU.*at most 4 CPU"):
        check_fits({"CPU": 1000.0, "GPU": 0.0}, [{"CPU": 2.0}, {"CPU": 4.0}], "cluster c")
    # each resource exists somewhere, but no single node has both
    with pytest.raises(ValueError, match="no node of cluster c has 4 CPU, 1 GPU"):
        check_fits({"CPU": 4.0, "GPU": 1.0}, [{"CPU": 4.0}, {"CPU": 1.0, "GPU": 1.0}], "cluster c")


class _QuickRunner:
    """One trivial level (built in the Ray worker from its spec)."""

    steps_per_level = 1

    def run_level(self, c_p, seed, on_step, stop):
        on_step(1, 0.0)
        record = {"c_p": c_p, "seed": seed, "ad": 0.0}
        return LevelResult(record, {}, np.zeros((1, 2, 2, 3), np.uint8), 1)  # type: ignore[arg-type]

    def spec(self):
        return RunnerSpec("tests.test_ray_local_only:quick_runner", {}, "")


def quick_runner(config, out, state):
    return _QuickRunner()


def listening(pids: set[int]) -> list[tuple[str, str, int]]:
    """(process, address, port) of every listening TCP socket and bound UDP socket of ``pids``."""
    import psutil

    found = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            for c in proc.net_connections(kind="inet"):
                if c.status == psutil.CONN_LISTEN or (c.type == 2 and c.laddr):
                    found.append((proc.name(), c.laddr.ip, c.laddr.port))
        except psutil.NoSuchProcess:
            continue
    return found


def test_local_ray_sweep_listens_on_loopback_only():
    pytest.importorskip("ray")
    psutil = pytest.importorskip("psutil")
    from core.sweep.executors import ExecutorOptions
    from core.sweep.executors.base import Control, LevelTask
    from core.sweep.executors.ray_executor import RayExecutor

    seen: dict[str, object] = {}

    class Events:
        def started(self, task, node, pid):
            # while a level runs: GCS, raylet, agents, the SweepHub actor and the level's worker
            me = psutil.Process(os.getpid())
            pids = {p.pid for p in me.children(recursive=True)} | {os.getpid()}
            seen.update(node=node, worker=pid, pids=pids, sockets=listening(pids))

        def step(self, task, step, loss):
            pass

        def done(self, task, result):
            seen["done"] = result.record["c_p"]

        def stopped(self, task):
            pass

    ex = RayExecutor(ExecutorOptions(cpus_per_level=1))
    ex.run(_QuickRunner(), [LevelTask(3, 0)], Events(), Control())  # type: ignore[arg-type]
    assert seen.get("done") == 3
    assert seen["worker"] in seen["pids"]  # the level's worker was among the inspected processes
    sockets = seen["sockets"]
    assert len(sockets) >= 3, sockets  # GCS, raylet, workers: the inspection saw Ray's servers
    exposed = [s for s in sockets if not is_loopback(s[1])]
    assert not exposed, f"Ray processes listen beyond this machine: {exposed}"
    assert seen["node"] == "127.0.0.1"
    # Ray's cluster setting is restored for a later ray.init(address=...) in this process
    from ray._private import ray_constants

    assert ray_constants.ENABLE_RAY_CLUSTER
    assert "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER" not in os.environ


def test_a_cluster_address_from_the_ui_needs_the_servers_permission():
    from core.sweep.executors import ALLOW_RAY_ADDRESS_ENV, app_ray_address

    assert app_ray_address("local", {}) is None and app_ray_address(" ", {}) is None
    with pytest.raises(ValueError, match=r"'ray://evil:10001'.*implosion app --allow-ray-address"):
        app_ray_address("ray://evil:10001", {})
    with pytest.raises(ValueError, match="this machine only"):
        app_ray_address("auto", {ALLOW_RAY_ADDRESS_ENV: "0"})
    assert app_ray_address(" auto ", {ALLOW_RAY_ADDRESS_ENV: "1"}) == "auto"


def test_app_allow_ray_address_reaches_the_server(monkeypatch):
    """`implosion app --allow-ray-address` starts the server with the permission in its
    environment; without the flag the server has none (unless the operator set it)."""
    import core.commands.app as app_cmd
    from core.cli import main
    from core.sweep.executors import ALLOW_RAY_ADDRESS_ENV

    started: list[dict[str, str]] = []

    def fake_execve(path, argv, env):
        started.append(dict(env))
        raise SystemExit(0)

    monkeypatch.setattr(app_cmd.os, "execve", fake_execve)
    monkeypatch.delenv(ALLOW_RAY_ADDRESS_ENV, raising=False)
    for flags in (["--allow-ray-address"], []):
        with pytest.raises(SystemExit):
            main(["app", "--port", "8599", *flags])
    assert started[0].get(ALLOW_RAY_ADDRESS_ENV) == "1"
    assert ALLOW_RAY_ADDRESS_ENV not in started[1]
