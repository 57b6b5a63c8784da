"""Generate a tiny random-weight Llama that the CPU build of vLLM can serve (tests and the README demo).

Shape: hidden 128, 2 layers, 2 heads (head_dim 64: the CPU attention rejects 16), 1 KV head,
vocabulary 2048 from a byte-level BPE trained on a built-in text. About 2 MB, made in a second.
Needs ``transformers`` and ``tokenizers`` (both come with vLLM). Usage::

    python -m vlaunch.testing.tiny_model DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["make_tiny_model"]

_CORPUS = (
    "vlaunch starts vLLM's OpenAI-compatible server with tuned, reproducible settings. "
    "Data parallelism runs one engine per GPU; tensor parallelism splits one model over several. "
    "The quick brown fox jumps over the lazy dog. 0123456789 +-*/=()[]{}<>,.;:!?'\" "
) * 50


def make_tiny_model(path: str | Path, seed: int = 0) -> Path:
    """Write the model (config, bf16 safetensors, tokenizer) to ``path`` unless it is already there."""
    path = Path(path)
    if (path / "config.json").is_file() and (path / "tokenizer.json").is_file():
        return path
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(seed)
    raw = Tokenizer(models.BPE(unk_token=None))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=2048, special_tokens=["<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    raw.train_from_iterator([_CORPUS], trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<s>", eos_token="</s>")
    config = LlamaConfig(
        vocab_size=2048, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, head_dim=64, max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, torch_dtype="bfloat16",
    )
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m vlaunch.testing.tiny_model DIR")
    print(make_tiny_model(sys.argv[1]))
