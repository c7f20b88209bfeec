"""One plain sentence for each technical term the window shows, used as its tooltip, so a
newcomer never meets a word like "imatrix" or "desc_act" without an explanation at hand."""

from __future__ import annotations

from PySide6.QtCore import QCoreApplication

TERMS = {
    "perplexity": "How surprised the model is by held-out text: lower is better; a small rise means slightly "
                  "worse wording.",
    "kl divergence": "How far the converted model's word predictions drift from the original's: 0 means identical.",
    "top-1": "How often the converted model's most likely next word is the same as the original's.",
    "flips": "How often, over the evaluation text, the converted model's most likely next word differs from the "
             "original's (1 minus top-1 agreement): lower is better.",
    "bits/weight": "Average storage per weight: 16 is the original half precision, about 4.5 is a typical "
                   "compressed model.",
    "imatrix": "Importance matrix: measures which weights matter most on sample text so that rounding spares "
               "them; better quality for the small GGUF types, at the cost of a calibration pass.",
    "group size": "How many weights share one scale (g64 = 64): smaller groups keep more detail and take "
                  "a little more space.",
    "desc_act": "GPTQ's act-order: quantizes the most active columns first; slightly better quality, slower "
                "on some runtimes.",
    "awq rounding": "How AWQ rounds its rescaled weights: with GPTQ's error correction (better quality, a little "
                    "slower) or to nearest after a clipping search (the original AWQ). The file is the same AWQ format.",
    "sym": "Symmetric rounding around zero: simpler and supported everywhere; asymmetric fits skewed weights better.",
    "calibration": "Sample text the method runs through the model to decide how to round; text the model wrote "
                   "itself works without any download.",
    "samples": "How many pieces of calibration text are used: more is steadier but slower.",
    "sequence length": "How many tokens each calibration piece holds.",
    "bits": "Bits per weight after conversion: fewer bits, smaller file, more quality loss.",
    "gguf type": "The llama.cpp storage type: Q8_0 is near-lossless, Q4_K_M is the usual balance, Q2_K is smallest.",
    "device": "Where the conversion computes: the CPU works everywhere; an NVIDIA GPU (CUDA) is much faster.",
    "context": "How many tokens of conversation the model can look at at once.",
    "ram to chat": "Memory needed to load the model and hold a conversation.",
    "system prompt": "Instructions the model reads before the conversation, such as a role or a style to keep.",
    "temperature": "Randomness of the answers: 0 always picks the likeliest word, 1 and above is more varied.",
    "max tokens": "The longest answer allowed, in tokens (about three quarters of a word each); a longer answer "
                  "is cut and marked.",
    "seed": "A number that makes a random answer repeatable; 'random' picks a new one each time.",
    "tok/s": "Tokens generated per second once the answer has started.",
    "evaluation speed": "Tokens per second the evaluation processed: a rough guide to how fast the model runs.",
    "report card": "A small file next to each output recording how it was made and how it scored.",
}


def tip(term: str) -> str:
    """The translated one-sentence explanation of `term` (a key of TERMS)."""
    return QCoreApplication.translate("Terms", TERMS[term.lower()])
