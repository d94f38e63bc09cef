"""Turn per-weight (or per-channel) scores into keep-masks: the lowest scores are removed.

One place for the counting rules shared by every criterion:

- global scope ranks every unit of the layers being pruned together and removes exactly
  round(rate * total) weights (unstructured) or the prefix of lowest-scoring channels whose size is
  nearest to that count (structured);
- layer scope removes round(rate * n) units in each layer, and refuses a rate that would remove a whole
  layer unless ``allow_layer_removal``;
- ties are broken by position (stable sort), so masks are deterministic;
- units pruned in ``previous`` are always pruned again (gradual and iterative schedules never revive a weight);
- layers named in ``dense`` keep every weight (their mask is all ones and still reported).
"""

from __future__ import annotations

import numbers

import torch

from prunefair.prune.masks import MaskSet


class LayerRemovalError(ValueError):
    """Layer-wise pruning at this rate would remove every weight of a layer."""


def check_rate(rate: float) -> None:
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real):
        raise TypeError(f"pruning rate: a number in [0, 1), got {rate!r} ({type(rate).__name__})")
    if not 0.0 <= float(rate) < 1.0:
        raise ValueError(f"pruning rate must be in [0, 1), got {rate}")


def _forced(scores: torch.Tensor, prev: torch.Tensor | None) -> torch.Tensor:
    s = scores.detach().cpu().flatten()
    s = s.float() if not s.is_floating_point() else s
    if prev is not None:
        s = s.clone()
        s[~prev.flatten().cpu()] = -torch.inf
    return s


def _lowest(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Keep-mask removing the k lowest scores, ties by position: a stable sort's prefix, found in O(n)."""
    n = scores.numel()
    keep = torch.ones(n, dtype=torch.bool)
    if k <= 0:
        return keep
    if k >= n:
        return ~keep
    threshold = torch.kthvalue(scores, k).values
    below = scores < threshold
    keep[below] = False
    keep[(scores == threshold).nonzero().flatten()[: k - int(below.sum())]] = False
    return keep


def _previous_masks(previous: MaskSet | None, shapes: dict[str, torch.Size]) -> dict[str, torch.Tensor]:
    """The masks of ``previous`` by layer, checked against the layers being ranked (names and shapes)."""
    if previous is None:
        return {}
    unknown = [k for k in previous.masks if k not in shapes]
    if unknown:
        raise ValueError(f"the previous mask names layers this model does not have: {unknown[:3]} (its layers: "
                         f"{list(shapes)[:3]}{' ...' if len(shapes) > 3 else ''}); a schedule's masks must come from "
                         "the same model")
    for k, m in previous.masks.items():
        if tuple(m.shape) != tuple(shapes[k]):
            raise ValueError(f"the previous mask of {k} has shape {tuple(m.shape)}, the layer {tuple(shapes[k])}")
    return previous.masks


def _check_previous(name: str, prev_pruned: int, k: int) -> None:
    if prev_pruned > k:
        raise ValueError(f"{name}: the previous mask already prunes {prev_pruned} units, more than the {k} "
                         "asked for now; a pruning schedule must not decrease sparsity")


def _layer_k(name: str, n: int, rate: float, allow_layer_removal: bool, unit: str) -> int:
    k = int(round(rate * n))
    if n > 0 and k >= n and not allow_layer_removal:
        raise LayerRemovalError(
            f"layer-wise pruning at rate {rate:g} would remove all {n} {unit} of layer {name!r} "
            f"(round({rate:g} * {n}) = {k}); lower the rate, use scope = 'global', keep the layer dense "
            "(keep_first_last), or set allow_layer_removal = true")
    return k


def unstructured_masks(
    scores: dict[str, torch.Tensor], rate: float, *, scope: str, dense: frozenset[str] = frozenset(),
    allow_layer_removal: bool = False, previous: MaskSet | None = None,
) -> MaskSet:
    """Keep-masks removing the lowest-scoring weights; ``scores`` has one tensor per parameter (its shape)."""
    check_rate(rate)
    prev = _previous_masks(previous, {k: s.shape for k, s in scores.items()})
    masks = {k: torch.ones(s.shape, dtype=torch.bool) for k, s in scores.items()}
    pruned_names = [k for k in scores if k not in dense]
    if scope == "layer":
        for name in pruned_names:
            s = _forced(scores[name], prev.get(name))
            k = _layer_k(name, s.numel(), rate, allow_layer_removal, "weights")
            _check_previous(name, int((s == -torch.inf).sum()), k)
            masks[name] = _lowest(s, k).view(scores[name].shape)
    elif scope == "global":
        if not pruned_names:
            return MaskSet(masks)
        flat = torch.cat([_forced(scores[n], prev.get(n)) for n in pruned_names])
        k = int(round(rate * flat.numel()))
        _check_previous("global", int((flat == -torch.inf).sum()), k)
        keep, start = _lowest(flat, k), 0
        for name in pruned_names:
            n = scores[name].numel()
            masks[name] = keep[start:start + n].view(scores[name].shape)
            start += n
    else:
        raise ValueError(f"unknown pruning scope {scope!r}; allowed: global, layer")
    return MaskSet(masks)


def channel_masks(
    channel_scores: dict[str, torch.Tensor], shapes: dict[str, torch.Size], rate: float, *, scope: str,
    dense: frozenset[str] = frozenset(), allow_layer_removal: bool = False, previous: MaskSet | None = None,
) -> MaskSet:
    """Keep-masks removing whole output channels (dim 0) of lowest score, expanded to the weight's shape."""
    check_rate(rate)
    prev_ch = {k: m.reshape(m.shape[0], -1).any(dim=1)  # a channel is pruned when all its weights are
               for k, m in _previous_masks(previous, shapes).items()}
    keep_ch = {k: torch.ones(len(s), dtype=torch.bool) for k, s in channel_scores.items()}
    pruned_names = [k for k in channel_scores if k not in dense]
    if scope == "layer":
        for name in pruned_names:
            s = _forced(channel_scores[name], prev_ch.get(name))
            k = _layer_k(name, s.numel(), rate, allow_layer_removal, "output channels")
            _check_previous(name, int((s == -torch.inf).sum()), k)
            keep_ch[name] = _lowest(s, k)
    elif scope == "global":
        if pruned_names:
            flat = torch.cat([_forced(channel_scores[n], prev_ch.get(n)) for n in pruned_names])
            sizes = torch.cat([torch.full((len(channel_scores[n]),), shapes[n].numel() // shapes[n][0],
                                          dtype=torch.long) for n in pruned_names])
            target = int(round(rate * int(sizes.sum())))
            order = torch.sort(flat, stable=True).indices
            cum = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(sizes[order], 0)])
            # the prefix of lowest-scoring channels whose weight count is nearest the target (first on ties)
            n_ch = int(torch.argmin((cum - target).abs()))
            n_ch = max(n_ch, int((flat == -torch.inf).sum()))
            keep = torch.ones(flat.numel(), dtype=torch.bool)
            keep[order[:n_ch]] = False
            start = 0
            for name in pruned_names:
                n = len(channel_scores[name])
                keep_ch[name] = keep[start:start + n]
                start += n
    else:
        raise ValueError(f"unknown pruning scope {scope!r}; allowed: global, layer")
    return MaskSet({k: keep_ch[k].view(-1, *([1] * (len(shapes[k]) - 1))).expand(shapes[k]).clone()
                    for k in channel_scores})
