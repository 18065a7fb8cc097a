"""deepnotes.vision.vgg: layout, layer names, and loading torchvision-format state dicts."""

from __future__ import annotations

import pickle

import pytest
import torch

from deepnotes.core.errors import DataFormatError, UsageError
from deepnotes.vision.vgg import (
    CONVS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    LAYERS,
    VGG19,
    load_vgg19,
    random_vgg19,
    torchvision_keys,
)

SMALL = (4, 8, 8, 16, 16)
"""A slim VGG-19 in the same layout, so that test files stay small."""


def _torchvision_state(widths=SMALL, hidden=32, classes=10, seed=0):
    """A state dict keyed as torchvision's vgg19 (features.<index>, classifier.0/3/6)."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    c_in = 3
    depths = (2, 2, 4, 4, 4)
    index = 0
    for depth, width in zip(depths, widths, strict=True):
        for _ in range(depth):
            state[f"features.{index}.weight"] = torch.randn(width, c_in, 3, 3, generator=gen)
            state[f"features.{index}.bias"] = torch.randn(width, generator=gen)
            c_in = width
            index += 2  # conv, relu
        index += 1  # pool
    sizes = [(hidden, widths[-1] * 49), (hidden, hidden), (classes, hidden)]
    for i, (out, inp) in zip((0, 3, 6), sizes, strict=True):
        state[f"classifier.{i}.weight"] = torch.randn(out, inp, generator=gen) * 0.01
        state[f"classifier.{i}.bias"] = torch.randn(out, generator=gen)
    return state


def test_torchvision_positions_of_the_convolutions():
    positions = sorted(int(k.split(".")[1]) for k in torchvision_keys(False) if "weight" in k)
    assert positions == [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
    assert len(LAYERS) == 37 and LAYERS[0] == "conv1_1" and LAYERS[-1] == "pool5"
    assert [LAYERS[p] for p in positions] == list(CONVS)
    assert torchvision_keys()["classifier.6.bias"] == "classifier.6.bias"


def test_real_vgg19_parameter_count_on_meta():
    with torch.device("meta"):
        model = VGG19()
    assert sum(p.numel() for p in model.parameters()) == 143_667_240  # torchvision's vgg19
    assert model.features.relu5_4 is model.features[35]


def test_load_maps_keys_and_matches_a_positional_forward(tmp_path):
    state = _torchvision_state()
    path = tmp_path / "vgg19.pth"
    torch.save(state, path)
    model = load_vgg19(path, widths=SMALL, hidden=32, classes=10)
    assert not any(p.requires_grad for p in model.parameters()) and not model.training
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    # reference: apply torchvision's positional layout by hand
    h = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(
        1, 3, 1, 1
    )
    reference = {}
    for index, name in enumerate(LAYERS):
        if name.startswith("conv"):
            w, b = state[f"features.{index}.weight"], state[f"features.{index}.bias"]
            h = torch.nn.functional.conv2d(h, w, b, padding=1)
        elif name.startswith("relu"):
            h = torch.relu(h)
        else:
            h = torch.nn.functional.max_pool2d(h, 2)
        reference[name] = h
    acts = model.activations(x, ["relu1_1", "conv3_2", "relu5_4"])
    for name, value in acts.items():
        torch.testing.assert_close(value, reference[name], rtol=1e-5, atol=1e-5)
    pooled = torch.nn.functional.adaptive_avg_pool2d(reference["pool5"], 7).flatten(1)
    z = pooled
    for i in (0, 3, 6):
        z = z @ state[f"classifier.{i}.weight"].T + state[f"classifier.{i}.bias"]
        z = torch.relu(z) if i < 6 else z
    torch.testing.assert_close(model(x), z, rtol=1e-4, atol=1e-4)


def test_features_only_ignores_the_classifier(tmp_path):
    state = _torchvision_state()
    path = tmp_path / "vgg19.pth"
    torch.save(state, path)
    model = load_vgg19(path, classifier=False, widths=SMALL)
    assert not hasattr(model, "classifier")
    features_only = {k: v for k, v in state.items() if k.startswith("features")}
    torch.save(features_only, path)
    load_vgg19(path, classifier=False, widths=SMALL)
    with pytest.raises(DataFormatError, match=r"missing keys \['classifier.0.weight'"):
        load_vgg19(path, widths=SMALL, hidden=32, classes=10)
    with pytest.raises(UsageError, match="classifier=False"):
        model(torch.rand(1, 3, 32, 32))


def test_missing_unexpected_and_wrong_shapes_are_named(tmp_path):
    path = tmp_path / "bad.pth"
    state = _torchvision_state()
    del state["features.34.bias"]
    state["features.35.weight"] = torch.zeros(1)
    torch.save(state, path)
    with pytest.raises(
        DataFormatError,
        match=r"missing keys \['features.34.bias'\].*unexpected "
        r"keys \['features.35.weight'\]",
    ):
        load_vgg19(path, widths=SMALL, hidden=32, classes=10)
    torch.save(_torchvision_state(), path)
    with pytest.raises(
        DataFormatError,
        match=r"features.0.weight: expected \(64, 3, 3, 3\), "
        r"got \(4, 3, 3, 3\)",
    ):
        load_vgg19(path)  # the real VGG-19's shapes (checked on the meta device)


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (b"not a torch file", "not a torch file"),
        ([torch.zeros(1)], "does not hold a state dict"),
        ({"features.0.weight": 3}, "does not hold a state dict"),
    ],
)
def test_not_a_state_dict(tmp_path, payload, match):
    path = tmp_path / "w.pth"
    if isinstance(payload, bytes):
        path.write_bytes(payload)
    else:
        torch.save(payload, path)
    with pytest.raises(DataFormatError, match=match):
        load_vgg19(path)


def test_code_in_the_pickle_is_refused(tmp_path):
    class Boom:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pth"
    torch.save({"x": Boom()}, path, pickle_module=pickle)
    with pytest.raises(DataFormatError, match="not a torch file"):
        load_vgg19(path)
    with pytest.raises(DataFormatError, match="does not exist"):
        load_vgg19(tmp_path / "absent.pth")


def test_random_features_are_he_scaled_and_seeded():
    a = random_vgg19(SMALL, torch.Generator().manual_seed(0))
    b = random_vgg19(SMALL, torch.Generator().manual_seed(0))
    torch.testing.assert_close(a.features.conv3_1.weight, b.features.conv3_1.weight)
    w = random_vgg19((64, 8, 8, 8, 8), torch.Generator().manual_seed(0)).features.conv1_2.weight
    assert abs(float(w.std()) - (2.0 / (64 * 9)) ** 0.5) < 0.002
    acts = a.activations(torch.rand(1, 3, 16, 24), ["relu1_1", "pool2", "relu3_1"])
    assert acts["relu1_1"].shape == (1, 4, 16, 24)
    assert acts["pool2"].shape == (1, 8, 4, 6)
    assert acts["relu3_1"].shape == (1, 8, 4, 6)
    with pytest.raises(UsageError, match="layers must be among"):
        a.activations(torch.rand(1, 3, 16, 16), ["relu9_9"])
    with pytest.raises(UsageError, match=r"\(N, 3, H, W\)"):
        a.activations(torch.rand(1, 1, 16, 16), ["relu1_1"])
    with pytest.raises(UsageError, match="five positive"):
        VGG19((1, 2, 3))


def test_average_pooling_variant_loads_the_same_weights(tmp_path):
    path = tmp_path / "vgg19.pth"
    torch.save(_torchvision_state(), path)
    avg = load_vgg19(path, classifier=False, widths=SMALL, pool="avg")
    mx = load_vgg19(path, classifier=False, widths=SMALL)
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    a, m = avg.activations(x, ["relu1_2", "pool1"]), mx.activations(x, ["relu1_2", "pool1"])
    torch.testing.assert_close(a["relu1_2"], m["relu1_2"])
    torch.testing.assert_close(a["pool1"], torch.nn.functional.avg_pool2d(a["relu1_2"], 2))
    torch.testing.assert_close(m["pool1"], torch.nn.functional.max_pool2d(m["relu1_2"], 2))
    with pytest.raises(UsageError, match="pool must be one of"):
        VGG19(SMALL, pool="min")
