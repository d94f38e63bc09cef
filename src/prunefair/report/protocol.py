"""The report's "What was done" section: the study's protocol in words, from its config alone, and the words the
rest of the page uses (sparsity, dense, one-shot, the methods' short names, θ* and θ̄), for a reader who has not
read the paper."""

from __future__ import annotations

from prunefair.report.html import Html, esc, para, section

# one line a method: what it optimises, and whose it is (docs/mitigation.md has the details)
METHODS = {
    "nft": "plain fine-tuning: cross-entropy only, no fairness term (the paper's baseline)",
    "el": "equal loss (Tran et al., NeurIPS 2022): fine-tuning under the constraints J_a = J (each group's loss "
          "equal to the overall loss), a Lagrange multiplier a group, one dual step an epoch",
    "el_rb": "equal loss with the dual step taken every mini-batch from per-group replay buffers",
    "ceag": "constrained excess accuracy gap (Balancing Act, Hashemizadeh et al., ICLR 2024): fine-tuning under "
            "ψ_a ≤ ε, each group's accuracy drop at most ε beyond the overall drop",
    "vkd": "prunefair's own: distillation from the dense model plus multipliers stepped on the validation split's "
           "ψ_a (held-out data, so the constraint aims at what generalises)",
}

_SCHEDULE = {"oneshot": "in one step", "gradual": "gradually during fine-tuning",
             "iterative": "in {rounds} rounds of pruning and fine-tuning"}
_CRITERION = {"magnitude": "the smallest-magnitude weights", "random": "weights chosen at random",
              "structured": "whole channels of the smallest norm"}


def _n(k: int, word: str) -> str:
    return f"{k} {word}{'' if k == 1 else 's'}"


def _rates(rates) -> str:
    return ", ".join(f"{r * 100:g}%" for r in rates)


def protocol_sentences(config) -> list[str]:
    """The protocol of the study ``config`` in a few sentences."""
    d, m, t, p, f = config.data, config.model, config.train, config.prune, config.finetune
    seeds = len(config.seeds)
    scope = "over the whole network (global)" if p.scope == "global" else "in every layer alike (layer-wise)"
    schedule = _SCHEDULE[p.schedule].format(rounds=p.iterative_rounds)
    methods = ", ".join(f.methods)
    return [
        f"Data: {d.dataset}, the model predicts '{d.target}'; the groups compared are the values of '{d.group}'. "
        f"Every number is measured per group on the {', '.join(config.eval.splits)} split(s).",
        f"For each of {_n(seeds, 'seed')}, a model '{m.name}' (width {m.width:g}) was trained for "
        f"{_n(t.epochs, 'epoch')}: the dense model θ* (stage 'dense', sparsity 0).",
        f"It was then pruned at the sparsities {_rates(p.rates)}: that share of its convolution and linear weights set "
        f"to zero, choosing {_CRITERION[p.criterion]} {scope}, {schedule}. Stage 'one-shot' is the pruned model "
        "before any fine-tuning.",
        f"Each pruned model (its zeros kept) was fine-tuned for {_n(f.epochs, 'epoch')} with each method ({methods}): "
        "stage 'fine-tuned', the model θ̄. Methods at one seed and sparsity share the dense model"
        + (" and the mask, so their differences are the methods'." if p.schedule == "oneshot" else
           f"; with the {p.schedule} schedule the mask is chosen during fine-tuning, so each method has its own."),
    ]


def protocol_section(results) -> Html:
    cfg = results.config
    words = [("accuracy drop Δ_a", "a group's dense accuracy minus its pruned accuracy (Δ: the same overall)"),
             ("excess loss R(a)", "a group's loss after pruning minus its loss before: J(θ̄; D_a) − J(θ*; D_a)")]
    words += [(name, METHODS[name]) for name in cfg.finetune.methods if name in METHODS]
    items = "".join(f"<li><b>{esc(k)}</b>: {esc(v)}</li>" for k, v in words)
    return section("protocol", "What was done", *[para(s) for s in protocol_sentences(cfg)],
                   Html(f"<ul class=glossary>{items}</ul>"))
