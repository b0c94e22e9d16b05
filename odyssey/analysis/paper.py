"""The paper's own numbers (Greff et al. 2017, DESIGN §5), for the report's side-by-side tables.

Best-10 % means are read from the paper's Fig. 3 (about ± 0.1); "*" marks a significant
difference from V; fANOVA shares are those of its Fig. 5 (V only).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PaperTask:
    """One of the paper's data sets: its numbers and how our corpus differs from it."""

    dataset: str
    unit: str
    best10: dict[str, str]          # variant -> mean of the best 10 % ("*": differs from V)
    best_single: str
    shares: dict[str, str]          # term -> fraction of variance (Fig. 5)
    corpus_note: str


PAPER: dict[str, PaperTask] = {
    "speech": PaperTask(
        "TIMIT", "frame error, %",
        {"V": "29.8", "CIFG": "29.8", "FGR": "29.8", "NP": "30.3", "NOG": "30.7*",
         "NIAF": "30.9*", "NIG": "32.6*", "NFG": "34.2*", "NOAF": "> 35*"},
        "29.6 % (CIFG)",
        {"learning_rate": "67 %", "hidden_size": "10 %", "input_noise": "1 %",
         "one_minus_momentum": "< 1 %", "interactions": "20 %"},
        "the paper used TIMIT; this corpus is synthetic speech (flite), so absolute error "
        "rates are not comparable, only the ordering and the shares"),
    "handwriting": PaperTask(
        "IAM-OnDB", "character error rate, %",
        {"V": "10.6", "CIFG": "11.3", "FGR": "11.6", "NP": "10.2", "NOG": "12.4*",
         "NIAF": "12.9*", "NIG": "15.8*", "NFG": "27.7*", "NOAF": "> 30*"},
        "9.26 % (NP)",
        {"learning_rate": "89 %", "hidden_size": "2 %", "input_noise": "< 1 %",
         "one_minus_momentum": "< 1 %", "interactions": "7 %"},
        "the paper used IAM-OnDB; unless this sweep ran on IAM-OnDB, its corpus is synthetic "
        "handwriting, so absolute error rates are not comparable"),
    "music": PaperTask(
        "JSB Chorales", "NLL per time step",
        {"V": "8.55", "CIFG": "8.56", "FGR": "8.62*", "NP": "8.57", "NOG": "8.57",
         "NIAF": "8.52", "NIG": "8.52", "NFG": "8.60*", "NOAF": "> 8.85*"},
        "8.38 (NIAF)",
        {"learning_rate": "91 %", "hidden_size": "< 1 %", "input_noise": "2 %",
         "one_minus_momentum": "< 1 %", "interactions": "5 %"},
        "the paper used JSB Chorales; this corpus is the music21 Bach chorales (a different "
        "selection, split and transposition), so NLLs are close in kind but not equal"),
}
