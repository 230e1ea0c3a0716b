"""What the trained features are compared with: the same network before training, and raw pixels."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from facearith.arithmetic import normalize
from facearith.config import FeaturesParams, ModelParams, TrainParams
from facearith.data.tensors import to_batch
from facearith.features.extract import extract
from facearith.training.loop import recalibrate_batchnorm
from facearith.training.members import initial_members
from facearith.training.network import Ensemble


def pixel_features(images: Sequence[np.ndarray], size: int = 16) -> np.ndarray:
    """The raw-pixel baseline: images downscaled to size x size, flattened, normalised like the features."""
    return normalize(to_batch(images, size).flatten(1).numpy())


def untrained_features(
    model_params: ModelParams,
    train_params: TrainParams,
    features_params: FeaturesParams,
    table: pd.DataFrame,
    images: Sequence[np.ndarray],
    fit: np.ndarray,
) -> np.ndarray:
    """The network (each member of the ensemble) before training, with the same seed and initial weights;
    BatchNorm statistics from the training images."""
    n_p, n_e = table.identity.nunique(), table.attribute.nunique()
    nets = initial_members(model_params, train_params, n_p, n_e)
    size = train_params.image_size
    fit_images = [images[i] for i in np.flatnonzero(fit)]
    for net in nets:
        recalibrate_batchnorm(net, fit_images, size, "cpu")
    net = nets[0] if len(nets) == 1 else Ensemble(nets)
    return extract(net, images, size, features_params.batch_size, "cpu")
