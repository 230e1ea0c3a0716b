from dataclasses import replace

import numpy as np
import pytest
import torch

from facearith import config
from facearith.data import synthetic, tensors
from facearith.data.images import load_images
from facearith.data.labels import build_table
from facearith.features import extract
from facearith.training import inference, inputs, loop, losses, members, network

from .conftest import PATTERN, ROOT

COMMITTED = config.load(ROOT / "params.yaml")
MODEL = replace(COMMITTED.model, dim=8)


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    folder = tmp_path_factory.mktemp("faces")
    synthetic.generate(folder, persons=3, images_per_pair=1, size=48, seed=0)
    table, _ = build_table(folder, PATTERN)
    return table, load_images(table.path.tolist())


def test_pool_and_normalize():
    fmap = torch.tensor([[[[1.0, 2.0], [3.0, 10.0]]]])
    assert network.pool(fmap, "median").item() == 2.0  # torch's median takes the lower middle value
    assert network.pool(fmap, "mean").item() == 4.0
    assert network.pool(fmap, "max").item() == 10.0
    z = network.normalize(torch.zeros(2, 5))
    assert not torch.isnan(z).any() and (z == 0).all()


@pytest.mark.parametrize("embedding", ["split", "seed"])
def test_features_are_unit_nonnegative_and_in_order(tiny_set, embedding):
    table, images = tiny_set
    torch.manual_seed(0)
    net = network.build(replace(MODEL, embedding=embedding), 21, 3, 7)
    loop.recalibrate_batchnorm(net, images, 32, torch.device("cpu"))
    f = extract.extract(net, images, 32, 5, "cpu")
    assert f.shape == (21, 16 if embedding == "split" else 1280) and f.dtype == np.float32
    assert (f >= 0).all() and np.allclose(np.linalg.norm(f, axis=1), 1, atol=1e-5)
    one_by_one = np.concatenate([extract.extract(net, [img], 32, 8, "cpu") for img in images[:4]])
    assert np.allclose(one_by_one, f[:4], atol=1e-4)  # batching changes float rounding only


def test_indexed_features_fuse_the_network_with_pca_lda_per_axis_and_are_the_network_alone_at_weights_1(tiny_set):
    from facearith.features import linear

    table, images = tiny_set
    torch.manual_seed(0)
    net = network.build(MODEL, 21, 3, 7)
    loop.recalibrate_batchnorm(net, images, 32, torch.device("cpu"))
    lin, _ = linear.fit_images(images, table.identity, table.attribute, 16)
    lin_f, (lin_id, lin_attr) = lin.embed(images), lin.embed_axes(images)
    # one weight for both axes: the fusion of the network's features with PCA + LDA's, whole
    indexed, net_f = extract.embed(net, 32, lin, (0.2, 0.2), images, 8, "cpu")
    np.testing.assert_array_equal(net_f, extract.extract(net, images, 32, 8, "cpu"))
    # 16 network dimensions, then PCA + LDA's (2 + 6 directions, each split by sign)
    assert indexed.shape == (21, 16 + 16) and np.allclose(np.linalg.norm(indexed, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(indexed @ indexed.T, 0.2 * net_f @ net_f.T + 0.8 * lin_f @ lin_f.T, atol=1e-5)
    # per axis: half the identity fusion plus half the attribute fusion, each with its own weight
    indexed, _ = extract.embed(net, 32, lin, (0.3, 0.1), images, 8, "cpu")
    net_id, net_attr = net_f[:, :8] * 2**0.5, net_f[:, 8:] * 2**0.5  # the heads, each unit length
    want = 0.5 * (0.3 * net_id @ net_id.T + 0.7 * lin_id @ lin_id.T) + 0.5 * (
        0.1 * net_attr @ net_attr.T + 0.9 * lin_attr @ lin_attr.T
    )
    np.testing.assert_allclose(indexed @ indexed.T, want, atol=1e-5)
    # a weight of 1 leaves PCA + LDA's half of that axis out; 0 the network's
    assert extract.embed(net, 32, lin, (1.0, 0.0), images, 8, "cpu")[0].shape == (21, 8 + 6 * 2)
    alone, same = extract.embed(net, 32, None, (1.0, 1.0), images, 8, "cpu")
    assert alone is same and np.array_equal(alone, net_f)  # 1 and 1: the network alone, no linear model needed
    with pytest.raises(ValueError, match=r"fuse weights of \(0.5, 1.0\) need the linear model"):
        extract.embed(net, 32, None, (0.5, 1.0), images, 8, "cpu")


def test_the_seed_embedding_fuses_whole_and_members_split_into_their_halves(tiny_set):
    from facearith.errors import ConfigError
    from facearith.features import linear

    table, images = tiny_set
    lin, _ = linear.fit_images(images, table.identity, table.attribute, 16)
    lin_f = lin.embed(images)
    torch.manual_seed(0)
    seed_net = network.build(replace(MODEL, embedding="seed"), 21, 3, 7)
    loop.recalibrate_batchnorm(seed_net, images, 32, torch.device("cpu"))
    indexed, whole = extract.embed(seed_net, 32, lin, (0.4, 0.4), images, 8, "cpu")
    np.testing.assert_allclose(indexed @ indexed.T, 0.4 * whole @ whole.T + 0.6 * lin_f @ lin_f.T, atol=1e-5)
    with pytest.raises(ConfigError, match="model.embedding 'seed' has no identity and attribute halves"):
        extract.embed(seed_net, 32, lin, (0.4, 0.2), images, 8, "cpu")
    # two members side by side: each half is the members' halves together
    members = []
    for k in range(2):
        torch.manual_seed(k)
        members.append(network.build(MODEL, 21, 3, 7))
        loop.recalibrate_batchnorm(members[-1], images, 32, torch.device("cpu"))
    alone = [extract.extract(m, images, 32, 8, "cpu") for m in members]
    net_id, net_attr = extract.network_axes(extract.extract(network.Ensemble(members), images, 32, 8, "cpu"), members=2)
    for got, cols in ((net_id, slice(0, 8)), (net_attr, slice(8, 16))):
        want = np.concatenate([f[:, cols] for f in alone], axis=1)  # that head of member 0, then of member 1
        want /= np.linalg.norm(want, axis=1, keepdims=True)
        np.testing.assert_allclose(got, want, atol=1e-5)
    with pytest.raises(ValueError, match="16 columns cannot be 3 members' identity and attribute halves"):
        extract.network_axes(alone[0], members=3)


def test_save_and_load_round_trip(tmp_path, tiny_set):
    _, images = tiny_set
    torch.manual_seed(0)
    net = network.build(MODEL, 21, 3, 7).eval()
    path = tmp_path / "m.pt"
    network.save(net, path, MODEL, 21, {"persons": ["a", "b", "c"], "expressions": list("abcdefg"), "image_size": 32})
    back, blob = network.load(path)
    assert blob["image_size"] == 32
    assert np.allclose(extract.extract(net, images, 32, 8, "cpu"), extract.extract(back, images, 32, 8, "cpu"))
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def test_a_narrower_network_has_fewer_channels_and_saves_its_width(tmp_path, tiny_set):
    _, images = tiny_set
    narrow = replace(MODEL, width=0.5)
    torch.manual_seed(0)
    net = network.build(narrow, 21, 3, 7).eval()
    wide = network.build(MODEL, 21, 3, 7)
    assert net.net._features[0][0].out_channels == wide.net._features[0][0].out_channels // 2
    weights = [sum(p.numel() for p in m.net._features.parameters()) for m in (net, wide)]
    assert weights[0] < 0.5 * weights[1]
    path = tmp_path / "narrow.pt"
    network.save(net, path, narrow, 21, {"persons": ["a", "b", "c"], "expressions": list("abcdefg"), "image_size": 32})
    back, blob = network.load(path)
    assert blob["model"]["width"] == 0.5 and back.net._features[0][0].out_channels == 16
    assert np.allclose(extract.extract(net, images, 32, 8, "cpu"), extract.extract(back, images, 32, 8, "cpu"))


def test_an_ensembles_members_are_the_single_networks_of_their_seeds(tiny_set, tmp_path):
    table, images = tiny_set
    table = table.assign(selected=True)
    tp = replace(COMMITTED.train, epochs=2, image_size=32, batch_size=8, threads=1, seed=3)
    cpu = torch.device("cpu")
    single, one = members.train_selected(table, MODEL, tp, cpu, progress=False)
    steps: list[int] = []
    ens, both = members.train_selected(
        table, replace(MODEL, members=2), tp, cpu, progress=False, on_epoch=lambda e, loss: steps.append(e)
    )
    assert isinstance(single, network.FaceNet) and isinstance(ens, network.Ensemble) and len(ens.members) == 2
    # member 0 is the network of the run's seed, member 1 that of seed + 1000: neighbouring grid seeds share none
    first = single.state_dict()
    assert all(torch.equal(v, ens.members[0].state_dict()[k]) for k, v in first.items())
    other, _ = members.train_selected(table, MODEL, replace(tp, seed=members.member_seed(3, 1)), cpu, progress=False)
    assert all(torch.equal(v, ens.members[1].state_dict()[k]) for k, v in other.state_dict().items())
    assert not torch.equal(ens.members[0].identity_head.weight, ens.members[1].identity_head.weight)
    # the run adds up: both members' epochs, logged one after the other; the loss is their final losses' mean
    assert steps == list(range(4)) and len(both.losses) == 4 and both.images_seen == 2 * one.images_seen
    assert both.final_loss == pytest.approx((both.losses[1] + both.losses[3]) / 2)
    assert "2 networks x 2 epochs" in members.summary(both, tp)
    # the ensemble's feature: the members' unit features side by side, scaled back to unit length
    f, f0, f1 = (extract.extract(n, images, 32, 8, "cpu") for n in (ens, single, other))
    assert f.shape == (21, 32) and np.allclose(np.linalg.norm(f, axis=1), 1, atol=1e-5)
    assert np.allclose(f, np.concatenate([f0, f1], axis=1) / 2**0.5, atol=1e-5)
    # saved and loaded as an ensemble; the untrained baseline starts from the same two initial networks
    path = tmp_path / "ens.pt"
    extra = {"persons": ["a", "b", "c"], "expressions": list("abcdefg"), "image_size": 32}
    network.save(ens, path, replace(MODEL, members=2), 21, extra)
    back, _ = network.load(path)
    assert isinstance(back, network.Ensemble) and np.allclose(extract.extract(back, images, 32, 8, "cpu"), f, atol=1e-6)
    starts = members.initial_members(replace(MODEL, members=2), tp, 3, 7)
    assert not torch.equal(starts[0].identity_head.weight, starts[1].identity_head.weight)
    fresh = members.initial_member(MODEL, members.member_seed(3, 1), 1, 3, 7)
    assert torch.equal(fresh.identity_head.weight, starts[1].identity_head.weight)


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(network.ModelError, match="nope.pt not found"):
        network.load(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(network.ModelError, match="bad.pt is not a readable"):
        network.load(bad)


def test_pretrained_offline_names_the_file_to_provide(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    # nothing outside this machine answers; point the download at a closed local port to be sure
    monkeypatch.setattr("torch.hub.download_url_to_file", _refuse)
    with pytest.raises(network.ModelError) as err:
        network.build(replace(MODEL, pretrained=True), 21, 3, 7)
    msg = str(err.value)
    assert "mobilenet_v2-b0353104.pth" in msg and str(tmp_path / "hub") in msg and "model.weights" in msg
    with pytest.raises(network.ModelError, match="missing.pth does not exist"):
        network.build(replace(MODEL, pretrained=True, weights=str(tmp_path / "missing.pth")), 21, 3, 7)


def _refuse(url, dst, progress=False):
    import urllib.request

    urllib.request.urlopen("http://127.0.0.1:9/", timeout=5)


def test_pretrained_loads_a_provided_weights_file(tmp_path):
    from torchvision.models import mobilenet_v2

    torch.manual_seed(1)
    reference = mobilenet_v2()
    path = tmp_path / "mobilenet_v2-b0353104.pth"
    torch.save(reference.state_dict(), path)
    net = network.build(replace(MODEL, pretrained=True, weights=str(path)), 21, 3, 7)
    assert torch.equal(net.net._features[0][0].weight, reference.features[0][0].weight)


def test_cuda_requested_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(network.ModelError, match="no CUDA device"):
        network.resolve_device("cuda")
    assert network.resolve_device("auto").type == "cpu"


def _train_once(images, table, epochs=3, sampler="blocks"):
    params = replace(COMMITTED.train, epochs=epochs, image_size=32, batch_size=8, threads=1, sampler=sampler)
    loop.seed_everything(0, 1)
    net = network.build(MODEL, 21, 3, 7)
    result = loop.train(
        net, images, table.identity.to_numpy(), table.attribute.to_numpy(), params, torch.device("cpu"), progress=False
    )
    return net, result


def test_training_is_seeded_and_lowers_the_loss(tiny_set):
    table, images = tiny_set
    net_a, a = _train_once(images, table, epochs=12)
    # blocks: each of the 21 images through the network once per epoch, as an anchor
    assert len(a.losses) == 12 and a.images_seen == a.anchors_seen == 12 * 21 and a.images_per_second > 0
    assert np.mean(a.losses[-3:]) < np.mean(a.losses[:3])
    net_b, b = _train_once(images, table, epochs=12)
    assert a.losses == b.losses
    assert np.array_equal(extract.extract(net_a, images, 32, 8, "cpu"), extract.extract(net_b, images, 32, 8, "cpu"))


def test_resident_inputs_train_exactly_as_the_per_image_path(tiny_set, monkeypatch):
    """With no random augmentation the inputs are computed once, as one tensor (train.resident); the network
    trained from it is the one the per-image path (the DataLoader, as with augmentation) trains."""
    table, images = tiny_set
    assert inputs.is_static(COMMITTED.train.augment)
    net_a, a = _train_once(images, table, epochs=3)
    monkeypatch.setattr(loop, "is_static", lambda augment: False)
    net_b, b = _train_once(images, table, epochs=3)
    assert a.losses == b.losses
    assert all(torch.equal(x, y) for x, y in zip(net_a.state_dict().values(), net_b.state_dict().values(), strict=True))


def test_a_random_augmentation_is_not_static():
    flip = replace(COMMITTED.train.augment, hflip=True)
    crop = replace(COMMITTED.train.augment, crop_scale=(0.75, 1.0))
    assert not inputs.is_static(flip) and not inputs.is_static(crop)


def test_the_seeds_triplet_batches_forward_three_images_per_anchor(tiny_set):
    table, images = tiny_set
    _, result = _train_once(images, table, epochs=6, sampler="triplets")
    assert result.images_seen == 6 * 21 * 3 and result.anchors_seen == 6 * 21
    assert result.anchors_per_second < result.images_per_second
    assert np.mean(result.losses[-2:]) < np.mean(result.losses[:2])


def test_weight_decay_shrinks_the_weights(tiny_set):
    table, images = tiny_set

    def head_norm(weight_decay: float) -> float:
        params = replace(COMMITTED.train, epochs=3, image_size=32, weight_decay=weight_decay)
        loop.seed_everything(0, 1)
        net = network.build(MODEL, 21, 3, 7)
        ids, attrs = table.identity.to_numpy(), table.attribute.to_numpy()
        loop.train(net, images, ids, attrs, params, torch.device("cpu"), progress=False)
        return float(net.identity_head.weight.detach().norm())

    assert head_norm(50.0) < 0.9 * head_norm(0.0)


def test_cosine_schedule_decays_the_learning_rate_to_zero(tiny_set):
    p = replace(COMMITTED.train, epochs=4, lr=0.01, schedule="cosine")
    assert loop.learning_rate(p, 0) == pytest.approx(0.01)
    assert loop.learning_rate(p, 2) == pytest.approx(0.005)
    assert loop.learning_rate(p, 4) == pytest.approx(0.0, abs=1e-12)
    assert loop.learning_rate(replace(p, schedule="constant"), 3.5) == 0.01
    # what the optimiser was given at each step of a real run: falling from lr, never rising
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    table, images = tiny_set
    seen: list[float] = []
    hook = register_optimizer_step_pre_hook(lambda opt, args, kwargs: seen.append(opt.param_groups[0]["lr"]))
    try:
        params = replace(p, image_size=32, batch_size=8, threads=1)
        loop.seed_everything(0, 1)
        net = network.build(MODEL, 21, 3, 7)
        ids, attrs = table.identity.to_numpy(), table.attribute.to_numpy()
        loop.train(net, images, ids, attrs, params, torch.device("cpu"), progress=False)
    finally:
        hook.remove()
    assert len(seen) > 4 and seen[0] == pytest.approx(0.01)
    assert all(b <= a for a, b in zip(seen, seen[1:], strict=False)) and seen[-1] < 0.01 * 0.1


def test_swa_keeps_the_mean_of_the_last_epochs_weights(tiny_set):
    table, images = tiny_set
    ids, attrs = table.identity.to_numpy(), table.attribute.to_numpy()

    def weights(epochs: int, swa_from: float) -> list[torch.Tensor]:
        params = replace(COMMITTED.train, epochs=epochs, image_size=32, batch_size=8, threads=1, swa_from=swa_from)
        loop.seed_everything(0, 1)
        net = network.build(MODEL, 21, 3, 7)
        loop.train(net, images, ids, attrs, params, torch.device("cpu"), progress=False)
        return [p.detach().clone() for p in net.parameters()]

    # swa_from 0.5 of 4 epochs: the weights after epochs 3 and 4, averaged; training itself is unchanged
    third, fourth, averaged = weights(3, 0.0), weights(4, 0.0), weights(4, 0.5)
    assert config.swa_first_epoch(4, 0.5) == 2
    assert not all(torch.equal(a, b) for a, b in zip(third, fourth, strict=True))
    for a, b, mean in zip(third, fourth, averaged, strict=True):
        torch.testing.assert_close(mean, (a + b) / 2)


@pytest.mark.parametrize("every_s", [0.0, 3600.0])
def test_checkpoints_are_written_at_most_every_so_often_and_after_the_last_epoch(tiny_set, tmp_path, every_s):
    table, images = tiny_set
    params = replace(COMMITTED.train, epochs=4, image_size=32, batch_size=8, threads=1)
    ck = tmp_path / "train.pt"
    seen = []  # on_epoch runs before that epoch's checkpoint: it sees the epochs written before it

    def written(epoch: int, loss: float) -> None:
        seen.append(torch.load(ck, weights_only=True)["epochs_done"] if ck.exists() else 0)

    loop.seed_everything(0, 1)
    net = network.build(MODEL, 21, 3, 7)
    ids, attrs = table.identity.to_numpy(), table.attribute.to_numpy()
    loop.train(
        net, images, ids, attrs, params, torch.device("cpu"), written, progress=False, checkpoint=ck,
        checkpoint_every_s=every_s,
    )  # fmt: skip
    # every epoch when 0; within the hour, only the final epoch (a finished run's checkpoint is complete)
    assert seen == ([0, 1, 2, 3] if every_s == 0 else [0, 0, 0, 0])
    assert torch.load(ck, weights_only=True)["epochs_done"] == 4


def test_a_seeded_build_is_the_same_in_a_fresh_process():
    import subprocess
    import sys

    def total(net: torch.nn.Module) -> str:
        return f"{sum(float(p.detach().double().sum()) for p in net.parameters()):.6f}"

    code = (
        "import torch; from dataclasses import replace; from facearith import config\n"
        "from facearith.training import loop, network\n"
        f"p = config.load({str(ROOT / 'params.yaml')!r}).model\n"
        "loop.seed_everything(0); net = network.build(replace(p, dim=8), 21, 3, 7)\n"
        "print(f'{sum(float(q.detach().double().sum()) for q in net.parameters()):.6f}')"
    )
    fresh = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    network.build(MODEL, 21, 3, 7)  # cnn_finetune imported here already
    loop.seed_everything(0)
    assert total(network.build(MODEL, 21, 3, 7)) == fresh


def test_seed_embedding_trains_with_triplets_alone(tiny_set):
    table, images = tiny_set
    params = replace(COMMITTED.train, epochs=1, image_size=32, ce_weight=0.0)
    net = network.build(replace(MODEL, embedding="seed"), 21, 3, 7)
    result = loop.train(
        net, images, table.identity.to_numpy(), table.attribute.to_numpy(), params, torch.device("cpu"), progress=False
    )
    assert len(result.losses) == 1 and np.isfinite(result.losses[0])
    with pytest.raises(ValueError, match="needs model.embedding: split"):
        loop.train(
            net,
            images,
            table.identity.to_numpy(),
            table.attribute.to_numpy(),
            replace(params, ce_weight=1.0),
            torch.device("cpu"),
            progress=False,
        )


def test_label_smoothing_penalises_overconfident_classifiers():
    # cosine logits of 4 images over 3 labels per axis: each image at cosine `c` to its own label, -c to the others
    def out(c: float) -> dict[str, torch.Tensor]:
        logits = torch.full((4, 3), -c)
        logits[torch.arange(4), torch.tensor([0, 1, 2, 0])] = c
        return {"identity_logits": logits, "attribute_logits": logits.clone()}

    labels = torch.tensor([0, 1, 2, 0])
    sure, unsure = out(1.0), out(0.2)
    plain = [losses.classification_loss(o, labels, labels, 16.0) for o in (sure, unsure)]
    smooth = [losses.classification_loss(o, labels, labels, 16.0, smoothing=0.1) for o in (sure, unsure)]
    assert plain[0] < plain[1]  # without smoothing, the surer the better
    assert smooth[0] > smooth[1]  # with it, certainty itself costs: the target is 0.9 + 0.1 / 3, not 1
    assert smooth[0] > plain[0] and plain[0] < 1e-5


def test_saved_models_are_byte_identical_for_identical_weights(tmp_path):
    torch.manual_seed(0)
    net = network.build(MODEL, 21, 3, 7)
    extra = {"persons": ["a", "b", "c"], "expressions": list("abcdefg"), "image_size": 32}
    network.save(net, tmp_path / "a.pt", MODEL, 21, extra)
    network.save(net, tmp_path / "b.pt", MODEL, 21, extra)
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()


def test_inference_copy_folds_batchnorm_and_keeps_the_features(tiny_set):
    _, images = tiny_set
    torch.manual_seed(0)
    net = network.build(MODEL, 21, 3, 7)
    loop.recalibrate_batchnorm(net, images, 32, torch.device("cpu"))  # real, non-trivial BatchNorm statistics
    fused = inference.for_inference(net)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.net._features.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())  # the trained model is untouched
    x = tensors.to_batch(images, 32)
    with torch.inference_mode():
        eager, folded = net.eval()(x)["features"], fused(x)["features"]
    assert torch.allclose(eager, folded, atol=1e-3)  # float rounding, amplified where a variance is tiny


def test_inference_copy_runs_each_activation_inside_its_convolution(tiny_set):
    """On the CPU every convolution becomes one oneDNN call with its ReLU6; the numbers are those of the
    BatchNorm-folded network, for the first batch size and for others (the weights are packed for the first)."""
    from torch.fx.experimental.optimization import fuse

    _, images = tiny_set
    torch.manual_seed(0)
    net = network.build(MODEL, 21, 3, 7)
    loop.recalibrate_batchnorm(net, images, 32, torch.device("cpu"))
    fused = inference.for_inference(net)
    layers = list(fused.net._features.modules())
    assert sum(isinstance(m, inference.ConvActivation) for m in layers) == 52  # MobileNetV2's convolutions
    assert sum(isinstance(m, inference.ConvActivation) and m.attr == "hardtanh" for m in layers) == 35
    assert not any(type(m) in (torch.nn.Conv2d, torch.nn.ReLU6) for m in layers)
    folded = net.eval()
    folded.net._features = fuse(folded.net._features).to(memory_format=torch.channels_last)
    x = tensors.to_batch(images, 32)
    with torch.inference_mode():
        for batch in (x[:8], x[:3], x):
            diff = (fused(batch)["features"] - folded(batch)["features"]).abs().max().item()
            assert diff < 1e-4, diff  # float rounding: the fused kernels add in another order


def test_convolution_with_two_users_keeps_its_activation_apart():
    class TwoUses(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
            self.act = torch.nn.ReLU6()

        def forward(self, x):
            y = self.conv(x)
            return self.act(y) + y  # y is needed before the clamp: fusing would change the sum

    torch.manual_seed(0)
    net = TwoUses().eval()
    gm = torch.fx.symbolic_trace(net)
    assert inference.fuse_conv_activations(gm) == 0
    assert isinstance(gm.conv_fused, inference.ConvActivation) and gm.conv_fused.attr == "none"
    x = torch.randn(2, 3, 6, 6) * 10
    with torch.inference_mode():
        assert torch.allclose(gm(x), net(x), atol=1e-5)


@pytest.mark.parametrize("shape", [(4, 64, 8, 8), (3, 5, 5, 7), (2, 6, 1, 1), (2, 3, 2, 3)])
def test_median_pooling_for_inference_matches_torch_median(shape):
    torch.manual_seed(0)
    for fmap in (torch.randn(shape), torch.randint(0, 3, shape).float()):  # ties too
        fmap = fmap.contiguous(memory_format=torch.channels_last)
        expected = fmap.flatten(2).median(dim=2).values
        with torch.inference_mode():
            assert torch.equal(network.pool(fmap, "median"), expected)
        trained = fmap.clone().requires_grad_(True)  # training keeps torch.median: it has a gradient
        network.pool(trained, "median").sum().backward()
        assert trained.grad.sum().item() == shape[0] * shape[1]  # one picked element per channel


def test_forward_in_chunks_matches_one_pass_in_eval_mode(tiny_set):
    """Chunking changes only BatchNorm's batch statistics in training; in eval mode it is the same function."""
    _, images = tiny_set
    torch.manual_seed(0)
    net = network.build(MODEL, 21, 3, 7).eval()
    x = tensors.to_batch(images[:12], 32)
    with torch.no_grad():
        one, three = loop.forward(net, x, 0), loop.forward(net, x, 4)
    assert one.keys() == three.keys()
    for key in one:
        assert one[key].dtype == torch.float32 and torch.allclose(one[key], three[key], atol=1e-5)


def test_channels_last_gradients_stay_channels_last():
    """The network trains channels_last end to end: BatchNorm's backward on a gradient in the other layout is
    about 8x slower on this CPU (benchmarks/README.md)."""
    torch.manual_seed(0)
    net = network.build(MODEL, 21, 3, 7).train()
    seen = []

    def watch(_module, _inputs, out):
        out.register_hook(seen.append)

    for m in net.net._features.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(watch)
    net(torch.rand(4, 1, 64, 64))["identity"].sum().backward()
    assert len(seen) == 52
    assert all(g.is_contiguous(memory_format=torch.channels_last) and not g.is_contiguous() for g in seen)


def test_allocator_tuning_is_applied_on_linux():
    import sys

    from facearith import runtime

    assert runtime.tune_allocator() is sys.platform.startswith("linux")
