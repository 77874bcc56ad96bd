"""The session's seeds policy: fixed seeds, or sequential designs per claim (--seeds=auto)."""

import pytest

from harness.experiments import protocols
from harness.experiments.session import AUTO, DEFAULT_SEEDS, NETWORK_DEFAULT_SEEDS, Options, Session, SessionError, check_options


def session(tmp_path, **options):
    return Session(Options(store=str(tmp_path / "store"), workers=1, **options))


def test_by_default_quick_and_medium_networks_have_five_fixed_seeds_and_the_rest_is_sequential(tmp_path):
    s = session(tmp_path)
    assert DEFAULT_SEEDS == {"quick": 5} and NETWORK_DEFAULT_SEEDS == {"medium": 5, "laptop": 5}
    # laptop as medium: five fixed seeds on its network arms, sequential on the CPU arms
    assert s.fixed_seeds("laptop", "t6-cifar10-nn") == 5 and s.fixed_seeds("laptop", "t2-adult-xgboost") is None
    assert s.fixed_seeds("quick") == 5 and s.seeds_for("quick") == [0, 1, 2, 3, 4]
    # medium: five fixed seeds on its network arms (its GPU-hour), sequential on the CPU arms
    assert s.fixed_seeds("medium", "t1-cifar10-nn") == 5 and s.design("medium", "t1-cifar10-nn", 0.05) is None
    assert s.fixed_seeds("medium", "t1-adult-xgboost") is None
    assert s.design("medium", "t1-adult-xgboost", 0.05).looks == (5, 10, 20, 40, 80)
    assert session(tmp_path, seeds=AUTO).design("medium", "t1-cifar10-nn", 0.05).looks == (5, 10, 20)
    assert session(tmp_path, seeds=3).fixed_seeds("medium", "t1-adult-xgboost") == 3
    s.claims.append({"profile": "medium"})  # a session that judged a medium claim says so
    assert s.seeds_description() == ("medium: auto (group-sequential, looks doubling from 5), "
                                     "network arms 5 fixed")
    assert s.fixed_seeds("full") is None and s.seeds_for("full") == [0, 1, 2, 3, 4]  # the first look
    assert s.design("quick", "t1-adult-xgboost", 0.05) is None
    design = s.design("full", "t1-adult-xgboost", 0.05)
    assert design.looks == (5, 10, 20, 40, 80) and design.alpha == 0.05
    assert s.design("full", "t5-cifar10-flatness", 0.05).looks == (5, 10, 20)  # a network arm


def test_a_number_fixes_every_profile_and_auto_makes_every_profile_sequential(tmp_path):
    fixed = session(tmp_path, seeds=7, seed_offset=3)
    assert fixed.fixed_seeds("full") == 7 and fixed.seeds_for("full") == list(range(3, 10))
    assert fixed.history("x", "full", "t1-adult-xgboost", 0.05) is None
    auto = session(tmp_path, seeds=AUTO, seed_offset=5)
    assert auto.fixed_seeds("quick") is None and auto.seed_list(10) == list(range(5, 15))
    history = auto.history("x", "quick", "t1-adult-xgboost", 0.05)
    assert history is auto.history("x", "quick", "t1-adult-xgboost", 0.05)  # one per claim
    assert history.design.maximum == protocols.arm_config("quick", "t1-adult-xgboost").max_seeds


@pytest.mark.parametrize("bad", [1, 0, "many", 2.5])
def test_seeds_must_be_at_least_two_or_auto(bad):
    with pytest.raises(SessionError, match="at least 2"):
        check_options(Options(seeds=bad))
    check_options(Options(seeds=AUTO))
    check_options(Options(seeds=2))


def test_the_gpu_profiles_network_runs_are_gpu_runs_and_their_cpu_runs_train_here(tmp_path):
    """A network arm of a GPU profile (medium, full) is keyed to cuda and cannot train on this
    CPU-only machine; its tabular and toy arms can; quick's networks train where the session is."""
    s = session(tmp_path, device="auto")
    s._resolved_device = "cpu"  # this machine, as a CPU-only one
    for profile in protocols.GPU_PROFILES:
        network = protocols.arm_config(profile, "t1-cifar10-nn")
        assert s.device_for(profile) == "cuda" and "no CUDA GPU" in s.cannot_train(profile, network)
        assert s.cannot_train(profile, protocols.arm_config(profile, "t1-adult-xgboost")) == ""
    assert s.device_for("quick") == "cpu"
    assert s.cannot_train("quick", protocols.arm_config("quick", "t1-cifar10-nn")) == ""
    forced = session(tmp_path, device="cpu")
    assert "30 epochs per run" in forced.cannot_train("medium", protocols.arm_config("medium", "t1-cifar10-nn"))


def test_an_arm_s_runs_are_built_at_the_seeds_its_claims_are_judged_on(tmp_path, monkeypatch):
    """The session builds (and prefetches) a medium network arm's runs at its own fixed seeds,
    not the profile's first look, which only coincide while both are five."""
    from harness.experiments import session as session_module

    from .conftest import shared_data_available

    if not shared_data_available("cifar10/cifar10-jpeg.zip") and not shared_data_available(
            "cifar10/cifar-10-batches-py/data_batch_1"):
        pytest.skip("CIFAR-10 not present")
    monkeypatch.setitem(session_module.NETWORK_DEFAULT_SEEDS, "medium", 3)
    s = session(tmp_path, device="cuda")
    [(_, _, specs)], errors = s.selection([("medium", "t5-cifar10-flatness")])
    assert not errors and {spec.seed for spec in specs} == {0, 1, 2}
    assert s.seeds_for("medium", "t5-cifar10-flatness") == [0, 1, 2]


def test_a_session_without_networks_says_its_runs_trained_on_the_cpu(tmp_path):
    """The report's Environment line of a tabular or toy session: the CPU, not "tabular only"."""
    meta = session(tmp_path).meta()
    assert meta["device"].startswith("cpu") and "toy MLP" in meta["device"]
