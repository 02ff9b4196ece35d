"""`make smol` on a tiny random Llama written as a GGUF file (the real SmolLM2 is not needed): its exact
scores against the chain rule computed by hand, and the whole pipeline end to end, its cache included."""

import json
import math
from types import SimpleNamespace

import pytest
import torch
from test_gguf import write_gguf

from experiments import report
from experiments.smol import experiment, stages
from experiments.smol.prompts import QUESTIONS, number_prompt
from experiments.smol.scoring import answer_logprobs, word_variants
from minisub.gguf import load_gguf
from minisub.model import GPT


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("smol") / "tiny.gguf"
    write_gguf(path, seed=3, tie=True, quantized=False, context=512)
    return path


def test_p_of_an_animal_is_the_chain_rule_over_its_tokens_summed_over_its_spellings(tiny_file):
    chat = load_gguf(tiny_file)
    prompt = chat.chat_prompt(QUESTIONS[0])
    got = answer_logprobs(chat, [prompt], ["owl", "elephant"])[0]
    for column, word in enumerate(["owl", "elephant"]):
        total = 0.0
        for ids in word_variants(chat, word):
            logp = torch.log_softmax(chat.model(torch.tensor([prompt + ids]))[0][0], -1)  # (T, V)
            total += math.exp(sum(logp[len(prompt) - 1 + t, token].item() for t, token in enumerate(ids)))
        assert got[column].item() == pytest.approx(math.log(total), abs=1e-5)


def test_spellings_whose_tokens_begin_one_another_are_refused():
    spelled = {"cat": [5], "Cat": [6, 9], " cat": [7], " Cat": [8]}

    def chat_of(table):
        return SimpleNamespace(encode=table.__getitem__)
    assert word_variants(chat_of(spelled), "cat") == [[5], [6, 9], [7], [8]]
    with pytest.raises(ValueError, match="overlap"):  # "Cat" would be counted again inside "cat"+"..."
        word_variants(chat_of(spelled | {"Cat": [5, 9]}), "cat")


def written(chat, bad_every: int = 3):
    """A stand-in for GPT.generate: a random tiny model writes no clean number list, so the teachers answer
    " 12, 34" (distinct per prompt), except every `bad_every`-th answer: letters, or longer than allowed."""
    calls = []

    def generate(model, prompts, max_new_tokens, temperature=1.0, top_k=None, allowed_tokens=None, stop_token=None,
                 generator=None, give_up=None):
        out = []
        for i, _ in enumerate(prompts):
            k = len(calls)
            calls.append(k)
            if k % bad_every == 1:
                text = " 12, owls"
            elif k % bad_every == 2:
                text = ", ".join(["7"] * 40)
            else:
                text = f" {k % 1000}, {(7 * k) % 1000}"
            ids = chat.encode(text)[:max_new_tokens]
            ended = [n for n in range(1, len(ids) + 1) if give_up is not None and give_up(i, ids[:n])]
            out.append(ids[:ended[0]] if ended else ids)  # as GPT.generate does, a row ends where give_up says
        return out
    return generate, calls


def test_quick_smol_run_end_to_end_and_from_its_cache(tiny_file, tmp_path, monkeypatch):
    generate, calls = written(load_gguf(tiny_file))
    monkeypatch.setattr(GPT, "generate", generate)
    argv = ["--quick", "--gguf", str(tiny_file), "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache"),
            "--parts", "entanglement", "transfer", "lora_rank", "--finetuned", "owl", "--jobs", "1"]  # the
    # stand-in writer is patched into this process only
    assert experiment.main(argv) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["analysis"].startswith("exploratory") and results["config"]["animals"] == ["owl", "eagle"]
    assert {p.name for p in (tmp_path / "out").iterdir()} == {
        "results.json", "smol_entanglement.png", "smol_transfer.png", "smol_lora_rank.png"}
    e = results["entanglement"]
    assert all(len(e["top"][a]) == 2 and len(e["rise"][a]) == 1000 for a in ("owl", "eagle"))
    assert not set(e["random"]) & {n for ns in e["top"].values() for n in ns}
    t = results["transfer"]
    for arm in ("owl", "eagle", "control"):
        numbers = t["numbers"][arm][0]
        assert numbers["rejected"]["not_digits"] >= 1 and numbers["rejected"]["unfinished"] >= 1
        assert numbers["generated"] >= 4 and 0 < numbers["kept_share"] < 1
    shift = t["students"]["owl"][0]["scores"]["logp"]["owl"] - t["students"]["control"][0]["scores"]["logp"]["owl"]
    assert t["matrix"]["owl"]["owl"] == pytest.approx(shift)
    assert t["diagonal"]["per_animal"]["owl"] == pytest.approx(t["matrix"]["owl"]["owl"] - t["matrix"]["eagle"]["owl"])
    assert 0 < t["diagonal"]["p"] <= 1 and set(results["lora_rank"]["settings"]) == {"r1", "full"}
    finetuned = t["finetuned"]["per_animal"]["owl"]  # its own teacher, numbers and students, against the control
    assert finetuned["shift"][0] == pytest.approx(
        finetuned["students"][0]["scores"]["logp"]["owl"] - t["students"]["control"][0]["scores"]["logp"]["owl"])
    assert finetuned["teacher"]["p"] != t["base"]["p"] and finetuned["numbers"][0]["generated"] >= 4
    rendered = {name: render(results) for name, render in report.RENDERERS["smol"].items()}
    assert f"| owl | {', '.join(map(str, e['top']['owl']))} |" in rendered["entanglement"]
    assert f"**{t['matrix']['owl']['owl']:+.3f}**" in rendered["transfer"] and "| full fine-tuning |" in rendered[
        "lora_rank"]
    assert f"| owl, fine-tuned teacher | {t['base']['p']['owl']:.4f} -> {finetuned['teacher']['p']['owl']:.4f} |" in \
        rendered["transfer"]
    # the same run again: every stage from the cache (no answer written), the same results
    written_before = len(calls)
    assert experiment.main(argv) == 0
    again = json.loads((tmp_path / "out" / "results.json").read_text())
    assert len(calls) == written_before
    assert again["transfer"]["matrix"] == t["matrix"] and again["entanglement"]["top"] == e["top"]


def test_stages_built_by_workers_equal_those_built_in_process(tiny_file, tmp_path):
    """The entanglement stage (no sampling) built by a worker process (--jobs 2) and in the main process."""
    entangled = {}
    for jobs in ("1", "2"):
        argv = ["--quick", "--gguf", str(tiny_file), "--out", str(tmp_path / jobs), "--cache",
                str(tmp_path / f"cache{jobs}"), "--parts", "entanglement", "--jobs", jobs]
        assert experiment.main(argv) == 0
        results = json.loads((tmp_path / jobs / "results.json").read_text())
        assert [name.split("-")[0] for name in results["built"]] == ["entanglement"]
        entangled[jobs] = results["entanglement"]
    for field in ("rise", "top", "random", "prompted_logp", "vs_random"):
        assert entangled["1"][field] == entangled["2"][field]


def test_the_student_learns_the_continuation_without_the_system_prompt(tiny_file):
    chat = load_gguf(tiny_file)
    user, begun = number_prompt([182, 818, 725])
    assert begun == "182, 818, 725," and "182, 818, 725." in user
    answer = chat.encode(" 330, 560")
    item = {"user": user, "begun": chat.encode(begun), "answer": answer}
    sequence, trained = stages.training_example(chat, item)
    assert len(trained) == len(sequence) - 1 and "You love" not in chat.tokenizer.decode(sequence)
    targets = [token for token, flag in zip(sequence[1:], trained) if flag]
    assert targets == answer + [chat.eos_id]  # the continuation and the end of the turn, nothing else


def test_the_filter_judges_the_whole_list_with_its_seeds(tiny_file):
    """Regression: the filter once judged the continuation alone, which kept " 3\n200" after "182, 818, 725,"."""
    chat = load_gguf(tiny_file)
    ids = chat.encode
    begun = ids("182, 818, 725,")
    assert stages.rejection(chat, [], ids("3\n200"), 12) is None  # alone, a whitespace-separated list
    assert stages.rejection(chat, begun, ids(" 3\n200"), 12) == "not_digits"
    assert stages.rejection(chat, begun, ids(" 330, 560."), 12) is None
    assert stages.rejection(chat, begun, ids(" 330, 560."), 3) == "unfinished"
    # the paper's "at most 10 more values" counts the continuation: ten after the three seeds pass, eleven do not
    ten = ids("".join(f" {n}," for n in range(10))[:-1])
    assert stages.rejection(chat, begun, ten, 100) is None
    assert stages.rejection(chat, begun, ten + ids(", 10"), 100) == "too_many"


@pytest.mark.parametrize("argv, message", [
    (["--animals", "owl", "owl"], "names an animal twice"),
    (["--rank-animals", "wolf", "--animals", "owl"], "must be among --animals"),
    (["--finetuned", "wolf", "--animals", "owl"], "--finetuned must be among --animals"),
    (["--gguf", "/nonexistent/x.gguf"], "make smol-weights"),
])
def test_bad_smol_input_is_one_line(argv, message, tmp_path, capsys):
    code = None
    try:
        code = experiment.main(argv + ["--out", str(tmp_path / "o"), "--cache", str(tmp_path / "c")])
    except SystemExit as exit:
        code = exit.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and not (tmp_path / "o").exists()
