"""Answering the eval set: the registered model, its answers, and its NLL of each reference.

The model is loaded once per variant and used for both: batched greedy (or sampled)
generation through the shared template, and the summed negative log-likelihood of each
standard answer given its prompt. Questions are processed in length order so a batch
wastes little on padding; results go back in eval-set order.

The model runs on ``evaluate.generation.device`` (``auto``: the GPU when there is one)
in ``evaluate.generation.dtype``, and every tensor it meets is built on that device. A
LoRA adapter (a ``PeftModel``) answers and scores exactly like a merged model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import mlflow
import pandas as pd
import torch
from tqdm.auto import tqdm

from belle_kedro.common.template import IGNORE_INDEX, build_prompt, encode_example
from belle_kedro.pipelines.evaluate.settings import GenerationSettings

# At or below this temperature sampling is indistinguishable from argmax, so decode
# greedily (BELLE's evals used 0.001) and make answers exactly reproducible.
GREEDY_BELOW_TEMPERATURE = 0.01


def resolve_device(device: str) -> torch.device:
    """``auto`` -> the current CUDA device when there is one, else the CPU; or as named."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def model_device(model: Any) -> torch.device:
    """Where the model's weights are (works for plain and peft models alike)."""
    return next(model.parameters()).device


def place_model(model: Any, device: str, dtype: str) -> Any:
    """The model in eval mode on ``device`` (see :func:`resolve_device`) in ``dtype``."""
    return model.to(device=resolve_device(device), dtype=getattr(torch, dtype)).eval()


def load_registered_model(model_uri: str, device: str, dtype: str) -> tuple[Any, Any]:
    """The registered model's ``(model, tokenizer)``, placed by :func:`place_model`.

    MLflow hands the components back on the CPU; 7B weights are then moved once.
    """
    components: Mapping[str, Any] = mlflow.transformers.load_model(
        model_uri, return_type="components"
    )
    tokenizer = components["tokenizer"]
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return place_model(components["model"], device, dtype), tokenizer


def _scoring_parts(model: Any) -> tuple[Any, Any]:
    """The transformer body and output projection of a causal LM, or of a peft model's.

    A ``PeftModel``'s ``base_model`` is its tuner, not the transformer body; the causal
    LM under it (with the adapter's layers in place) is ``get_base_model()``.
    """
    causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    return causal_lm.base_model, causal_lm.get_output_embeddings()


@torch.inference_mode()
def generate_answers(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    batch_size: int,
    temperature: float,
    top_p: float,
    progress: str | None = None,
) -> list[str]:
    """Continue each already-templated prompt; returns only the new text, in order.

    Prompts must come from :func:`belle_kedro.common.template.build_prompt`. They are
    tokenised exactly as in training (no special tokens added) and left-padded so every
    answer starts right after its own prompt. Decoding is greedy at or below
    :data:`GREEDY_BELOW_TEMPERATURE`.
    """
    sampling = (
        {"do_sample": True, "temperature": temperature, "top_p": top_p}
        if temperature > GREEDY_BELOW_TEMPERATURE
        else {"do_sample": False}
    )
    model.eval()
    previous_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    answers: list[str] = []
    try:
        starts = range(0, len(prompts), batch_size)
        for start in tqdm(
            starts, desc=progress or "generate", disable=progress is None
        ):
            batch = list(prompts[start : start + batch_size])
            encoded = tokenizer(
                batch, return_tensors="pt", padding=True, add_special_tokens=False
            )
            encoded = {
                key: value.to(model_device(model)) for key, value in encoded.items()
            }
            output = model.generate(
                **encoded,
                max_new_tokens=max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
                **sampling,
            )
            new_tokens = output[:, encoded["input_ids"].shape[1] :]
            answers.extend(
                text.strip()
                for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
            )
    finally:
        tokenizer.padding_side = previous_side
    return answers


def reference_nll(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    references: Sequence[str],
    *,
    batch_size: int,
) -> list[tuple[float, int]]:
    """Summed negative log-likelihood of each reference given its prompt, and its token count.

    Only the reference tokens are scored (the prompt is context, as in SFT), and only
    their positions go through the output projection (``base_model`` hidden states, then
    the output embeddings), so long prompts cost no vocabulary-sized logits. Returns
    ``(nan, 0)`` for an empty reference. Perplexity is ``exp(sum_nll / tokens)``; keep
    the sums so a class or variant perplexity is pooled over tokens, not averaged.
    """
    results: list[tuple[float, int]] = [(math.nan, 0)] * len(prompts)
    scored = [
        i for i, reference in enumerate(references) if reference and reference.strip()
    ]
    pad_id = (
        tokenizer.pad_token_id
        if tokenizer.pad_token_id is not None
        else tokenizer.eos_token_id
    )
    model.eval()
    device = model_device(model)
    body, output_projection = _scoring_parts(model)
    for start in range(0, len(scored), batch_size):
        batch = scored[start : start + batch_size]
        encoded = [
            encode_example(
                tokenizer, prompts[i], references[i].strip(), end_with_eos=False
            )
            for i in batch
        ]
        width = max(len(ids) for ids, _ in encoded)
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        label_ids = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, (ids, target) in enumerate(encoded):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            label_ids[row, : len(ids)] = torch.tensor(target)
            attention[row, : len(ids)] = 1
        # position t predicts token t + 1; only reference positions need the vocabulary
        # projection, which is most of the cost with a large vocabulary and long prompts.
        input_ids, label_ids, attention = (
            tensor.to(device) for tensor in (input_ids, label_ids, attention)
        )
        mask = label_ids[:, 1:] != IGNORE_INDEX
        with torch.no_grad():
            hidden = body(
                input_ids=input_ids, attention_mask=attention
            ).last_hidden_state
            logits = output_projection(hidden[:, :-1][mask]).float()
            token_nll = torch.nn.functional.cross_entropy(
                logits, label_ids[:, 1:][mask], reduction="none"
            )
        counts = mask.sum(dim=1).tolist()
        for i, row_nll in zip(batch, torch.split(token_nll, counts), strict=True):
            tokens = int(row_nll.numel())
            results[i] = (float(row_nll.sum()), tokens) if tokens else (math.nan, 0)
    return results


def answer_in_length_order(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    references: Sequence[str],
    generation: GenerationSettings,
    *,
    progress: str,
) -> tuple[list[str], list[tuple[float, int]]]:
    """Answers and reference NLLs for every prompt, computed in length order.

    ``generation.seed`` fixes any sampling.
    """
    order = sorted(
        range(len(prompts)), key=lambda i: len(prompts[i]) + len(references[i])
    )
    torch.manual_seed(generation.seed)
    sorted_answers = generate_answers(
        model,
        tokenizer,
        [prompts[i] for i in order],
        max_new_tokens=generation.max_new_tokens,
        batch_size=generation.batch_size,
        temperature=generation.temperature,
        top_p=generation.top_p,
        progress=progress,
    )
    sorted_nll = reference_nll(
        model,
        tokenizer,
        [prompts[i] for i in order],
        [references[i] for i in order],
        batch_size=generation.batch_size,
    )
    answers: list[str] = [""] * len(prompts)
    nll: list[tuple[float, int]] = [(math.nan, 0)] * len(prompts)
    for position, i in enumerate(order):
        answers[i] = sorted_answers[position]
        nll[i] = sorted_nll[position]
    return answers, nll


def answer_questions(
    questions: pd.DataFrame,
    model_version: Mapping[str, Any],
    generation: GenerationSettings,
) -> pd.DataFrame:
    """The registered model's answers through the shared template, plus its NLL on each std answer.

    Loads ``model_version["model_uri"]`` from the MLflow registry once, and uses it to
    answer (greedy when the temperature is ~0) and to score the standard answers. The
    rows are ``questions`` with the answer, the NLL and the model's identity added.
    """
    model, tokenizer = load_registered_model(
        str(model_version["model_uri"]),
        device=generation.device,
        dtype=generation.dtype,
    )
    answers, nll = answer_in_length_order(
        model,
        tokenizer,
        [build_prompt(question) for question in questions["question"]],
        questions["std_answer"].tolist(),
        generation,
        progress=f"answer {model_version['variant']}",
    )
    result = questions.copy()
    result["answer"] = answers
    result["reference_nll"] = [value for value, _ in nll]
    result["reference_tokens"] = [tokens for _, tokens in nll]
    result["variant"] = str(model_version["variant"])
    result["train_size"] = int(model_version["train_size"])
    result["registered_model_name"] = str(model_version["registered_model_name"])
    result["model_version"] = str(model_version["version"])
    result["model_uri"] = str(model_version["model_uri"])
    result["temperature"] = generation.temperature
    return result
