"""Training speed: dnh's full training epoch against a bare forward + backward + Adam loop.

Both run on the same images, batch size, threads and memory layout, interleaved round by
round, so that the ratio holds even when the machine is busy; medians are reported.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from dnhcli.data.dataset import PreparedDataset
from dnhcli.models.encode import channels_last, to_input
from dnhcli.models.registry import create_model
from dnhcli.training.trainer import Hyperparams, Trainer


@dataclass(frozen=True)
class TrainSpeed:
    threads: int
    images: int
    dnh_images_per_second: float
    bare_images_per_second: float
    bare_default_layout_images_per_second: float

    @property
    def ratio(self) -> float:
        return self.dnh_images_per_second / self.bare_images_per_second

    def to_json(self) -> dict[str, Any]:
        return {"threads": self.threads, "images": self.images,
                "dnh_images_per_second": round(self.dnh_images_per_second, 1),
                "bare_images_per_second": round(self.bare_images_per_second, 1),
                "bare_default_layout_images_per_second":
                    round(self.bare_default_layout_images_per_second, 1),
                "ratio": round(self.ratio, 3)}


def _bare_epoch(images: torch.Tensor, targets: torch.Tensor, hp: Hyperparams, classes: int,
                layout_last: bool) -> Any:
    """A closure running one epoch of the plainest possible training loop."""
    model = create_model(hp.arch, bits=hp.bits, classes=classes)
    if layout_last:
        channels_last(model)
    optimizer = torch.optim.Adam(model.encoder_parameters(), lr=hp.lr)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))

    def epoch() -> None:
        for start in range(0, len(images), hp.batch_size):
            idx = order[start:start + hp.batch_size]
            x = to_input(images[idx])
            if not layout_last:
                x = x.contiguous()
            f, _ = model.encoder.features(x)
            loss = F.cross_entropy(model.classifier(f), targets[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    return epoch


def benchmark_training(dataset: PreparedDataset, hp: Hyperparams, threads: int,
                       rounds: int = 5) -> TrainSpeed:
    """Images per second of dnh's epoch and of the bare loop, median over interleaved rounds."""
    torch.set_num_threads(threads)
    trainer = Trainer(dataset, hp)
    images, targets = trainer.train["images"], trainer.train["target"]
    classes = len(trainer.target_names)
    runners = {
        "dnh": lambda: trainer.run_epoch(1),
        "bare": _bare_epoch(images, targets, hp, classes, layout_last=True),
        "bare_default": _bare_epoch(images, targets, hp, classes, layout_last=False),
    }
    for run in runners.values():  # warm-up: allocator, oneDNN primitive caches
        run()
    seconds: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            tick = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - tick)
    speed = {name: len(images) / statistics.median(values) for name, values in seconds.items()}
    return TrainSpeed(threads=threads, images=len(images), dnh_images_per_second=speed["dnh"],
                      bare_images_per_second=speed["bare"],
                      bare_default_layout_images_per_second=speed["bare_default"])
