"""A user's own nn.Module through the per-group entry points: modes kept per module, clear errors for outputs
prunefair cannot read, integer token ids passed through, tied weights pruned once."""

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from prunefair.data import GroupedData
from prunefair.diagnostics import diagnose_groups, group_boundary_distance, group_gradient_norms
from prunefair.measure import evaluate_groups
from prunefair.prune import load_pruned, make_masks, save_pruned
from prunefair.study.store import load_model_state, save_checkpoint
from prunefair.train import TrainSettings, fit


def _data(n=40, features=6, classes=3, groups=2, x=None, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=gen) if x is None else x
    y = torch.randint(0, classes, (n,), generator=gen)
    g = torch.arange(n) % groups
    return GroupedData(x, y, g, tuple(map(str, range(classes))), tuple(f"g{i}" for i in range(groups)))


def _frozen_bn_model():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3))
    net.train()
    net[1].eval()  # a frozen batch norm inside a model in training mode
    return net


ENTRY_POINTS = {
    "evaluate_groups": lambda m, d: evaluate_groups(m, d),
    "group_gradient_norms": lambda m, d: group_gradient_norms(m, d),
    "group_boundary_distance": lambda m, d: group_boundary_distance(m, d),
    "diagnose_groups": lambda m, d: diagnose_groups(m, d, trace_samples=0),
}


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_each_modules_mode_comes_back_also_after_an_error(entry):
    net, data = _frozen_bn_model(), _data()
    modes = [m.training for m in net.modules()]
    ENTRY_POINTS[entry](net, data)
    assert [m.training for m in net.modules()] == modes  # the batch norm stays frozen, dropout stays on
    wrong = _data(features=5)  # the first layer refuses these inputs: the call raises
    with pytest.raises(RuntimeError):
        ENTRY_POINTS[entry](net, wrong)
    assert [m.training for m in net.modules()] == modes


def test_batch_norm_without_running_statistics_is_named_in_a_warning():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8, track_running_stats=False), nn.Linear(8, 3))
    with pytest.warns(UserWarning, match=r"batch norm without running statistics \(1\).*batch_size"):
        evaluate_groups(net, _data())


@pytest.mark.parametrize("out_shape, match", [((1,), r"shape \(\d+, 1\).*zeros_like"), ((), r"shape \(\d+,\)"),
                                             (None, "returned a tuple")])
def test_outputs_prunefair_cannot_read_get_a_clear_error(out_shape, match):
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(6, 3)

        def forward(self, x):
            z = self.fc(x)
            if out_shape is None:
                return z, x
            return z[:, :1] if out_shape == (1,) else z[:, 0]

    data = _data()
    for call in (lambda: evaluate_groups(Odd(), data), lambda: group_gradient_norms(Odd(), data),
                 lambda: fit(Odd(), data, TrainSettings(epochs=1, batch_size=40), seed=0)):
        with pytest.raises(ValueError, match=match):
            call()


def test_integer_token_ids_reach_an_embedding_model_as_they_are():
    class Bag(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.fc = nn.Embedding(20, 4), nn.Linear(4, 3)

        def forward(self, tokens):
            return self.fc(self.emb(tokens).mean(1))

    torch.manual_seed(0)
    tokens = torch.randint(0, 20, (40, 5), generator=torch.Generator().manual_seed(1))
    data, net = _data(x=tokens), Bag()
    data = GroupedData(data.x, data.y, data.g, data.class_names, data.group_names, token_ids=True)
    assert data.subset(range(10)).token_ids and data.to("cpu").token_ids
    stats = evaluate_groups(net, data)
    with torch.no_grad():
        logits = net(tokens)
    by_hand = [(logits.argmax(1) == data.y)[data.g == a].float().mean().item() for a in range(2)]
    assert stats.accuracy.tolist() == pytest.approx(by_hand)
    grads = group_gradient_norms(net, data)
    for a in range(2):
        rows = data.g == a
        loss = F.cross_entropy(net(tokens[rows]), data.y[rows])
        g = torch.cat([p.reshape(-1) for p in torch.autograd.grad(loss, list(net.parameters()))])
        assert grads.norms[a] == pytest.approx(float(g.norm()), rel=1e-5)
    assert diagnose_groups(net, data, trace_samples=0).hessian_top_eigenvalue.shape == (2,)
    fit(net, data, TrainSettings(epochs=1, batch_size=8), seed=0)
    # without token_ids, integers are numbers (features): cast to the model's float dtype, as always
    mlp = nn.Sequential(nn.Linear(5, 3))
    with torch.no_grad():
        want = (mlp(tokens.float()).argmax(1) == data.y).float().mean().item()
    features = GroupedData(data.x, data.y, data.g, data.class_names, data.group_names)
    assert evaluate_groups(mlp, features).overall_accuracy == pytest.approx(want)
    with pytest.raises(ValueError, match="token_ids=True needs int64 or int32 x"):
        GroupedData(tokens.float(), data.y, data.g, data.class_names, data.group_names, token_ids=True)


def test_tied_weights_get_one_mask_and_stay_tied_and_pruned_through_training_and_saving(tmp_path):
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc, self.dec, self.head = nn.Linear(6, 6, bias=False), nn.Linear(6, 6, bias=False), nn.Linear(6, 3)
            self.dec.weight = self.enc.weight

        def forward(self, x):
            return self.head(torch.relu(self.dec(torch.relu(self.enc(x)))))

    torch.manual_seed(0)
    net = Tied()
    masks = make_masks(net, 0.5)
    assert sorted(masks.masks) == ["enc.weight", "head.weight"]  # the shared weight counted once
    assert masks.total == 36 + 18
    fit(net, _data(), TrainSettings(epochs=2, batch_size=8, lr=0.1, momentum=0.9, weight_decay=0.01), seed=0,
        masks=masks)
    assert net.dec.weight is net.enc.weight
    assert torch.all(net.enc.weight[~masks.masks["enc.weight"]] == 0)
    # saved once (safetensors refuses a tensor under two names), loaded under both names
    save_pruned(tmp_path / "tied.safetensors", net, masks)
    back = Tied()
    loaded = load_pruned(tmp_path / "tied.safetensors", back)
    assert back.dec.weight is back.enc.weight and torch.equal(back.enc.weight, net.enc.weight)
    assert all(torch.equal(loaded.masks[k], masks.masks[k]) for k in masks.masks)
    save_checkpoint(tmp_path / "dense.safetensors", net.state_dict())
    again = Tied()
    load_model_state(again, tmp_path / "dense.safetensors")
    assert again.dec.weight is again.enc.weight and torch.equal(again.head.bias, net.head.bias)


def test_ids_out_of_range_are_named():
    with pytest.raises(ValueError, match=r"g holds id 2 .*0\.\.1"):
        GroupedData(torch.zeros(3, 2), torch.zeros(3), torch.tensor([0, 2, 1]), ("a",), ("g0", "g1"))
    with pytest.raises(ValueError, match=r"y holds id -1"):
        GroupedData(torch.zeros(3, 2), torch.tensor([0, -1, 0]), torch.zeros(3), ("a",), ("g0",))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        GroupedData(torch.zeros(0, 2), torch.zeros(0), torch.zeros(0), ("a",), ("g0",))  # empty is fine


def test_a_train_override_gets_its_mode_back():
    class Noisy(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.noise = nn.Linear(6, 3), True

        def train(self, mode=True):
            self.noise = mode  # state beyond the flag
            return super().train(mode)

        def forward(self, x):
            return self.fc(x)

    net = Noisy().train()
    evaluate_groups(net, _data())
    assert net.training and net.noise


def test_tied_weight_pruned_by_torch_under_its_second_name_and_a_sparse_buffer_load(tmp_path):
    from torch.nn.utils import prune

    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.c = nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 2)
            self.b.weight = self.a.weight
            self.register_buffer("table", torch.eye(3).to_sparse())

        def forward(self, x):
            return self.c(self.b(torch.relu(self.a(x))))

    torch.manual_seed(0)
    net = Tied()
    prune.l1_unstructured(net.b, "weight", amount=0.5)  # the torch mask lands on the second name
    torch.save(net.state_dict(), tmp_path / "pruned.pt")
    back = Tied()
    masks = load_pruned(tmp_path / "pruned.pt", back)
    assert sorted(masks.masks) == ["a.weight", "c.weight"] and int((~masks.masks["a.weight"]).sum()) == 8
    assert back.a.weight is back.b.weight and int((back.a.weight == 0).sum()) == 8


def test_an_embedding_tied_to_the_output_layer_keeps_its_mask_through_saving(tmp_path):
    class LM(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.body, self.head = nn.Embedding(12, 6), nn.Linear(6, 6), nn.Linear(6, 12, bias=False)
            self.head.weight = self.emb.weight

        def forward(self, tokens):
            return self.head(torch.relu(self.body(self.emb(tokens).mean(1))))

    torch.manual_seed(0)
    net = LM()
    masks = make_masks(net, 0.5)
    assert sorted(masks.masks) == ["body.weight", "head.weight"]
    masks.bind(net).apply()
    save_pruned(tmp_path / "lm.safetensors", net, masks)
    back = LM()
    loaded = load_pruned(tmp_path / "lm.safetensors", back)
    assert sorted(loaded.masks) == ["body.weight", "head.weight"]
    assert all(torch.equal(loaded.masks[k], masks.masks[k]) for k in masks.masks)
    assert back.head.weight is back.emb.weight


def test_a_model_whose_train_refuses_is_still_evaluated_and_its_flags_come_back():
    class InferenceOnly(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(6, 3)

        def train(self, mode=True):
            if mode:
                raise RuntimeError("inference only")
            return super().train(False)

        def forward(self, x):
            return self.fc(x)

    net = InferenceOnly()  # a new module's flag says training, which its train() would refuse to set
    evaluate_groups(net, _data())
    assert net.training


def test_zeros_of_a_tied_weight_stored_once_under_the_embeddings_name_are_its_mask():
    from prunefair.prune.interop import load_pruned_state_dict, untied

    class LM(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.head = nn.Embedding(8, 4), nn.Linear(4, 8, bias=False)
            self.head.weight = self.emb.weight

        def forward(self, tokens):
            return self.head(self.emb(tokens).mean(1))

    torch.manual_seed(0)
    net = LM()
    with torch.no_grad():
        net.emb.weight[:3] = 0.0  # 12 zeros: a plain checkpoint whose zeros are the mask
    state = untied(net.state_dict())
    assert list(state) == ["emb.weight"]
    masks = load_pruned_state_dict(LM(), state)
    assert list(masks.masks) == ["head.weight"] and int((~masks.masks["head.weight"]).sum()) == 12
