"""The MLflow pyfunc of a GGL-Net bundle, logged as *model code*
(`gglops.adapters.tracking.log_model`).

MLflow copies this file into the model and runs it when it loads the model, with the
model's `code/` directory (the `gglnet` package) on sys.path. It therefore imports nothing
of gglops: the logged model needs mlflow, torch, numpy and the shipped `gglnet`, nothing
else, and loads where gglops is not installed. Models from code are MLflow 3's way to
avoid pickling a class by reference to a module the serving side may not have.

Input (N, C, H, W) float32 in [0, 1], any H and W; output (N, 1, H, W) probabilities. Like
`gglops predict`, each batch is zero-padded at the bottom/right to a multiple of 32 (the
network halves the size four times) and the probabilities are cropped back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel

BUNDLE_ARTIFACT = "bundle"  # the model's artifact holding model.pt and model.json
SIZE_MULTIPLE = 32  # as `gglops predict` pads (gglops.model.inference.MULTIPLE): the same answer


class GGLNetPyfunc(PythonModel):
    """Loads the bundle from the model's artifacts; predicts probabilities at any size."""

    # MLflow's switch for type-hint validation of `predict` (and its "add type hints" warning
    # on every load): the model is validated by its explicit tensor signature (free N, H, W).
    _skip_type_hint_validation = True

    def load_context(self, context: Any) -> None:
        import torch

        from gglnet import GGLNet

        bundle = Path(context.artifacts[BUNDLE_ARTIFACT])
        meta = json.loads((bundle / "model.json").read_text())
        net = GGLNet(in_channels=meta["in_channels"], width_mult=meta["width_mult"])
        state = torch.load(bundle / "model.pt", map_location="cpu", weights_only=True)
        net.load_state_dict(state)
        self._net = net.eval()

    # No type hints here: MLflow would read them as an input schema.
    def predict(self, context, model_input, params=None):
        import torch

        images = np.asarray(model_input, dtype=np.float32)
        images = images[None] if images.ndim == 3 else images
        height, width = images.shape[-2:]
        pad = [(0, 0), (0, 0), (0, -height % SIZE_MULTIPLE), (0, -width % SIZE_MULTIPLE)]
        batch = torch.from_numpy(np.ascontiguousarray(np.pad(images, pad)))
        with torch.no_grad():
            probs = torch.sigmoid(self._net(batch)).numpy()
        return probs[..., :height, :width]


# Run by MLflow as model code it registers the model; imported as a module it changes nothing.
if __name__ != "gglops.adapters.tracking.pyfunc":
    set_model(GGLNetPyfunc())
