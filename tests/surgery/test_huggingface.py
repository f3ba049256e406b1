"""compress on Hugging Face models built from small configs (random weights, nothing downloaded)."""

from __future__ import annotations

import fnmatch

import pytest
import torch
from torch import nn

import tnlayers

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.huggingface

VOCAB = 64
TOKENS = {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0}


def _gpt2() -> nn.Module:
    config = transformers.GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=VOCAB,
                                     n_positions=32, **TOKENS)  # fmt: skip
    return transformers.GPT2LMHeadModel(config)


def _bert() -> nn.Module:
    config = transformers.BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, vocab_size=VOCAB,
                                     max_position_embeddings=32, pad_token_id=0)  # fmt: skip
    return transformers.BertForMaskedLM(config)


def _vit() -> nn.Module:
    config = transformers.ViTConfig(image_size=16, patch_size=8, hidden_size=32,
                                    num_hidden_layers=2, num_attention_heads=2,
                                    intermediate_size=64, num_labels=3)  # fmt: skip
    return transformers.ViTForImageClassification(config)


def _llama() -> nn.Module:
    config = transformers.LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=2, num_key_value_heads=1,
                                      vocab_size=VOCAB, max_position_embeddings=32,
                                      **TOKENS)  # fmt: skip
    return transformers.LlamaForCausalLM(config)


MODELS = {"gpt2": _gpt2, "bert": _bert, "vit": _vit, "llama": _llama}
CAUSAL = ("gpt2", "llama")


def _build(name: str) -> nn.Module:
    torch.manual_seed(0)
    return MODELS[name]().double().eval()


def _inputs(name: str) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    if name == "vit":
        pixels = torch.randn(2, 3, 16, 16, dtype=torch.float64, generator=generator)
        return {"pixel_values": pixels, "labels": torch.tensor([0, 2])}
    ids = torch.randint(3, VOCAB, (2, 10), generator=generator)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}


def _weight_layers(model: nn.Module) -> dict[str, tuple[int, int]]:
    """Every Linear, Conv2d and Conv1D of the model with its (out, in) matrix shape."""
    layers = {}
    for path, module in model.named_modules(remove_duplicate=False):
        if isinstance(module, nn.Linear):
            layers[path] = tuple(module.weight.shape)
        elif isinstance(module, nn.Conv2d):
            layers[path] = (module.out_channels, module.weight[0].numel())
        elif type(module).__name__ == "Conv1D":
            layers[path] = (module.weight.shape[1], module.weight.shape[0])
    return layers


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize(("method", "settings"), [("low_rank", {"rank": 10_000}),
                                                  ("mpo", {"max_bond": 10_000})])  # fmt: skip
def test_full_size_compression_keeps_the_logits(name, method, settings) -> None:
    model = _build(name)
    new, report = tnlayers.compress(model, method, **settings, only_if_smaller=False)
    inputs = _inputs(name)
    with torch.no_grad():
        expected, got = model(**inputs).logits, new(**inputs).logits
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-8)
    # The report lists every projection with its shape; tied heads are kept, with the reason.
    layers = _weight_layers(model)
    listed = {r.name: r.shape for r in report.layers}
    kept = {s.name: s.shape for s in report.skipped}
    assert listed.keys() | kept.keys() == layers.keys()
    assert {**listed, **kept} == layers
    assert all("tied" in s.reason for s in report.skipped)
    assert any(fnmatch.fnmatch(n, "*attn*") or fnmatch.fnmatch(n, "*attention*") for n in listed)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize(
    ("method", "settings"),
    [
        ("low_rank", {"param_ratio": 0.5}),
        ("mpo", {"max_bond": 3}),
        ("kronecker", {"terms": 2}),
        ("auto", {"total_param_ratio": 0.7}),
        ("network", {"network": lambda i, o: tnlayers.btt(i, o, 2)}),
    ],
    ids=["low_rank", "mpo", "kronecker", "auto-budget", "btt-network"],
)
def test_every_method_trains_generates_and_restores(name, method, settings) -> None:
    model = _build(name)
    options = dict(settings) if method == "network" else {"method": method, **settings}
    new, report = tnlayers.compress(model, **options)
    assert report.layers
    if report.budget is not None:
        assert report.budget.achieved_ratio <= 0.7
    inputs = _inputs(name)
    new.train()
    loss = new(**inputs).loss
    assert torch.isfinite(loss)
    loss.backward()
    trained = [p for p in new.parameters() if p.requires_grad]
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in trained)
    new.eval()
    if name in CAUSAL:
        prompt = inputs["input_ids"][:, :4]
        out = new.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=5,
                           do_sample=False)  # fmt: skip
        assert out.shape == (2, 9) and torch.equal(out[:, :4], prompt)
    # The checkpoint reloads into a freshly built model, without the trained weights.
    skeleton = tnlayers.restore(_build(name), report.to_json())
    skeleton.load_state_dict(new.state_dict(), strict=True)
    skeleton.eval()
    with torch.no_grad():
        inference = {k: v for k, v in inputs.items() if k != "labels"}
        torch.testing.assert_close(skeleton(**inference).logits, new(**inference).logits,
                                   rtol=0, atol=0)  # fmt: skip
