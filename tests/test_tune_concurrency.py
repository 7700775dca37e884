"""``tune_max_concurrent_trials`` holds: the search's generator caps the trials running at once.

Ray 2.60 ignores ``TuneConfig(max_concurrent_trials=)`` beside a ``BasicVariantGenerator``
(it only logs a warning), which is where the cap used to be given, so a search ran as many
trials at once as the resources allowed whatever the key said. The cap now is the
generator's own (``tune.driver.search_algorithm``). Checked with Ray Tune itself on a
local Ray of 2 CPUs and trials of 0.5 CPU that each sleep 2 s: with the cap 1 no two trials
overlap in time; without it they do (so the check can see an overlap).
"""

import time

import pytest

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    if ray.is_initialized():
        pytest.skip("Ray already running in this process")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def spans(tmp_path, cap):
    """``[(start, end)]`` of 3 trials run under ``search_algorithm`` with ``tune_max_concurrent_trials: cap``."""
    from ray import tune
    from ray.tune import RunConfig

    from recbole_finest.tune.driver import search_algorithm

    def trainable(config):
        start = time.time()
        time.sleep(2.0)
        tune.report({"start": start, "end": time.time()})

    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 0.5}), param_space={"x": tune.uniform(0, 1)},
        tune_config=tune.TuneConfig(num_samples=3, metric="end", mode="max",
                                    search_alg=search_algorithm({"seed": 0, "tune_max_concurrent_trials": cap})),
        run_config=RunConfig(name=f"cap-{cap}", storage_path=str(tmp_path), verbose=0))
    results = tuner.fit()
    assert not results.errors
    return sorted((r.metrics["start"], r.metrics["end"]) for r in results)


def overlapping(runs):
    return any(later[0] < earlier[1] for earlier, later in zip(runs, runs[1:]))


def test_max_concurrent_trials_caps_the_trials_at_once(local_ray, tmp_path):
    capped = spans(tmp_path, 1)
    assert len(capped) == 3 and not overlapping(capped)
    free = spans(tmp_path, None)
    assert len(free) == 3 and overlapping(free)
