"""Study grids: sizes, shared runs, the paper's ablation tags."""
import pytest

from vml.spec import profile_spec
from vml import studies
from vml.studies import ABLATIONS, STUDIES, ablation_tag, get_study, plan


def test_cpu_grid_sizes_match_the_paper_designs():
    sizes = {name: len(s.grid("cpu")) for name, s in STUDIES.items()}
    assert sizes["sources"] == 4 * 2 * 5          # vary x loss x seeds (Table 1)
    assert sizes["architectures"] == 2 * 4 * 2 * 5  # datasets x models x loss x seeds (Table 2)
    assert sizes["seed-groups"] == 2 * 20          # the 20-seed pool (Table 3)
    assert sizes["comparison"] == 40 and sizes["reactivity"] == 20
    assert sizes["ablations"] == (4 + 4 + 4 + 4 + 5) * 5  # Fig. 3: 4 values of α, β, Δ, W; 5 of λ_base
    assert sizes["replication"] == 2 * 5            # loss x new seeds 6-10 (ours)
    assert all(len(ABLATIONS[k][1]) >= 4 for k in ABLATIONS)


def test_shared_runs_are_planned_once():
    every = plan(["all"], "cpu")
    keys = [i.spec.key() for i in every]
    assert len(keys) == len(set(keys))
    pool = {i.spec.key() for i in get_study("seed-groups").grid("cpu")}
    sources_all = {i.spec.key() for i in get_study("sources").grid("cpu") if i.spec.vary == "all"}
    assert sources_all <= pool  # Table 1's "All" row reuses the pool's first five seeds
    ablation_defaults = {i.spec.key() for i in get_study("ablations").grid("cpu")
                         if i.spec.vml == profile_spec("cpu").vml}
    assert len(ablation_defaults) == 5 and ablation_defaults <= pool
    # every pool run keeps its probabilities (ensembles need them), whichever study planned it first
    assert all(i.keep_probs for i in every if i.spec.key() in pool)


def test_ablation_tags_follow_the_paper():
    assert ablation_tag("SLA", 0.05) == "SLA005" and ablation_tag("SW", 0.10) == "SW010"
    assert ablation_tag("SLW", 200) == "SLW200" and ablation_tag("SLD", 0.5) == "SLD050"
    tags = {i.tags["tag"] for i in get_study("ablations").grid("cpu")}
    assert {"SLA005", "SLB020", "SLD020", "SLW200", "SW010"} <= tags


def test_architectures_use_all_four_networks_and_both_datasets():
    grid = get_study("architectures").grid("cpu")
    assert {i.spec.model for i in grid} == {"resnet14", "vgg16", "shufflenetv2", "mobilenetv2"}
    assert {i.spec.dataset for i in grid} == {"cifar10", "cifar100"}


def test_unknown_study_and_profile_are_named():
    with pytest.raises(ValueError, match="unknown study 'tabel1'"):
        get_study("tabel1")
    with pytest.raises(ValueError, match="unknown profile 'tpu'"):
        get_study("sources").grid("tpu")


def test_pool_alternates_arms_so_a_partial_sweep_leaves_pairs():
    grid = get_study("seed-groups").grid("cpu")
    assert [(i.spec.seed, i.spec.loss) for i in grid[:4]] == [(1, "base"), (1, "vml"), (2, "base"), (2, "vml")]


def test_select_seeds_keeps_only_those_seeds_and_names_a_bad_one():
    items = studies.plan(["seed-groups"], "smoke")
    one = studies.select_seeds(items, [1])
    assert {i.spec.seed for i in one} == {1} and {i.spec.loss for i in one} == {"base", "vml"}
    assert studies.select_seeds(items, None) == items
    with pytest.raises(ValueError, match=r"seed 7 is not in these studies; their seeds are \[1, 2\]"):
        studies.select_seeds(items, [7])
    from vml import runner
    with pytest.raises(ValueError, match="seed 7"):  # checked before anything trains
        runner.run(["seed-groups"], "smoke", seeds=[7])


def test_eta_scales_the_median_epoch_time_of_runs_of_the_same_kind_preferring_this_cpu():
    from vml.runner import estimate_seconds
    fast = [profile_spec("cpu", seed=s) for s in (1, 2, 3)]  # 5 epochs each
    slow = [profile_spec("cpu", seed=s, model="shufflenetv2", precision="fp32", width=0.25) for s in (1, 2)]
    walls = [(fast[0], 90.0, "amd"), (fast[1], 100.0, "amd"), (slow[0], 300.0, "amd")]
    # a fast run at the fast median (95), a slow one at the slow median (300)
    assert estimate_seconds([fast[2], slow[1]], walls) == pytest.approx(95.0 + 300.0)
    # three times the epochs: three times the median epoch time (19 s) of its kind
    assert estimate_seconds([fast[2].replace(epochs=15)], walls) == pytest.approx(3 * 95.0)
    # runs made on this machine's CPU model count alone when there are some
    mine = walls + [(fast[0], 400.0, "xeon")]
    assert estimate_seconds([fast[2]], mine, cpu="xeon") == pytest.approx(400.0)
    assert estimate_seconds([fast[2]], mine, cpu="epyc") == pytest.approx(100.0)  # none here: all of them
    # a bf16 run on fp32 kernels (vml.bf16) is timed by runs made so on this CPU, not by its bf16-kernel runs
    fp32_kernels = mine + [(fast[1], 150.0, "xeon (bf16 on fp32 kernels)")]
    assert estimate_seconds([fast[2]], fp32_kernels, cpu="xeon", bf16_kernels="fp32") == pytest.approx(150.0)
    assert estimate_seconds([fast[2]], fp32_kernels, cpu="xeon") == pytest.approx(400.0)
    # none of this kind made so here yet: the same CPU model's runs on the other path come before all
    assert estimate_seconds([fast[2]], mine, cpu="xeon", bf16_kernels="fp32") == pytest.approx(400.0)
    # a kind with no stored run falls back to the median over all runs (100)
    other = profile_spec("cpu", seed=1, model="vgg16", width=0.25)
    assert estimate_seconds([other], walls) == 100.0
    # a run with a checkpoint counts only its epochs left: 2 of 5 done -> 3 x 19 s; 1 of 5 -> 4/5 of 100 s
    assert estimate_seconds([fast[2]], walls, done={fast[2].key(): 2}) == pytest.approx(3 * 19.0)
    assert estimate_seconds([other], walls, done={other.key(): 1}) == pytest.approx(80.0)
    assert estimate_seconds([other], []) is None and estimate_seconds([], walls) == 0


def test_replication_repeats_the_table2_cell_on_new_seeds_only():
    import dataclasses

    new = get_study("replication").grid("cpu")
    assert sorted({i.spec.seed for i in new}) == [6, 7, 8, 9, 10]
    table2 = {i.spec.key() for i in get_study("architectures").grid("cpu")}
    # same runs as Table 2's VGG-16 / CIFAR-10 cell but for the seed: nothing is shared with it
    assert not {i.spec.key() for i in new} & table2
    assert {dataclasses.replace(i.spec, seed=i.spec.seed - 5).key() for i in new} <= table2
    assert all(i.spec.model == studies.REPLICATION_MODEL and i.spec.dataset == "cifar10" for i in new)


def test_powered_reuses_the_table2_resnet_runs_and_puts_the_pilot_first():
    grid = get_study("powered").grid("cpu")
    table2 = {i.spec.key() for i in get_study("architectures").grid("cpu")
              if i.spec.model == "resnet14" and i.spec.dataset == "cifar10"}
    short = [i for i in grid if i.tags["arm"] == "short"]
    long = [i for i in grid if i.tags["arm"] == "long"]
    assert {i.spec.key() for i in short if i.spec.seed <= 5} == table2  # seeds 1-5: the stored Table 2 runs
    assert sorted({i.spec.seed for i in short}) == list(range(1, studies.POWERED_N_SHORT + 1))
    assert sorted({i.spec.seed for i in long}) == list(range(1, studies.POWERED_N_LONG + 1))
    assert all(i.spec.loss == "base" and i.spec.seed in studies.PILOT_SEEDS for i in grid[:5])
    # the long arm is the short arm's spec with more epochs and nothing else
    s1 = next(i.spec for i in short if i.spec.seed == 1 and i.spec.loss == "vml")
    l1 = next(i.spec for i in long if i.spec.seed == 1 and i.spec.loss == "vml")
    assert l1 == s1.replace(epochs=studies.POWERED_EPOCHS_LONG)


def keys(items):
    return [i.spec.key() for i in items]


def test_long_arm_is_held_until_the_pilots_length_is_committed_and_the_pilot_never_changes(monkeypatch):
    monkeypatch.delitem(studies.POWERED_EPOCHS_LONG_CHOSEN, "cpu", raising=False)  # before the pilot's choice
    grid = get_study("powered").grid("cpu")
    pilot = [i for i in grid if i.tags.get("pilot")]
    long = [i for i in grid if i.tags["arm"] == "long"]
    assert grid[:5] == pilot and not any(i.held for i in pilot + [i for i in grid if i.tags["arm"] == "short"])
    assert [i for i in long if i.held] == [i for i in long if i not in pilot]  # the other 55 long runs wait
    assert len(long) == 2 * studies.POWERED_N_LONG and all("pilot" in i.held for i in long if i.held)
    # committed at the pilot's length: the same 160 runs, none held
    monkeypatch.setitem(studies.POWERED_EPOCHS_LONG_CHOSEN, "cpu", studies.POWERED_EPOCHS_LONG)
    g15 = get_study("powered").grid("cpu")
    assert keys(g15) == keys(grid) and not any(i.held for i in g15)
    # committed at the shorter length: the long arm at 11 epochs; the pilot's 15-epoch runs stay, outside it
    monkeypatch.setitem(studies.POWERED_EPOCHS_LONG_CHOSEN, "cpu", studies.POWERED_EPOCHS_LONG_ALT)
    g11 = get_study("powered").grid("cpu")
    long11 = [i for i in g11 if i.tags["arm"] == "long"]
    assert keys(g11[:5]) == keys(pilot) and {i.tags["arm"] for i in g11[:5]} == {"pilot"}
    assert len(long11) == 2 * studies.POWERED_N_LONG and {i.spec.epochs for i in long11} == {11}
    assert len(g11) == len(grid) + 5 and not any(i.held for i in g11)
    assert any(i.held for i in get_study("powered").grid("smoke"))  # a choice is per profile


def test_plan_holds_a_run_only_if_every_study_holds_it(monkeypatch):
    spec = profile_spec("smoke", seed=1)
    monkeypatch.setitem(STUDIES, "waits", studies.Study("waits", "", lambda p: [studies.GridItem(spec, held="why")]))
    monkeypatch.setitem(STUDIES, "needs", studies.Study("needs", "", lambda p: [studies.GridItem(spec, keep_probs=True)]))
    assert [i.held for i in plan(["waits"], "smoke")] == ["why"]
    for names in (["waits", "needs"], ["needs", "waits"]):
        (item,) = plan(names, "smoke")
        assert item.held == "" and item.keep_probs


@pytest.mark.parametrize("epochs", [studies.POWERED_EPOCHS_LONG, studies.POWERED_EPOCHS_LONG_ALT])
def test_long_arm_spends_at_least_80_percent_of_steps_after_the_latch(epochs):
    spec = get_study("powered").grid("cpu")[0].spec
    steps = -(-50_000 // spec.batch_size) * epochs  # CIFAR-10's 50,000 training images, last batch kept
    assert 1 - spec.vml.warmup_steps / steps >= 0.8


def test_reactivity_long_latches_within_the_first_15_percent_on_a_tenth_of_the_data():
    grid = get_study("reactivity-long").grid("cpu")
    spec = grid[0].spec
    assert spec.train_subset == 5000 and spec.model == profile_spec("cpu").model
    steps = -(-spec.train_subset // spec.batch_size) * spec.epochs
    assert spec.vml.warmup_steps / steps <= 0.15 and spec.epochs >= 30
    assert sum(i.spec.loss == "base" for i in grid) == sum(i.spec.loss == "vml" for i in grid) == 20


@pytest.mark.parametrize("profile, model, lr", [("cpu", "fastnet", 0.2), ("gpu", "resnet14", 0.1)])
def test_small_data_protocol_scales_the_profiles_lr_linearly_to_batch_128(profile, model, lr):
    # cpu: 0.8 at batch 512 -> 0.2 (the pre-registered value); gpu: 0.4 at batch 512 -> 0.1
    spec = get_study("reactivity-long").grid(profile)[0].spec
    assert (spec.model, spec.batch_size, spec.lr, spec.epochs, spec.train_subset) == (model, 128, lr, 40, 5000)


def test_long_epochs_rule_switches_only_when_the_pilot_spread_is_test_set_noise():
    assert studies.long_epochs(0.30, 0.25) == studies.POWERED_EPOCHS_LONG_ALT  # 1.2 x floor
    assert studies.long_epochs(0.40, 0.25) == studies.POWERED_EPOCHS_LONG       # 1.6 x floor
    assert studies.long_epochs() == studies.POWERED_EPOCHS_LONG


@pytest.mark.parametrize("profile", ["cpu", "gpu", "paper"])
def test_the_powered_short_arm_is_shorter_than_either_length_of_the_long_arm(profile, monkeypatch):
    grid = get_study("powered").grid(profile)
    short = {i.spec.epochs for i in grid if i.tags["arm"] == "short"}
    assert max(short) < min(i.spec.epochs for i in grid if i.tags["arm"] == "long")
    pilot = {i.spec.epochs for i in grid if i.tags.get("pilot")}
    length, alt = studies.long_arm_lengths(profile)
    assert len(short) == 1 and pilot == {length} and max(short) < alt < length
    assert [i.tags["arm"] for i in grid[:6]] == ["long"] * 5 + ["short"]  # the pilot first, then the short arm
    # the rule and the committed choice work at every profile, as on cpu: until a choice is committed the
    # long arm waits for the pilot; once it is, the arm is at that length and nothing is held
    assert studies.long_epochs(0.30, 0.25, profile) == alt and studies.long_epochs(0.40, 0.25, profile) == length
    monkeypatch.delitem(studies.POWERED_EPOCHS_LONG_CHOSEN, profile, raising=False)
    assert sum(bool(i.held) for i in get_study("powered").grid(profile)) == 2 * studies.POWERED_N_LONG - 5
    monkeypatch.setitem(studies.POWERED_EPOCHS_LONG_CHOSEN, profile, alt)
    chosen = get_study("powered").grid(profile)
    assert not any(i.held for i in chosen)
    assert {i.spec.epochs for i in chosen if i.tags["arm"] == "long"} == {alt}


def test_cpu_long_arm_lengths_are_the_pre_registered_ones():
    assert studies.long_arm_lengths("cpu") == (studies.POWERED_EPOCHS_LONG, studies.POWERED_EPOCHS_LONG_ALT) == (15, 11)
    assert studies.POWERED_EPOCHS_LONG_CHOSEN["cpu"] == 15
