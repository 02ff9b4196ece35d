"""`make signals` end to end on the quick budget, on the cache the quick `make gpt` filled: every part
per base, nothing of make gpt's rebuilt, treated students that are what their treatment says."""

import json

import pytest
from conftest import QUICK, QUICK_CONFIG, stage_keys

from experiments.signals.experiment import SignalsConfig
from experiments.signals.experiment import main as signals_main
from minisub.config import quick_values

SIGNALS_QUICK = quick_values(SignalsConfig)


@pytest.fixture(scope="package")
def signals_run(quick_run):
    """`make signals --quick` on the cache the quick make gpt and make grid filled: its results."""
    out = quick_run[0]
    assert signals_main(["--quick", "--out", str(out / "signals"), "--cache", str(out / "cache")]) == 0
    return json.loads((out / "signals" / "results.json").read_text())


def test_signals_writes_every_part_per_base_and_builds_nothing_make_gpt_built(quick_run, signals_run):
    out, gpt, _ = quick_run
    r, n = signals_run, QUICK["bases"]
    assert {"icl", "detectors", "entanglement", "divergence", "defences", "machine", "precision"} <= set(r)
    for png in ("icl", "detectors", "entanglement", "divergence", "defences"):
        assert (out / "signals" / f"signals_{png}.png").read_bytes()[:4] == b"\x89PNG"
    assert [int(k) for k in r["icl"]["by_k"]] == SIGNALS_QUICK["icl_ks"]
    assert all(len(v["teacher_minus_control"]["values"]) == n for v in r["icl"]["by_k"].values())
    assert len(r["detectors"]["logistic"]["per_base"]) == len(r["entanglement"]["per_base"]) == n
    assert all(len(row["entangled"]) == SIGNALS_QUICK["entangled"] for row in r["entanglement"]["per_base"])
    # the untreated arms are make gpt's own students, read back from the cache
    hard = gpt["arms"]["hard_full"]
    untreated = [a - b for a, b in zip(hard["student"]["dlogp"], hard["control"]["dlogp"])]
    for part in ("divergence", "defences"):
        assert r[part]["untreated"]["transfer"]["values"] == pytest.approx(untreated)
        for name, t in r[part]["treated"].items():
            assert "unavailable" in t or t["transfer"]["n"] == n, name
    assert set(r["defences"]["treated"]) >= {"shuffle_within", "shuffle_across", "rerender", "drop_entangled",
                                             "greedy"} | {f"dilute_{x:g}" for x in SIGNALS_QUICK["dilutions"]}
    kinds = {name.split("-")[0] for name in r["built"]}
    assert not kinds & {"corpus", "base", "teacher", "student"}  # the zoo, teachers and students were reused
    assert kinds >= {"context", "treated"}


def test_treated_students_train_what_their_treatment_says(quick_run, signals_run):
    """Every treated student in the cache is an untreated design student plus one treatment, and the
    dilution's data is the teacher's with the control's numbers mixed in."""
    out = quick_run[0]
    keys = stage_keys(out, "treated")
    assert keys
    for key in keys.values():
        student, treatment = key["student"], key["treatment"]
        assert student["init"]["name"].startswith("main-") and not student["soft"]
        if treatment["data"] == "dilute":
            assert treatment["mix_with"]["writer"]["name"] == student["init"]["name"]  # the control's numbers
            assert student["data"]["writer"]["trait"] == QUICK_CONFIG.target
        if treatment["positions"] != "all":
            teacher, base = treatment["compare"]
            assert teacher["trait"] == QUICK_CONFIG.target and base["name"] == student["init"]["name"]


@pytest.mark.parametrize("argv, message", [
    (["--icl-ks", "0"], "--icl-ks must be at least 1"),
    (["--variant", "soft_magic"], "--variant must be one of"),
    (["--dilutions"], "--dilutions needs at least one value"),
    (["--permutations", "0"], "--permutations must be at least 1"),
    (["--dilutions", "0.5", "1.5"], "--dilutions must not exceed 1"),
])
def test_bad_signals_input_is_one_line_before_any_work(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        signals_main(argv + ["--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and not (tmp_path / "out").exists()
