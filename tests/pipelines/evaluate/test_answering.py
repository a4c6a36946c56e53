"""Answering: the reference NLL the offline score is built on."""

from __future__ import annotations

import math
from typing import Any

import pytest

from belle_kedro.pipelines.evaluate.answering import reference_nll


class _CharTokenizer:
    """A real (tiny) tokenizer: one id per character, so token counts are checkable."""

    pad_token_id = 0
    eos_token_id = 1

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}

    def _ids(self, text: str) -> list[int]:
        return [self.vocab.setdefault(ch, 2 + len(self.vocab) % 60) for ch in text]

    def __call__(self, text: str | list[str], **_: Any) -> dict[str, Any]:
        """One text's ids, or a list of texts' (as a transformers tokenizer answers)."""
        if isinstance(text, str):
            return {"input_ids": self._ids(text)}
        return {"input_ids": [self._ids(one) for one in text]}


def test_reference_nll_scores_only_reference_tokens() -> None:
    import torch
    from transformers import BloomConfig, BloomForCausalLM

    torch.manual_seed(0)
    model = BloomForCausalLM(
        BloomConfig(vocab_size=64, hidden_size=32, n_layer=1, n_head=2)
    )
    tokenizer = _CharTokenizer()
    prompts = ["问：一加一？答：", "问：天空什么颜色？答："]
    references = ["二", ""]
    batched = reference_nll(model, tokenizer, prompts, references, batch_size=2)
    assert batched[0][1] == 1 and batched[0][0] > 0
    assert batched[1] == (pytest.approx(math.nan, nan_ok=True), 0)

    # The reference's NLL does not depend on what else is in the batch (padding is masked).
    longer = reference_nll(
        model, tokenizer, [prompts[0], prompts[1] * 3], ["二", "蓝色"], batch_size=2
    )
    assert longer[0][0] == pytest.approx(batched[0][0], rel=1e-4)
    assert longer[1][1] == 2

    # the same number as the model's own loss with the prompt masked out of the labels
    prompt_ids = tokenizer(prompts[1] * 3)["input_ids"]
    reference_ids = tokenizer("蓝色")["input_ids"]
    with torch.no_grad():
        own = model(
            input_ids=torch.tensor([prompt_ids + reference_ids]),
            labels=torch.tensor([[-100] * len(prompt_ids) + reference_ids]),
        ).loss
    assert longer[1][0] / 2 == pytest.approx(float(own), rel=1e-4)


def _tiny_bloom():
    import torch
    from transformers import BloomConfig, BloomForCausalLM

    torch.manual_seed(0)
    return BloomForCausalLM(
        BloomConfig(vocab_size=64, hidden_size=32, n_layer=1, n_head=2)
    )


def test_a_lora_adapter_scores_references_like_its_merged_model() -> None:
    import torch
    from peft import LoraConfig, get_peft_model

    adapted = get_peft_model(
        _tiny_bloom(),
        LoraConfig(r=4, lora_alpha=8, target_modules=["query_key_value"]),
    )
    # A trained adapter is not the identity: give its B matrices weights.
    with torch.no_grad():
        for name, parameter in adapted.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=2.0)
    tokenizer = _CharTokenizer()
    prompts = ["问：一加一？答：", "问：天空什么颜色？答："]
    references = ["二", "蓝色"]
    from_adapter = reference_nll(adapted, tokenizer, prompts, references, batch_size=2)
    plain = reference_nll(_tiny_bloom(), tokenizer, prompts, references, batch_size=2)
    merged = adapted.merge_and_unload()
    from_merged = reference_nll(merged, tokenizer, prompts, references, batch_size=2)
    assert [tokens for _, tokens in from_adapter] == [1, 2]
    for (adapter_nll, _), (merged_nll, _), (plain_nll, _) in zip(
        from_adapter, from_merged, plain, strict=True
    ):
        assert adapter_nll == pytest.approx(merged_nll, rel=1e-4)
        assert abs(adapter_nll - plain_nll) > 1e-3  # the adapter's weights count


def test_the_model_is_placed_on_the_named_device_and_dtype() -> None:
    import torch

    from belle_kedro.pipelines.evaluate.answering import (
        model_device,
        place_model,
        resolve_device,
    )

    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    model = place_model(_tiny_bloom(), "auto", "bfloat16")
    assert model_device(model).type == expected and not model.training
    assert next(model.parameters()).dtype == torch.bfloat16
    # Scoring runs in the model's dtype and on its device; figures stay finite.
    nll = reference_nll(model, _CharTokenizer(), ["问：好？答："], ["好"], batch_size=1)
    assert math.isfinite(nll[0][0]) and nll[0][1] == 1
