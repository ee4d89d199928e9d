"""The paper's experiments as named grids of runs (`vml.runner` trains them into the store).

A study is a list of `GridItem`s (a `RunSpec` plus descriptive tags). Runs shared between studies
are trained once: the store is keyed by the spec, not by the study.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

from .spec import ARCH_SETTINGS, ARCHITECTURES, LOSSES, PROFILES, VARY, RunSpec, profile_spec  # noqa: F401 (re-exported)

SEEDS_PAPER = 5      # the paper's S = {1, ..., 5}
SEEDS_POOL = 20      # the 20-seed CIFAR-10 pool of Table 3 / Table 4 / Fig. 1
SMOKE_SEEDS = 2      # the smoke profile shrinks every grid to keep tests fast

# Ablations (Fig. 3): one knob at a time around Table 5; the tag style is the paper's (SLA005: α = 0.05).
ABLATIONS: dict[str, tuple[str, tuple[float, ...]]] = {
    "SLA": ("alpha", (0.01, 0.05, 0.10, 0.20)),
    "SLB": ("beta", (0.05, 0.10, 0.20, 0.50)),
    "SLD": ("delta", (0.05, 0.10, 0.20, 0.50)),
    "SLW": ("warmup_steps", (0, 50, 100, 200)),
    "SW": ("lambda_base", (0.01, 0.05, 0.10, 0.50, 1.00)),
}
VPL_WEIGHT = 0.05  # the reconstructed within-class logit variance term: our choice, the paper gives none


@dataclass(frozen=True)
class GridItem:
    """One run of a study: its spec, tags that describe its role, whether to keep its probabilities, and
    `held`: why the run must wait (a design choice not yet committed); the runner does not train it."""

    spec: RunSpec
    tags: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    keep_probs: bool = False
    held: str = ""


@dataclass(frozen=True)
class Study:
    """A named experiment of the paper: `grid(profile)` lists its runs."""

    name: str
    paper: str
    make: Callable[[str], list[GridItem]]

    def grid(self, profile: str) -> list[GridItem]:
        """The runs of this study under `profile`."""
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; use one of {sorted(PROFILES)}")
        return self.make(profile)


def _seeds(profile: str, n: int) -> range:
    return range(1, (min(n, SMOKE_SEEDS) if profile == "smoke" else n) + 1)


def _pool(profile: str, n: int = SEEDS_POOL) -> list[GridItem]:
    # seed outer, loss inner: a sweep stopped early leaves matched Base/VML pairs, not one arm
    return [GridItem(profile_spec(profile, loss=loss, seed=s), {"pool": "seed-groups"}, keep_probs=True)
            for s in _seeds(profile, n) for loss in LOSSES]


def _sources(profile: str) -> list[GridItem]:
    items = []
    for vary in VARY:
        for s in _seeds(profile, SEEDS_PAPER):
            for loss in LOSSES:
                items.append(GridItem(profile_spec(profile, loss=loss, vary=vary, seed=s),
                                      keep_probs=vary == "all"))  # vary=all runs are also in the pool
    return items


def _arch_spec(profile: str, dataset: str, model: str, loss: str, seed: int) -> RunSpec:
    # one Table 2 cell's run: the network's profile settings; the smoke profile keeps its synthetic data
    over = dict(ARCH_SETTINGS[profile][model], model=model, loss=loss, seed=seed)
    if profile != "smoke":
        over["dataset"] = dataset
    return profile_spec(profile, **over)


def _architectures(profile: str) -> list[GridItem]:
    datasets = ("cifar10",) if profile == "smoke" else ("cifar10", "cifar100")  # smoke: synthetic only
    return [GridItem(_arch_spec(profile, dataset, model, loss, s))
            for dataset in datasets for model in ARCHITECTURES
            for s in _seeds(profile, SEEDS_PAPER) for loss in LOSSES]


def ablation_tag(prefix: str, value: float) -> str:
    """The paper's tag for a setting: SLA005 for α = 0.05, SLW200 for W = 200, SW010 for λ_base = 0.10."""
    return f"{prefix}{int(value)}" if prefix == "SLW" else f"{prefix}{round(value * 100):03d}"


def _ablations(profile: str) -> list[GridItem]:
    items = []
    for prefix, (knob, values) in ABLATIONS.items():
        for value in values:
            for s in _seeds(profile, SEEDS_PAPER):
                spec = profile_spec(profile, loss="vml", seed=s, vml={knob: value})
                items.append(GridItem(spec, {"knob": knob, "value": value, "tag": ablation_tag(prefix, value)},
                                      keep_probs=spec == profile_spec(profile, loss="vml", seed=s)))
    return items


def _vpl(profile: str) -> list[GridItem]:
    return [GridItem(profile_spec(profile, loss="vml", seed=s, vml={"vpl_weight": w}), {"vpl_weight": w},
                     keep_probs=w == 0.0)
            for w in (0.0, VPL_WEIGHT) for s in _seeds(profile, SEEDS_PAPER)]


REPLICATION_MODEL = "vgg16"  # the Table 2 network whose verdict went against VML (chapter 6)


def _replication(profile: str) -> list[GridItem]:
    # Table 2's CIFAR-10 cell for REPLICATION_MODEL on new seeds (6-10): does its verdict hold on fresh draws?
    first = SEEDS_PAPER + 1
    return [GridItem(_arch_spec(profile, "cifar10", REPLICATION_MODEL, loss, s))
            for s in range(first, first + len(_seeds(profile, SEEDS_PAPER))) for loss in LOSSES]


# The decisive test (chapter "The decisive test"): pre-registered before any of its runs was trained.
# Every number here is fixed in advance; n is not changed after looking at the data.
POWERED_MODEL = "resnet14"   # the paper's network, at its cpu Table 2 settings (where seed spread is real)
POWERED_N_SHORT = 50         # seeds per arm at the Table 2 length (seeds 1-5 are the stored Table 2 runs)
POWERED_N_LONG = 30          # seeds per arm at the long length
POWERED_EPOCHS_LONG = 15     # 1470 steps: 86% of them after sigma_ref latches at step 200 (W = 200)
POWERED_EPOCHS_LONG_ALT = 11  # the pilot's alternative (81% after the latch), see `long_epochs`
# The long arm's two lengths (the pilot's, and the rule's alternative) per profile, where they are not the
# cpu ones above. The gpu profile's Table 2 cell, and so its short arm, has 30 epochs, so the cpu lengths
# made its "long" arm the shorter one (15 or 11 epochs against 30). Fixed before any gpu run was trained
# (no gpu record existed; the gpu column was declared in e560e98, before any gpu run too): at gpu (and
# paper) the long arm is twice the short arm, or 1.5 times it when the pilot's Base spread is test-set
# noise; both stay longer than the short arm, as on cpu (15 and 11 against 5 epochs).
POWERED_EPOCHS_LONG_BY_PROFILE: dict[str, tuple[int, int]] = {"gpu": (60, 45), "paper": (400, 300)}
PILOT_SEEDS = (1, 2, 3, 4, 5)  # Base only, at the pilot's length (`long_arm_lengths`): no look at the VML arm
# The long arm's length per profile, set from that profile's stored pilot by `long_epochs` and committed
# before any other run of the long arm; until then the long arm's runs other than the pilot are held.
POWERED_EPOCHS_LONG_CHOSEN: dict[str, int] = {"cpu": 15}  # cpu: by the rule, on its stored pilot
HELD_FOR_PILOT = ("held until the pilot's choice of the long arm's length is committed "
                  "(studies.POWERED_EPOCHS_LONG_CHOSEN, by studies.long_epochs on the 5 pilot runs)")
# small-data, long-run protocol for Fig. 1 and a second variance test: the profile's network (cpu:
# FastNet) on a class-balanced 10% of CIFAR-10, batch 128 with the profile's lr scaled linearly (cpu:
# 0.8 at batch 512 -> 0.2), 40 epochs: 40 steps per epoch, 1600 steps, sigma_ref latched at step 200 =
# 12.5% of the run
SMALL_DATA = dict(train_subset=5000, batch_size=128, epochs=40)
SMALL_N = 20


def small_data_settings(profile: str) -> dict[str, Any]:
    """The small-data protocol's settings at `profile` (its lr: the profile's, scaled linearly to batch 128)."""
    base = PROFILES[profile]
    return dict(SMALL_DATA, lr=base["lr"] * SMALL_DATA["batch_size"] / base["batch_size"])


# the pilot rule's cut: a Base spread whose observed SD is at most this many times its test-set floor is
# mostly test-set noise (declared before the pilot)
NOISE_CUT = 1.25


def long_arm_lengths(profile: str = "cpu") -> tuple[int, int]:
    """The long arm's two candidate lengths at `profile`: the pilot's (POWERED_EPOCHS_LONG on cpu) and the
    rule's shorter alternative (POWERED_EPOCHS_LONG_ALT on cpu); `POWERED_EPOCHS_LONG_BY_PROFILE` elsewhere."""
    return POWERED_EPOCHS_LONG_BY_PROFILE.get(profile, (POWERED_EPOCHS_LONG, POWERED_EPOCHS_LONG_ALT))


def long_epochs(pilot_observed_sd: float | None = None, pilot_floor_sd: float | None = None,
                profile: str = "cpu") -> int:
    """The long arm's epoch count at `profile`, by the rule declared before the pilot: the pilot's length
    unless the pilot's Base spread is mostly test-set noise (observed SD <= NOISE_CUT x the
    independent-errors floor), in which case the shorter alternative, where more seed variance is left
    (`long_arm_lengths`: 15 or 11 epochs on cpu)."""
    length, alt = long_arm_lengths(profile)
    if pilot_observed_sd is None or pilot_floor_sd is None:
        return length
    return alt if pilot_observed_sd <= NOISE_CUT * pilot_floor_sd else length


def _powered(profile: str, epochs_long: int | None = None) -> list[GridItem]:
    """The pilot (Base, seeds 1-5, the pilot's length: `long_arm_lengths`), then the short arm, then the long
    arm at `epochs_long` (default: the profile's committed choice); while no length is chosen, the long arm
    is listed at the pilot's length and held, except for the pilot's runs. Seed outer, loss inner: a sweep
    stopped early leaves matched pairs."""
    epochs_long = epochs_long if epochs_long is not None else POWERED_EPOCHS_LONG_CHOSEN.get(profile)
    pilot_epochs = long_arm_lengths(profile)[0]
    n_short = SMOKE_SEEDS if profile == "smoke" else POWERED_N_SHORT
    n_long = SMOKE_SEEDS if profile == "smoke" else POWERED_N_LONG

    def spec(loss: str, seed: int, epochs: int | None = None) -> RunSpec:
        s = _arch_spec(profile, "cifar10", POWERED_MODEL, loss, seed)
        return s if epochs is None else s.replace(epochs=epochs)

    pilot = {spec("base", s, pilot_epochs).key() for s in PILOT_SEEDS if s <= n_long}

    def long_item(loss: str, seed: int) -> GridItem:
        sp = spec(loss, seed, epochs_long or pilot_epochs)
        is_pilot = sp.key() in pilot  # at the pilot's length, its runs are long-arm runs too
        return GridItem(sp, {"arm": "long", "pilot": is_pilot},
                        held="" if epochs_long is not None or is_pilot else HELD_FOR_PILOT)

    short = [GridItem(spec(loss, s), {"arm": "short"}) for s in range(1, n_short + 1) for loss in LOSSES]
    long = [long_item(loss, s) for s in range(1, n_long + 1) for loss in LOSSES]
    first = [i for i in long if i.tags["pilot"]]
    if not first:  # a length other than the pilot's was chosen: the pilot stays in the study, beside the arms
        first = [GridItem(spec("base", s, pilot_epochs), {"arm": "pilot", "pilot": True})
                 for s in PILOT_SEEDS if s <= n_long]
    return first + short + [i for i in long if not i.tags["pilot"]]


def _reactivity_long(profile: str) -> list[GridItem]:
    over = {} if profile == "smoke" else small_data_settings(profile)
    n = SMOKE_SEEDS if profile == "smoke" else SMALL_N
    return [GridItem(profile_spec(profile, loss=loss, seed=s, **over), {"arm": "small-data"}, keep_probs=True)
            for s in range(1, n + 1) for loss in LOSSES]


# The second test (chapter "The second test"): pre-registered before any of its runs was trained.
# Dose arms: VML on the powered short arm's protocol (ResNet-14 w0.25, 5 epochs) with λ_base and λ_max
# both multiplied by a dose k (so λ_t, and the gradient factor's excursion w·λ_t·ψ(δ_t), scale by k
# exactly), paired by seed with the stored Base runs (dose 0) and Table 5 VML runs (dose 1) of seeds 1-50.
# The doses are the whole multiples at which the stored Table 5 runs' post-latch mean |factor - 1| would
# be 10% and 30% (`analysis.second.dose_for`, from the controller series alone, no accuracy read).
SECOND_DOSES: tuple[int, ...] = (5, 15)
SECOND_N_DOSE = 50          # seed pairs per dose arm: the powered short arm's seeds 1-50
# The TTA arm: new seeds on the powered long arm's protocol (15 epochs), Base and VML (Table 5)
SECOND_TTA_SEEDS = range(31, 81)   # 50 per arm; seeds 1-30 are the long arm that found the lead


def dose_config(k: float) -> dict[str, float]:
    """The VML overrides of dose k: Table 5's λ_base and λ_max, each times k."""
    from .loss import VMLConfig
    c = VMLConfig()
    return {"lambda_base": round(c.lambda_base * k, 12), "lambda_max": round(c.lambda_max * k, 12)}


def _second(profile: str) -> list[GridItem]:
    """Dose arms first (seed outer, dose inner: a sweep stopped early leaves complete seed rows), then the
    TTA arm (seed outer, loss inner). The stored controls of the dose arms (Base = dose 0, Table 5 VML =
    dose 1) are listed too, so `status` counts them; their specs are the powered short arm's."""
    short = {(i.spec.loss, i.spec.seed): i.spec for i in _powered(profile) if i.tags["arm"] == "short"}
    n_dose = SMOKE_SEEDS if profile == "smoke" else SECOND_N_DOSE
    items = []
    for s in range(1, n_dose + 1):
        items.append(GridItem(short["base", s], {"arm": "dose", "dose": 0}))
        items.append(GridItem(short["vml", s], {"arm": "dose", "dose": 1}))
        items += [GridItem(short["vml", s].replace(vml=dose_config(k)), {"arm": "dose", "dose": k})
                  for k in SECOND_DOSES]
    long = next(i.spec for i in _powered(profile) if i.tags["arm"] == "long")
    seeds = SECOND_TTA_SEEDS[:SMOKE_SEEDS] if profile == "smoke" else SECOND_TTA_SEEDS
    items += [GridItem(long.replace(loss=loss, seed=s), {"arm": "tta", "dose": int(loss == "vml")})
              for s in seeds for loss in LOSSES]
    return items


# The machine check of the second test, declared after its dose arms' results were read (so it can explain
# them, never change their verdicts): the dose arms trained on one machine kind and their controls on
# another. Replica 1 (`RunSpec.replica`: the same run trained again) of Base and of dose MACHINE_CHECK_DOSE,
# seeds MACHINE_CHECK_SEEDS, seed outer, so that a seed's two replicas train side by side on one machine.
MACHINE_CHECK_DOSE = 5
MACHINE_CHECK_SEEDS = range(1, 31)


def _machine_check(profile: str) -> list[GridItem]:
    """Replica 1 of the dose arms' Base control and of dose MACHINE_CHECK_DOSE (`analysis.second.machine_check`)."""
    short = {(i.spec.loss, i.spec.seed): i.spec for i in _powered(profile) if i.tags["arm"] == "short"}
    seeds = list(MACHINE_CHECK_SEEDS)[:SMOKE_SEEDS] if profile == "smoke" else MACHINE_CHECK_SEEDS
    k = MACHINE_CHECK_DOSE
    return [item for s in seeds for item in (
        GridItem(short["base", s].replace(replica=1), {"arm": "machine-check", "dose": 0}),
        GridItem(short["vml", s].replace(vml=dose_config(k), replica=1), {"arm": "machine-check", "dose": k}))]


STUDIES: dict[str, Study] = {s.name: s for s in (
    Study("seed-groups", "Table 3, Fig. 2", _pool),
    Study("sources", "Table 1", _sources),
    Study("architectures", "Table 2", _architectures),
    Study("comparison", "Table 4", _pool),
    Study("reactivity", "Fig. 1", lambda p: [i for i in _pool(p) if i.spec.loss == "vml"]),
    Study("ablations", "Fig. 3", _ablations),
    Study("vpl", "ours (appendix A.1)", _vpl),
    Study("replication", "ours (Table 2, new seeds)", _replication),
    Study("powered", "ours (Table 2's ResNet-14, 50 + 30 seeds)", _powered),
    Study("reactivity-long", "Fig. 1 (ours: 40 epochs, 10% of the data)", _reactivity_long),
    Study("second-test", "ours (VML at stronger doses, paired; the TTA lead on new seeds)", _second),
    Study("machine-check", "ours (the second test's dose arms and controls trained again on one machine)",
          _machine_check),
)}


def get_study(name: str) -> Study:
    """The study called `name`."""
    if name not in STUDIES:
        raise ValueError(f"unknown study {name!r}; use one of {list(STUDIES)} or 'all'")
    return STUDIES[name]


def plan(names: list[str], profile: str) -> list[GridItem]:
    """The unique runs of the named studies, in order (a run shared by studies appears once)."""
    seen: dict[str, GridItem] = {}
    for name in (list(STUDIES) if names == ["all"] else names):
        for item in get_study(name).grid(profile):
            key = item.spec.key()
            if key not in seen:
                seen[key] = item
            else:  # keep the probabilities if one study needs them; held only if held in every study
                old = seen[key]
                seen[key] = replace(old, keep_probs=old.keep_probs or item.keep_probs,
                                    held=old.held if item.held else "")
    return list(seen.values())


# ---------------------------------------------------------------- selecting

def select_seeds(items: list[GridItem], seeds: Sequence[int] | None) -> list[GridItem]:
    """The items whose seed is in `seeds` (all items when None); a seed that no item has is an error."""
    if seeds is None:
        return items
    have = sorted({i.spec.seed for i in items})
    for s in seeds:
        if s not in have:
            raise ValueError(f"seed {s!r} is not in these studies; their seeds are {have}")
    return [i for i in items if i.spec.seed in set(seeds)]
