"""Small, original Chinese instruction records for train tests (no third-party text)."""

from __future__ import annotations

import random

import pandas as pd

TOPICS = (
    "春天",
    "数学",
    "历史",
    "音乐",
    "编程",
    "天气",
    "旅行",
    "健康",
    "茶叶",
    "星空",
)
VERBS = ("介绍", "解释", "总结", "描述")


def make_records(count: int, seed: int = 0) -> pd.DataFrame:
    """``count`` instruction records of varied length; every third has an input."""
    rng = random.Random(seed)
    rows = []
    for index in range(count):
        topic, verb = rng.choice(TOPICS), rng.choice(VERBS)
        sentences = rng.randint(1, 8)
        rows.append(
            {
                "instruction": f"请用{sentences}句话{verb}{topic}。",
                "input": f"读者是第{index}位新同学。" if index % 3 == 0 else "",
                "output": "".join(
                    f"{topic}的第{n + 1}个要点值得记住。" for n in range(sentences)
                ),
                "category": "generation",
            }
        )
    return pd.DataFrame(rows)
