"""Every derived figure of a results file, recomputed from the per-replicate values stored beside it.

`make report` (experiments/report.py) calls `recheck(results, source)` before it renders a page, and
refuses a file whose stored figures disagree with their own values, naming the first: a page can
never show a p-value, interval or Holm adjustment that the per-base values in its file do not give.
The rules go by the shape a figure is stored in, with minisub/stats.py's functions, the ones the
experiments used:
- a summary {"mean", "ci95", "n"} beside its values ("values", "per_model", an arm's "dlogp",
  smol's "per_animal", make gpt's ladder's "per_base"), an arm's "new_wording" beside
  "dlogp_new_wording", and an arm's "dlogp" against its replicates' records;
- "p_exact" beside values (the exact sign-flip test), a test {"difference", "p_exact", "p_t"}, and a
  family of tests with "p_holm" (Holm over their exact p; "rejects" at the pre-registered alpha);
- tests named "A_vs_B" in a "tests" dict, where A and B are arms with "dlogp" (beside the dict, in
  the arms it sits with, or in the results' arms of its variant): one-sided paired t-test, or
  two-sided against zero for "A_vs_zero";
- the specificity tests (make gpt's diagonal against the rest of the column, make grid's per
  cluster), make lora-rank's LoRA-minus-full gaps, signals' detector AUCs, entanglement and
  divergence summaries and its treatments against the untreated transfer, its defences on every question
  set (each transfer from its arms, the drop from the untreated one, the task-loss cost from the students'
  losses, the pre-registered family's p), the filters' pass rates, make gpt's ladder's
  dose-response and its graded teachers' rank correlations, its
  pre-registration v2 sequence (which steps ran and rejected, its H1 and dose values against the
  ladder's), make forks' per-pair contrasts, Holm over its fork points and its fixed sequence,
  and the "p" of a summary whose key says which test it is (`P_TESTS`).
A figure whose per-replicate values the file does not hold is not recomputed: make gpt's animal
matrix (`--take` leaves the per-option records out), make grid's sibling test (over teacher
labels), make domains' specificity summaries, signals' frequency-table permutation test.
"""

import math
import re

from experiments.core.analysis import arm_tests
from minisub.files import FileError
from minisub.stats import (differs_from_zero, holm, paired_greater, rank_correlation_greater, sign_flip_greater,
                           spearman, summary)

TOLERANCE = 1e-6  # relative and absolute: the toy stores per-model values to 6 decimals; all else agrees to ~1e-15


def one_sided(values: list[float]) -> float:
    """The one-sided t-test of mean(values) > 0: a paired test on the pairs' differences."""
    return paired_greater(values, [0.0] * len(values))


# The test behind a summary's "p", by the key the summary is stored under (its values beside it).
P_TESTS = {"teacher_minus_control": differs_from_zero, "positive_minus_control": one_sided, "transfer": one_sided,
           "other_categories": one_sided}
ARM_TEST = re.compile(r"(?P<a>\w+?)_vs_(?P<b>\w+)")


def replicate_values(node: dict) -> list[float] | None:
    """The per-replicate values a summary in `node` is computed from, or None if the node holds none."""
    for key in ("values", "per_model", "dlogp"):
        if isinstance(node.get(key), list):
            return node[key]
    values = node.get("values")
    if isinstance(values, dict) and values and all(isinstance(v, (int, float)) for v in values.values()):
        return list(values.values())  # pre-registration v2: one value per base or pair
    for key in ("per_base", "per_pair"):
        per_unit = node.get(key)
        if isinstance(per_unit, dict) and per_unit and all(isinstance(v, (int, float)) for v in per_unit.values()):
            return list(per_unit.values())  # make gpt's ladder: one value per base; make forks: per pair
    per_animal = node.get("per_animal")
    if isinstance(per_animal, dict) and per_animal:
        items = list(per_animal.values())
        if all(isinstance(v, (int, float)) for v in items):  # one value per animal
            return items
        if all(isinstance(v, list) for v in items):  # replicates per animal, pooled
            return [x for v in items for x in v]
        if all(isinstance(v, dict) and "shift" in v for v in items):  # an animal's mean over its replicates
            return [sum(v["shift"]) / len(v["shift"]) for v in items]
    return None


class Recheck:
    def __init__(self, results: dict, source: str):
        self.results, self.source, self.checked = results, source, 0

    def same(self, path: str, stored, recomputed) -> None:
        self.checked += 1
        if isinstance(recomputed, bool) or isinstance(stored, bool):
            agree = stored == recomputed
        else:
            agree = (math.isnan(stored) and math.isnan(recomputed)) or math.isclose(
                stored, recomputed, rel_tol=TOLERANCE, abs_tol=TOLERANCE)
        if not agree:
            raise FileError(f"{self.source}: {path} is {stored!r}, but the per-replicate values in the file give "
                            f"{recomputed!r}")

    def summary(self, path: str, node: dict, values: list[float]) -> None:
        for key, value in summary(values).items():
            if key in node:
                self.same(f"{path}.{key}", node[key], value)

    def walk(self, node, path: str = "results", parent: dict | None = None, key: str = "") -> None:
        if isinstance(node, list):
            for i, item in enumerate(node):
                self.walk(item, f"{path}[{i}]", parent, key)
            return
        if not isinstance(node, dict):
            return
        for name, value in node.items():  # the figures inside first: a test's own p is named before its family's
            self.walk(value, f"{path}.{name}", node, name)
        self.node(node, path, parent or {}, key)

    def node(self, node: dict, path: str, parent: dict, key: str) -> None:
        values = replicate_values(node)
        if values is not None and "mean" in node and "ci95" in node:
            self.summary(path, node, values)
        if values is not None and "p_exact" in node:
            self.same(f"{path}.p_exact", node["p_exact"], sign_flip_greater(values))
        if values is not None and "p" in node and (key in P_TESTS or "per_animal" in node):
            test = P_TESTS.get(key, sign_flip_greater)  # smol's summaries over animals are exact
            self.same(f"{path}.p", node["p"], test(values) if len(values) > 1 else float("nan"))
        if isinstance(node.get("dlogp_new_wording"), list) and "new_wording" in node:
            self.summary(f"{path}.new_wording", node["new_wording"], node["dlogp_new_wording"])
        if isinstance(node.get("dlogp"), list) and isinstance(node.get("replicates"), list):
            for i, (stored, record) in enumerate(zip(node["dlogp"], node["replicates"], strict=True)):
                self.same(f"{path}.dlogp[{i}]", stored, record["dlogp"])
        if isinstance(node.get("difference"), dict) and "p_exact" in node:
            differences = node["difference"]["values"]
            self.same(f"{path}.p_exact", node["p_exact"], sign_flip_greater(differences))
            self.same(f"{path}.p_t", node["p_t"], one_sided(differences))
        if node and all(isinstance(t, dict) and "p_holm" in t for t in node.values()):
            self.family(node, path, parent)
        if "diagonal" in node and "off_diagonal" in node:  # make gpt's specificity test of one animal
            gaps = [d - o for d, o in zip(node["diagonal"], node["off_diagonal"], strict=True)]
            self.summary(f"{path}.diagonal_minus_off", node["diagonal_minus_off"], gaps)
            self.same(f"{path}.diagonal_vs_off", node["diagonal_vs_off"],
                      paired_greater(node["diagonal"], node["off_diagonal"]))
        if isinstance(node.get("per_cluster"), dict):  # make grid's diagonal test over initializations
            gaps = list(node["per_cluster"].values())
            self.summary(f"{path}.diagonal_minus_off", node["diagonal_minus_off"], gaps)
            self.same(f"{path}.diagonal_vs_off", node["diagonal_vs_off"], one_sided(gaps))
            self.same(f"{path}.diagonal_vs_off_exact", node["diagonal_vs_off_exact"], sign_flip_greater(gaps))
        if isinstance(node.get("tests"), dict):
            self.arm_tests(node, path, parent)
        if isinstance(node.get("points"), dict) and "rho" in node:  # make gpt's graded teachers, per base
            for k, (steps, teacher, transfer) in enumerate(node["means"]):
                at = [points[k] for points in node["points"].values()]
                self.same(f"{path}.means[{k}] teacher", teacher, sum(p[1] for p in at) / len(at))
                self.same(f"{path}.means[{k}] transfer", transfer, sum(p[2] for p in at) / len(at))
            for base, points in node["points"].items():
                self.same(f"{path}.rho.per_base.{base}", node["rho"]["per_base"][base],
                          spearman([p[1] for p in points], [p[2] for p in points]))
        if "sequence" in node and "manipulation_checks" in node:
            self.sequence(node, path)
        if isinstance(node.get("fork_points"), list) and "sequence" in node:
            self.forks(node, path)
        if isinstance(node.get("dose"), dict) and "teacher" in node:  # make gpt's ladder: teacher against transfer
            teacher = list(node["teacher"]["per_base"].values())
            transfer = list(node["student_minus_control"]["per_base"].values())
            self.same(f"{path}.dose.rho", node["dose"]["rho"], spearman(teacher, transfer))
            self.same(f"{path}.dose.p", node["dose"]["p"], rank_correlation_greater(teacher, transfer))
        if isinstance(node.get("per_base"), list):
            self.per_base_summaries(node, path)
        if isinstance(node.get("per_base"), dict) and "kept_share" in node:  # a filter's pass rate per base
            shares = [info["kept"] / info["generated"] for info in node["per_base"].values()]
            self.summary(f"{path}.kept_share", node["kept_share"], shares)
        if isinstance(node.get("share_per_base"), list):  # signals' divergence positions
            for key, field in (("share_vs_base", "vs_base"), ("share_vs_other_teacher", "vs_other_teacher")):
                self.summary(f"{path}.{key}", node[key], [r[field] for r in node["share_per_base"]])
        if isinstance(node.get("treated"), dict) and "predicted" in node:
            self.defences(node, path)
        elif isinstance(node.get("treated"), dict) and "tests" in node:  # part 4's (its defences' sets: above)
            self.treatments(node, path)

    def sequence(self, v2: dict, path: str) -> None:
        """Pre-registration v2: the manipulation checks at its alpha, then each step of the fixed sequence run only
        after every earlier one rejected, on a rung whose check passed; H1 and dose from the ladder's values."""
        alpha, open_ = v2["alpha"], True
        for rung, check in v2["manipulation_checks"].items():
            self.same(f"{path}.manipulation_checks.{rung}.passes", check["passes"], check["p_exact"] <= alpha)
        for k, step in enumerate(v2["sequence"]):
            tested = open_ and v2["manipulation_checks"][step["rung"]]["passes"]
            self.same(f"{path}.sequence[{k}].tested", step["tested"], tested)
            self.same(f"{path}.sequence[{k}].rejects", step["rejects"], tested and step["p_exact"] <= alpha)
            open_ = step["rejects"]
            source = {"H1": ("ladder", step["rung"], "student_minus_control"),
                      "dose": ("dose", "rungs", step["rung"], "rho")}.get(step["test"])
            if source is not None and source[0] in self.results:
                node = self.results
                for part in source:
                    node = node[part]
                for unit, value in step["values"].items():
                    self.same(f"{path}.sequence[{k}].values.{unit}", value, node["per_base"][unit])

    def forks(self, results: dict, path: str) -> None:
        """make forks: each pair's share and sibling - unrelated from its arms, Holm over the fork points, and the
        fixed sequence from the latest point, each step tested only after every later point rejected."""
        points, alpha = results["fork_points"], results["preregistered"]["alpha"]
        for k, point in enumerate(points):
            for pair, value in point["sibling_minus_unrelated"]["per_pair"].items():
                self.same(f"{path}.fork_points[{k}].sibling_minus_unrelated.per_pair.{pair}", value,
                          point["sibling"]["per_pair"][pair] - point["unrelated"]["per_pair"][pair])
            for pair, value in point["share"]["per_pair"].items():
                self.same(f"{path}.fork_points[{k}].share.per_pair.{pair}", value,
                          point["sibling"]["per_pair"][pair] / point["self"]["per_pair"][pair])
        tests = [point["sibling_minus_unrelated"] for point in points]
        for k, (test, adjusted) in enumerate(zip(tests, holm([t["p_exact"] for t in tests]))):
            self.same(f"{path}.fork_points[{k}].sibling_minus_unrelated.p_holm", test["p_holm"], adjusted)
        by_point, open_ = {point["fork_point"]: point for point in points}, True
        for k, step in enumerate(sorted(results["sequence"], key=lambda s: -s["fork_point"])):
            self.same(f"{path}.sequence[{k}].p_exact", step["p_exact"],
                      by_point[step["fork_point"]]["sibling_minus_unrelated"]["p_exact"])
            self.same(f"{path}.sequence[{k}].tested", step["tested"], open_)
            self.same(f"{path}.sequence[{k}].rejects", step["rejects"], open_ and step["p_exact"] <= alpha)
            open_ = step["rejects"]

    def family(self, family: dict, path: str, parent: dict) -> None:
        """Holm over the family's exact p; rejections at the pre-registered alpha (stored beside the family, or the
        file's pre-registration's); LoRA settings minus full."""
        names = list(family)
        for name, adjusted in zip(names, holm([family[n]["p_exact"] for n in names])):
            self.same(f"{path}.{name}.p_holm", family[name]["p_holm"], adjusted)
            if "rejects" in family[name]:
                alpha = parent["alpha"] if "alpha" in parent else self.results["preregistered"]["alpha"]
                self.same(f"{path}.{name}.rejects", family[name]["rejects"], adjusted <= alpha)
        full = family.get("full", {}).get("values")
        for name, test in family.items():
            if "minus_full" in test:
                gap = [a - b for a, b in zip(test["values"], full, strict=True)]
                self.summary(f"{path}.{name}.minus_full", test["minus_full"], gap)
                self.same(f"{path}.{name}.minus_full.p_exact", test["minus_full"]["p_exact"], sign_flip_greater(gap))

    def arm(self, name: str, node: dict, parent: dict) -> list[float] | None:
        """The per-base shifts of arm `name` of a tests dict in `node`: beside it, in the arms it sits with, or
        in the results' arms of its variant; None where the file holds none."""
        variant_arms = self.results.get("arms", {}).get(node.get("variant"), {})
        for place in (node, node.get("arms", {}), parent.get("arms", {}), variant_arms):
            if isinstance(place, dict) and isinstance(place.get(name), dict) and "dlogp" in place[name]:
                return place[name]["dlogp"]
        return None

    def arm_tests(self, node: dict, path: str, parent: dict) -> None:
        tests, arms = node["tests"], node.get("arms")
        if isinstance(arms, dict) and arms and "student" not in arms:  # make gpt: tests and arms per variant
            for variant, by_variant in tests.items():
                recomputed = arm_tests(arms[variant])
                for name, p in by_variant.items():
                    self.same(f"{path}.tests.{variant}.{name}", p, recomputed[name])
            return
        for name, p in tests.items():
            m = ARM_TEST.fullmatch(name)
            if m is None or not isinstance(p, float):
                continue
            a = self.arm(m["a"], node, parent)
            if m["b"] == "zero" and a is not None:
                self.same(f"{path}.tests.{name}", p, differs_from_zero(a))
            elif a is not None and (b := self.arm(m["b"], node, parent)) is not None:
                self.same(f"{path}.tests.{name}", p, paired_greater(a, b))

    def treatments(self, node: dict, path: str) -> None:
        """Signals' treated students against the untreated transfer, and the divergence tests between treatments."""
        plain = node["untreated"]["transfer"]
        done = {name: t for name, t in node["treated"].items() if "transfer" in t}
        for name, t in done.items():
            where = f"{path}.treated.{name}"
            self.same(f"{where}.tests.below_untreated", t["tests"]["below_untreated"],
                      paired_greater(plain["values"], t["transfer"]["values"]))
            self.same(f"{where}.retained", t["retained"],
                      t["transfer"]["mean"] / plain["mean"] if plain["mean"] else float("nan"))
        pairs = {"divergent_only_above_random_only": ("divergent_only", "random_only"),
                 "divergent_masked_below_random_masked": ("random_masked", "divergent_masked"),
                 "first_block_above_last_block": ("first_block", "last_block")}
        for name, p in node.get("tests", {}).items():
            a, b = pairs[name]
            self.same(f"{path}.tests.{name}", p,
                      paired_greater(done[a]["transfer"]["values"], done[b]["transfer"]["values"]))

    def defences(self, node: dict, path: str) -> None:
        """Signals' defences, on every question set: each transfer from its student and control shifts, the drop
        from the untreated transfer and the transfer left; each task-loss cost from the students' losses; and the
        pre-registered family's p from the defences' own tests."""
        done = self.transfers(node, path)
        plain = node["untreated"]["price"]
        self.differences(f"{path}.untreated.price.task_loss_below_base", plain["task_loss_below_base"]["values"],
                         [b["task_loss"] for b in node["base_price"]], plain["task_loss"]["values"])
        for name, t in done.items():
            self.differences(f"{path}.treated.{name}.price.task_loss_cost", t["price"]["task_loss_cost"]["values"],
                             t["price"]["task_loss"]["values"], plain["task_loss"]["values"])
        for name, test in node["predicted"]["family"].items():
            self.same(f"{path}.predicted.family.{name}.p_exact", test["p_exact"],
                      done[name]["below_untreated"]["p_exact"])
        for rung, figures in node["question_sets"].items():
            self.transfers(figures, f"{path}.question_sets.{rung}")

    def transfers(self, node: dict, path: str) -> dict:
        """One question set's untreated and treated transfers, drops and transfers left; returns the defences that
        ran."""
        plain = node["untreated"]
        self.differences(f"{path}.untreated.transfer", plain["transfer"]["values"], plain["student"], plain["control"])
        done = {name: t for name, t in node["treated"].items() if "transfer" in t}
        for name, t in done.items():
            where = f"{path}.treated.{name}"
            self.differences(f"{where}.transfer", t["transfer"]["values"], t["student"], t["control"])
            self.differences(f"{where}.below_untreated", t["below_untreated"]["values"], plain["transfer"]["values"],
                             t["transfer"]["values"])
            self.same(f"{where}.transfer_left.mean", t["transfer_left"]["mean"],
                      t["transfer"]["mean"] / plain["transfer"]["mean"])
            self.same(f"{where}.transfer_left.ci95", t["transfer_left"]["ci95"],
                      t["transfer"]["ci95"] / abs(plain["transfer"]["mean"]))
        return done

    def differences(self, path: str, stored: list[float], a: list[float], b: list[float]) -> None:
        for i, (value, x, y) in enumerate(zip(stored, a, b, strict=True)):
            self.same(f"{path}.values[{i}]", value, x - y)

    def per_base_summaries(self, node: dict, path: str) -> None:
        """Signals' detector AUCs and entanglement figures, summarized from the per-base records beside them."""
        rows = node["per_base"]
        if isinstance(node.get("auc"), dict):
            aucs = [r if isinstance(r, (int, float)) else r["auc"] for r in rows]
            self.summary(f"{path}.auc", node["auc"], aucs)
            self.same(f"{path}.auc.p_vs_chance", node["auc"]["p_vs_chance"], differs_from_zero([a - 0.5 for a in aucs]))
        for key in ("balanced_accuracy", "overlap", "rho_shift_vs_frequency", "rho_shift_vs_teacher"):
            if isinstance(node.get(key), dict):
                values = [r[key] for r in rows]
                self.summary(f"{path}.{key}", node[key], values)
                if "p" in node[key]:
                    self.same(f"{path}.{key}.p", node[key]["p"], differs_from_zero(values))
        if isinstance(node.get("prompting"), dict):
            entangled, random = [r["prompting_entangled"] for r in rows], [r["prompting_random"] for r in rows]
            self.summary(f"{path}.prompting", node["prompting"], [e - r for e, r in zip(entangled, random)])
            self.same(f"{path}.prompting.p", node["prompting"]["p"], paired_greater(entangled, random))


def recheck(results: dict, source: str) -> int:
    """Recompute every derived figure of `results` that its per-replicate values give; a FileError names the first
    that disagrees. Returns how many figures were checked."""
    checker = Recheck(results, source)
    checker.walk(results)
    return checker.checked
