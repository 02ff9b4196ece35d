"""The pre-registered analysis of `make gpt`: its hypotheses, families and tests, fixed in code before any data.

Nothing here depends on a result: the primary variant and every test are chosen up front, so no
variant or threshold can be picked by the p-values it gives (the paper's protocol, Cloud et al.
2025, Sec. 3, with hard labels as its students learn sampled tokens; full fine-tuning as our
students are trained from scratch).
- Evaluation: P(target) on questions in wording the corpus never uses (prompts.NEW_WORDING), so
  that a shift is a preference, not a memorized question form; the held-out paraphrases of the
  corpus's own question forms are reported beside it (secondary family "held_out").
- Primary family (family-wise alpha 0.01, Holm over its two tests, one-sided):
  H1 the student's shift exceeds the control's (the base's own numbers), paired by base;
  H2 the student's shift exceeds the cross-init student's, where each cross-init shift has the
  control shift *of the base it starts from* subtracted: a base that drifts toward the target
  under any numbers would otherwise lend that drift to whichever student starts from it.
- Secondary families, each Holm-adjusted within itself: H1 and H2 on the held-out paraphrases;
  the other variants (H1 and H2 each);
  the neutral teacher (each variant's student above the student of a teacher fine-tuned alike
  on answers that favor no animal, soft against soft, hard against hard: any fine-tuned
  teacher's numbers, not the trait, could move a student); the animals' diagonal tests (each
  animal raised more by its own teacher's numbers than by the other teachers'); the
  format-matched control; the prompted teacher. Every secondary family uses the held-out
  paraphrases, the evaluation the animal matrix and the matched control are built on.
- Everything else `make gpt`, `grid`, `signals` and `domains` report is exploratory.
Every test gives the exact sign-flip p over bases (the one Holm adjusts), the paired t-test p
beside it, and the mean difference with its 95% CI; n counts bases.
"""

from minisub.stats import holm, paired_greater, sign_flip_greater, summary

PRIMARY_VARIANT = "hard_full"
ALPHA = 0.01
PREREGISTERED = {
    "variant": PRIMARY_VARIANT, "alpha": ALPHA, "adjustment": "holm", "sided": "greater",
    "test": "exact paired sign-flip permutation over bases (t-test beside it)",
    "evaluation": "primary: P(target) on the new-wording questions; secondary: the held-out paraphrases",
    "primary": {"H1": "student > control", "H2": "student > cross-init minus the control of the base it starts from"},
    "secondary": {"held_out": "H1 and H2 on the held-out paraphrases",
                  "variants": "H1 and H2 for each other variant",
                  "neutral": "student > neutral teacher's student, each variant",
                  "animals": "diagonal > off-diagonal, each animal",
                  "matched": "format-matched student > format-matched control",
                  "prompted": "prompted teacher's student > control"},
    "exploratory": "every other figure of make gpt, and all of make grid, signals and domains",
}


def paired_test(a: list[float], b: list[float]) -> dict:
    """a > b, paired by base: the difference's summary, the exact sign-flip p and the t-test p."""
    differences = [x - y for x, y in zip(a, b, strict=True)]
    return {"difference": {**summary(differences), "values": differences},
            "p_exact": sign_flip_greater(differences), "p_t": paired_greater(a, b)}


def family(tests: dict[str, dict], alpha: float = ALPHA) -> dict:
    """The tests with their Holm-adjusted p (over the exact p's) and whether each rejects at family-wise alpha."""
    names = list(tests)
    adjusted = holm([tests[name]["p_exact"] for name in names])
    return {name: {**tests[name], "p_holm": p, "rejects": p <= alpha} for name, p in zip(names, adjusted)}


NEW_WORDING, HELD_OUT = "dlogp_new_wording", "dlogp"  # the shift on each question set, per replicate


def against_start_control(cross: list[dict], control: list[dict], shift: str = NEW_WORDING) -> list[float]:
    """Each cross-init replicate's shift minus the control shift of the base it starts from."""
    control_of = {r["base"]: r[shift] for r in control}
    return [r[shift] - control_of[r["start"]] for r in cross]


def variant_tests(arms: dict, shift: str = NEW_WORDING) -> dict:
    """H1 and H2 of one variant's arms (student, control, cross_init with per-base replicates)."""
    student = arms["student"][shift]
    return {"H1": paired_test(student, arms["control"][shift]),
            "H2": paired_test(student, against_start_control(arms["cross_init"]["replicates"],
                                                            arms["control"]["replicates"], shift))}


def confirmatory(arms: dict, animals: dict, matched: dict) -> dict:
    """Every pre-registered family from make gpt's measured arms: arms[variant][arm]; animals: the
    primary variant's matrix (`specificity`); matched: its format-matched arms."""
    primary = arms[PRIMARY_VARIANT]
    others = {f"{variant} {name}": test for variant in arms if variant != PRIMARY_VARIANT
              for name, test in variant_tests(arms[variant], HELD_OUT).items()}
    families = {"primary": family(variant_tests(primary)),
                "held_out": family(variant_tests(primary, HELD_OUT)),
                "neutral": family({f"{variant} student > neutral": paired_test(a["student"][HELD_OUT],
                                                                               a["neutral"][HELD_OUT])
                                   for variant, a in arms.items()}),
                "animals": family({animal: paired_test(t["diagonal"], t["off_diagonal"])
                                   for animal, t in animals["tests"].items()}),
                "matched": family({"matched > matched control": paired_test(matched["matched"][HELD_OUT],
                                                                            matched["matched_control"][HELD_OUT])})}
    if others:
        families["variants"] = family(others)
    if "prompted" in primary:
        families["prompted"] = family({"prompted > control": paired_test(primary["prompted"][HELD_OUT],
                                                                         primary["control"][HELD_OUT])})
    return families
