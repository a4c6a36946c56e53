"""The ``belle`` judge template sends the exact string BELLE's ChatGPT_Score.html sends.

The oracle below re-implements, from a reading of BELLE's ``getScore()`` JavaScript,
how the page concatenates the request: the class prompt found for the question's
class, then for generation / brainstorming / rewrite no standard answer, otherwise
``标准回答:`` and the standard answer, with its two-space and quote placement. It is
deliberately written as plain concatenation, independently of the template code.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml

from belle_kedro.common.config import build
from belle_kedro.datasets.eval_set import load_eval_set
from belle_kedro.datasets.judge_prompts import load_judge_prompts
from belle_kedro.pipelines.evaluate import judge as judging
from belle_kedro.pipelines.evaluate.judge import class_prompts_for
from belle_kedro.pipelines.evaluate.judge_settings import JudgeSettings
from tests.support.llm import judge_templates
from tests.support.project import REPO_ROOT, merged

# Lines in the shape of BELLE's eval_prompt.json (our own wording), spelled as BELLE
# spells its classes: "open QA" upper case, "closed\u00a0QA" with a NO-BREAK SPACE.
PROMPT_LINES = [
    {"class": "math", "prompt": "你是数学老师，判断模型回答对错，分数在0到1之间。请按照\"得分:\"这样的形式输出分数。"},
    {"class": "open QA", "prompt": "参考标准答案给模型回答打分，满分为1分。请按照\"得分:\"这样的形式输出分数。"},
    {"class": "closed\u00a0QA", "prompt": "依据问题给出的材料打分，满分为1分。请按照\"得分:\"这样的形式输出分数。"},
    {"class": "generation", "prompt": "评价生成内容是否通顺、真实，满分为1分。请按照\"得分:\"这样的形式输出分数。"},
    {"class": "brainstorming", "prompt": "评价想法是否有帮助，满分为1分。请按照\"得分:\"这样的形式输出分数 。"},
    {"class": "rewrite", "prompt": "评价改写是否满足指令，满分为1分。请按照\"得分:\"这样的形式输出分数 。"},
]  # fmt: skip
# Lines in the shape of BELLE's eval_set.json; open-ended classes carry std_answer too
# (BELLE's page ignores it), and "open qa" is lower case as in BELLE's file.
EVAL_LINES = [
    {"question": "计算 12 × 7 的结果。", "std_answer": "84", "class": "math"},
    {"question": "太阳系中最大的行星是哪一颗？", "std_answer": "木星。", "class": "open qa"},
    {"question": "根据下文回答：小明周二去了图书馆。问：小明哪天去的图书馆？", "std_answer": "周二", "class": "closed\u00a0qa"},
    {"question": "写一句描写秋天的诗。", "std_answer": "秋风扫落叶。", "class": "generation"},
    {"question": "列出三种周末放松的方法。", "std_answer": "", "class": "brainstorming"},
    {"question": "把“他很高兴”改写得更生动。", "std_answer": "他高兴得合不拢嘴。", "class": "rewrite"},
]  # fmt: skip
ANSWERS = [
    "84",
    "木星",
    "周二。",
    "金风送爽，\n落叶满阶。",
    "散步、读书、做饭",
    "他乐开了花。",
]


def belle_page_request(prompt_lines: list[dict], item: dict, user_answer: str) -> str:
    """What getScore() builds, with the eval set's and prompt file's class spellings folded."""

    def fold(name: str) -> str:
        return " ".join(name.replace("\u00a0", " ").lower().split())

    prompt = next(p for p in prompt_lines if fold(p["class"]) == fold(item["class"]))
    prompt = prompt["prompt"]
    if fold(item["class"]) in ["generation", "brainstorming", "rewrite"]:
        return (
            prompt + " " + item["question"] + "  模型回答： '" + user_answer
            + "'。请针对模型回答给出得分，顺便给出理由："
        )  # fmt: skip
    return (
        prompt + " " + item["question"] + " 标准回答:" + item["std_answer"]
        + "  模型回答：' " + user_answer + "'。请针对模型回答给出得分，顺便给出理由："
    )  # fmt: skip


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text(
        "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows),
        encoding="utf-8",
    )
    return path


def build_judge_requests(answers, class_prompts, judge: dict, judge_model: str):
    """The requests the judge node builds: the block's template file, its settings."""
    settings = build(JudgeSettings, judge, "evaluate.judge")
    template = judging.load_template(judge_templates(), settings.template)
    return judging.build_judge_requests(
        answers, class_prompts, template, settings, judge_model
    )


def belle_judge_params() -> dict:
    """The judge block the belle env runs with (base merged with conf/belle)."""

    def block(env: str) -> dict:
        text = (REPO_ROOT / "conf" / env / "parameters_evaluate.yml").read_text("utf-8")
        return yaml.safe_load(text)["evaluate"]["judge"]

    return merged(block("base"), block("belle"))


def test_belle_requests_equal_what_belles_page_sends(tmp_path: Path) -> None:
    eval_set = load_eval_set(write_jsonl(tmp_path / "eval_set.json", EVAL_LINES))
    prompts = load_judge_prompts(
        write_jsonl(tmp_path / "eval_prompt.json", PROMPT_LINES)
    )
    answers = eval_set.assign(
        question_id=[f"q{i}" for i in range(len(eval_set))],
        variant="v",
        answer=ANSWERS,
    )
    judge = belle_judge_params()
    requests = build_judge_requests(
        answers, class_prompts_for(answers, prompts), judge, "gpt-3.5-turbo"
    )
    assert len(requests) == len(EVAL_LINES) * judge["samples"]
    expected = [
        belle_page_request(PROMPT_LINES, item, answer)
        for item, answer in zip(EVAL_LINES, ANSWERS, strict=True)
    ]
    sent = [r.prompt for r in requests if r.meta["sample"] == 0]
    assert [s.encode("utf-8") for s in sent] == [e.encode("utf-8") for e in expected]
    # BELLE's std_answer for generation is in the file but never sent.
    assert "秋风扫落叶" not in sent[3] and "标准回答" not in sent[3]
    assert "标准回答:84  模型回答：' 84'。" in sent[0]


def test_belle_env_uses_belles_protocol() -> None:
    judge = belle_judge_params()
    assert judge["template"] == "belle"
    assert judge["system"] is None  # one user message
    assert judge["request_params"]["temperature"] == 0.0
    assert judge["backend"]["model"] == "gpt-3.5-turbo"


def test_ours_template_is_the_default_and_differs() -> None:
    text = (REPO_ROOT / "conf" / "base" / "parameters_evaluate.yml").read_text("utf-8")
    assert yaml.safe_load(text)["evaluate"]["judge"]["template"] == "ours"
    frame = pd.DataFrame(
        [{"question_id": "q", "variant": "v", "class": "math", "question": "1+1",
          "std_answer": "2", "answer": "2"}]
    )  # fmt: skip
    judge = merged(yaml.safe_load(text)["evaluate"]["judge"], {"samples": 1})
    (request,) = build_judge_requests(frame, {"math": "打分。得分:"}, judge, "m")
    assert request.prompt == "打分。得分:\n\n问题：1+1\n标准回答：2\n模型回答：2"
