"""`train`: an objective stepped per batch, with validation, checkpoints and resume.

With the `dnh` objective, one backward pass per batch steps both optimizers:

    encoder + classifier:  c J_class + alpha1 J1 + alpha2 J2 + q J_quant - beta J_D
    discriminator:         J_D  (its own Adam)

The adversarial sign comes from a gradient-reversal layer between the codes and
the discriminator. With the `centres` objective the encoder and classifier step on
c J_class + w J_centre + q J_quant (`dnhcli.models.centres`) and the discriminator rests.
Batch order and pair draws come from generators seeded by (seed, epoch), so a resumed run
repeats an uninterrupted one exactly.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numba
import numpy as np
import torch

from dnhcli.data.dataset import PreparedDataset, SplitData
from dnhcli.errors import DnhError, InputError, OutputExistsError
from dnhcli.index import search
from dnhcli.manifest import package_versions
from dnhcli.models import centres, instance, losses
from dnhcli.models.checkpoint import load_checkpoint, save_checkpoint
from dnhcli.models.encode import channels_last, encode_images, to_input
from dnhcli.models.registry import create_model, model_defaults
from dnhcli.progress import ProgressFn, no_progress
from dnhcli.training import augment, views
from dnhcli.training.config import SELECTION_METRIC, Hyperparams, TrainConfig
from dnhcli.training.log import LOSS_NAMES, NOT_VALIDATED, EpochStats, validation_metrics, write_summary


@dataclass(frozen=True)
class TrainResult:
    """Where the checkpoints are and how the run went."""

    checkpoint: Path
    last: Path
    epochs: int
    seconds: float
    best_metric: float
    best_epoch: int
    history: list[EpochStats]

    def to_json(self) -> dict[str, Any]:
        final = self.history[-1]
        return {"checkpoint": str(self.checkpoint), "last": str(self.last), "epochs": self.epochs,
                "seconds": round(self.seconds, 3), "best_metric": self.best_metric,
                "best_epoch": self.best_epoch, "metric": SELECTION_METRIC,
                "fragile_fraction": final.fragile_fraction, "distinct_codes": final.distinct_codes,
                "last_epoch": asdict(final), "codes": self.codes()}

    def codes(self) -> dict[str, Any]:
        """Distinct codes and mean tie size of the train and val codes of the last epoch."""
        final = self.history[-1]
        return {"epoch": final.epoch,
                "train": {"distinct": final.train_distinct_codes, "mean_tie": final.train_mean_tie},
                "val": {"distinct": final.distinct_codes, "mean_tie": final.val_mean_tie}}


class TrainingInterrupted(DnhError):
    """Ctrl-C during training: the last whole epoch is saved."""

    exit_code = 130


def _tensors(split: SplitData, mode: str) -> dict[str, torch.Tensor]:
    labels = torch.from_numpy(np.array(split.labels, dtype=np.int64))
    return {"images": torch.from_numpy(np.array(split.images)),
            "organ": labels[:, 1].contiguous(), "disease": labels[:, 2].contiguous(),
            "klass": labels[:, 0].contiguous(),
            "target": (labels[:, 1] if mode == "organ" else labels[:, 0]).contiguous()}


def _frequencies(labels: torch.Tensor, classes: int) -> torch.Tensor:
    """Each class's share of `labels` (a class absent from them counts as one image)."""
    counts = torch.bincount(labels, minlength=classes).double().clamp(min=1)
    return (counts / counts.sum()).float()


class Trainer:
    """Holds the data as tensors in memory, the network and both optimizers."""

    def __init__(self, dataset: PreparedDataset, hp: Hyperparams) -> None:
        hp.check()
        self.hp, self.dataset = hp, dataset
        if not dataset.labelled:
            raise InputError(f"{dataset.path} holds unlabelled images: dnh trains on labelled sets only",
                             hint="prepare it with labels (class folders, --labels or --label-tag)")
        self.train = _tensors(dataset.split("train"), hp.classes)
        self.val_split = dataset.split("val")
        if len(self.train["images"]) < 2:
            raise InputError(f"the train split of {dataset.path} has fewer than 2 images")
        self.target_names = dataset.organ_names if hp.classes == "organ" else dataset.class_names
        torch.manual_seed(hp.seed)
        self.model = create_model(hp.arch, bits=hp.bits, classes=len(self.target_names))
        channels_last(self.model)
        if hp.weight_decay > 0:  # decoupled (AdamW); plain Adam otherwise
            self.optimizer: torch.optim.Optimizer = torch.optim.AdamW(
                self.model.encoder_parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        else:
            self.optimizer = torch.optim.Adam(self.model.encoder_parameters(), lr=hp.lr)
        self.disc_optimizer = torch.optim.Adam(self.model.discriminator.parameters(), lr=hp.lr)
        ordinal = dataset.ordinal_organs if hp.ordinal else ()
        self.centres = (torch.from_numpy(centres.hash_centres(
            dataset.class_organs, hp.bits, ordinal_organs=ordinal)).float()
            if hp.objective == "centres" else torch.zeros(0))
        self.log_prior = (hp.logit_adjust * torch.log(_frequencies(self.train["target"],
                                                                   len(self.target_names)))
                          if hp.logit_adjust > 0 else None)
        # class-balanced centre loss: image weights 1 / (classes * share of its class), mean 1
        freq = _frequencies(self.train["klass"], len(dataset.class_names))
        self.class_weights = 1.0 / (len(dataset.class_names) * freq)
        self.instance = hp.instance_weight > 0 or hp.instance_balance > 0
        self._facts = self._static_facts()

    def _generator(self, epoch: int, stream: int) -> torch.Generator:
        seed = np.random.SeedSequence([self.hp.seed, epoch, stream]).generate_state(1, np.uint64)[0]
        return torch.Generator().manual_seed(int(seed))

    def step(self, idx: torch.Tensor, pair_gen: torch.Generator,
             aug_gen: torch.Generator | None = None) -> torch.Tensor:
        """One optimisation step on the items `idx`; returns the detached loss terms."""
        hp, t = self.hp, self.train
        x = to_input(t["images"][idx])
        j_inst = nt_xent = torch.zeros(())
        if self.instance and aug_gen is not None:
            # two views in one forward pass; the instance term ties each image's two codes
            x1, x2 = views.two_views(x, aug_gen, shift=hp.shift, hflip=hp.hflip)
            f, h = self.model.encoder.features(torch.cat([x1, x2]))
            j_inst, nt_xent = self._instance_loss(h)
            if hp.objective != "centres":  # the dnh pair terms on view 1
                f, h = f[:len(idx)], h[:len(idx)]
            idx = idx.repeat(len(f) // len(idx))
        else:
            if aug_gen is not None:
                x = augment.augment(x, hp.shift, hp.hflip, aug_gen)
            f, h = self.model.encoder.features(x)
        organ, disease = t["organ"][idx], t["disease"][idx]
        j_class = losses.classification_loss(self.model.classifier(f), t["target"][idx],
                                             hp.label_smoothing, self.log_prior)
        if hp.objective == "centres":
            return self._centre_step(h, j_class, losses.quantization_loss(h), t["klass"][idx],
                                     j_inst, nt_xent)
        # this order of the terms fixes autograd's order of summing gradients, hence the weights
        j1, j2 = losses.pair_losses(h, organ, disease, hp.gamma, hp.balance,
                                    hp.organ_balance)
        j_quant = losses.quantization_loss(h)
        if hp.beta > 0:
            pairs, order = losses.order_pairs(losses.grad_reverse(h, hp.beta), t["klass"][idx],
                                              pair_gen, hp.max_pairs)
            j_disc = losses.discriminator_loss(self.model.discriminator(pairs), order)
        else:
            j_disc = torch.zeros(())
        encoder_loss = (hp.class_weight * j_class + hp.alpha1 * j1 + hp.alpha2 * j2
                        + hp.quantization * j_quant)
        if self.instance:
            encoder_loss = encoder_loss + j_inst
        self.optimizer.zero_grad(set_to_none=True)
        self.disc_optimizer.zero_grad(set_to_none=True)
        (encoder_loss + j_disc).backward()
        self.optimizer.step()
        if hp.beta > 0:
            self.disc_optimizer.step()
        total = encoder_loss - hp.beta * j_disc
        return torch.stack([j_class, j1, j2, j_disc, j_quant, torch.zeros(()), total,
                            nt_xent]).detach()

    def _instance_loss(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the weighted instance term, NT-Xent alone) on the codes of view 1 then view 2:
        lambda NT-Xent + balance weight (bit balance + decorrelation)."""
        hp, n = self.hp, len(h) // 2
        nt_xent = instance.nt_xent(h[:n], h[n:], hp.instance_temperature)
        term = hp.instance_weight * nt_xent
        if hp.instance_balance > 0:
            term = term + hp.instance_balance * (instance.bit_balance(h) + instance.decorrelation(h))
        return term, nt_xent

    def _centre_step(self, h: torch.Tensor, j_class: torch.Tensor, j_quant: torch.Tensor,
                     klass: torch.Tensor, j_inst: torch.Tensor | None = None,
                     nt_xent: torch.Tensor | None = None) -> torch.Tensor:
        """The centres objective: c J_class + w J_centre + q J_quant (+ the weighted instance
        term; no pairs, no discriminator)."""
        hp = self.hp
        weights = self.class_weights[klass] if hp.balance else None
        j_centre = centres.centre_loss(h, self.centres[klass], weights)
        total = hp.class_weight * j_class + hp.centre_weight * j_centre + hp.quantization * j_quant
        zero = torch.zeros(())
        if self.instance and j_inst is not None:
            total = total + j_inst
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        return torch.stack([j_class, zero, zero, zero, j_quant, j_centre, total,
                            zero if nt_xent is None else nt_xent]).detach()

    def run_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the train split in a seeded order; mean of each loss term."""
        self.model.train()
        n = len(self.train["images"])
        order = self._order(epoch, n)
        pair_gen = self._generator(epoch, 1)
        augmenting = self.hp.shift > 0 or self.hp.hflip or self.instance
        aug_gen = self._generator(epoch, 2) if augmenting else None
        factor = augment.lr_factor(self.hp.lr_schedule, epoch, self.hp.epochs)
        for opt in (self.optimizer, self.disc_optimizer):
            for group in opt.param_groups:
                group["lr"] = self.hp.lr * factor
        sums, batches = torch.zeros(len(LOSS_NAMES)), 0
        for start in range(0, n, self.hp.batch_size):
            idx = order[start:start + self.hp.batch_size]
            if len(idx) < 2:
                continue
            sums += self.step(idx, pair_gen, aug_gen)
            batches += 1
        return dict(zip(LOSS_NAMES, (sums / max(batches, 1)).tolist()))

    def _order(self, epoch: int, n: int) -> torch.Tensor:
        """The epoch's batch order: a permutation (natural sampling), or n draws with
        replacement in which every organ or class is equally likely."""
        gen = self._generator(epoch, 0)
        if self.hp.sampling == "natural":
            return torch.randperm(n, generator=gen)
        group = self.train["organ" if self.hp.sampling == "organ" else "klass"]
        counts = torch.bincount(group).double()
        return torch.multinomial(1.0 / counts[group], n, replacement=True, generator=gen)

    def _static_facts(self) -> dict[str, Any]:
        """What a checkpoint records about the run that never changes during it."""
        ds = self.dataset
        return {
            "arch": self.hp.arch, "bits": self.hp.bits, "classes_mode": self.hp.classes,
            "class_names": list(self.target_names), "organ_names": ds.organ_names,
            "disease_names": [ds.disease_names(o) for o in range(len(ds.organ_names))],
            "dataset_classes": ds.class_names,
            "hparams": asdict(self.hp),
            "preprocessing": model_defaults(self.hp.arch).preprocessing,
            "dataset": {"fingerprint": ds.fingerprint, "path": str(ds.path.absolute()),
                        "seed": ds.manifest["seed"]},
            "versions": package_versions(),
        }

    def state(self) -> dict[str, Any]:
        """The checkpoint payload (everything but the epoch's figures)."""
        return {**self._facts, "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "disc_optimizer": self.disc_optimizer.state_dict()}


def _check_out(config: TrainConfig) -> None:
    out, last = config.out, config.out / "last.pt"
    if config.resume:
        if not last.is_file():
            raise InputError(f"nothing to resume: {last} does not exist",
                             hint="start the run without --resume")
        return
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not config.force:
            raise OutputExistsError(f"output folder exists and is not empty: {out}",
                                    hint="use --resume to continue it, --force to start over, "
                                         "or another --out")
        if not last.is_file():
            raise OutputExistsError(f"refusing to replace {out}: it is not a dnh training folder")


def _restore(trainer: Trainer, config: TrainConfig) -> tuple[int, list[EpochStats], float, int]:
    """Load last.pt into the trainer after checking it is the same run; returns its progress."""
    ckpt = load_checkpoint(config.out / "last.pt")
    current = trainer._facts
    for key, what in (("arch", "architecture"), ("bits", "bit length"),
                      ("class_names", "class set"), ("classes_mode", "--classes")):
        if ckpt[key] != current[key]:
            raise InputError(f"cannot resume: the checkpoint's {what} is {ckpt[key]!r}, "
                             f"this run's is {current[key]!r}",
                             hint="resume with the options of the first run, or start a new --out")
    if ckpt["dataset"]["fingerprint"] != current["dataset"]["fingerprint"]:
        raise InputError(f"cannot resume: {config.out / 'last.pt'} was trained on another dataset "
                         f"({ckpt['dataset']['path']})", hint="pass the same --data as the first run")
    differ = {k: (v, current["hparams"][k]) for k, v in ckpt["hparams"].items()
              if k != "epochs" and current["hparams"].get(k) != v}
    if differ:
        said = ", ".join(f"{k} {a!r} (now {b!r})" for k, (a, b) in differ.items())
        raise InputError(f"cannot resume: the first run used {said}",
                         hint="resume with the same options as the first run (only --epochs may change)")
    trainer.model.load_state_dict(ckpt["model"])
    trainer.optimizer.load_state_dict(ckpt["optimizer"])
    trainer.disc_optimizer.load_state_dict(ckpt["disc_optimizer"])
    history = [EpochStats(**row) for row in ckpt.get("history", [])]
    return int(ckpt["epoch"]), history, float(ckpt.get("best_metric", -1.0)), int(ckpt.get("best_epoch", 0))


def train(config: TrainConfig, progress: ProgressFn = no_progress) -> TrainResult:
    """Train (or resume) a DNH model; writes last.pt, best.pt and summary.csv to `config.out`."""
    if config.val_every < 1:
        raise InputError(f"--val-every must be at least 1, got {config.val_every}")
    if config.threads is not None:
        if config.threads < 1:
            raise InputError(f"--threads must be at least 1, got {config.threads}")
        torch.set_num_threads(config.threads)
        # the validation search too: a second numba (OpenMP) thread would spin between searches
        search.set_threads(min(config.threads, numba.config.NUMBA_NUM_THREADS))
    _check_out(config)
    dataset = PreparedDataset.open(config.data)
    trainer = Trainer(dataset, config.hparams)
    history: list[EpochStats] = []
    start, best_metric, best_epoch = 0, -1.0, 0
    if config.resume:
        start, history, best_metric, best_epoch = _restore(trainer, config)
        if start >= trainer.hp.epochs:
            raise InputError(f"{config.out / 'last.pt'} already holds {start} epochs",
                             hint="raise --epochs to train more")
    elif config.out.exists() and config.force:
        for name in ("last.pt", "best.pt", "summary.csv"):
            (config.out / name).unlink(missing_ok=True)
    config.out.mkdir(parents=True, exist_ok=True)
    last, best = config.out / "last.pt", config.out / "best.pt"
    hp, began = trainer.hp, time.perf_counter()
    val_images = torch.from_numpy(np.array(trainer.val_split.images))
    epoch = start
    try:
        for epoch in range(start + 1, hp.epochs + 1):
            tick = time.perf_counter()
            terms = trainer.run_epoch(epoch)
            train_seconds = time.perf_counter() - tick
            metrics = NOT_VALIDATED
            if epoch % config.val_every == 0 or epoch == hp.epochs:
                val_h = encode_images(trainer.model.encoder, val_images)
                train_h = encode_images(trainer.model.encoder, trainer.train["images"])
                metrics = validation_metrics(val_h, train_h, trainer.val_split, trainer.train)
            stats = EpochStats(epoch=epoch, **terms, **metrics,  # type: ignore[arg-type]
                               train_seconds=round(train_seconds, 4),
                               images_per_second=round(len(trainer.train["images"]) / train_seconds, 1))
            history.append(stats)
            payload = {**trainer.state(), "epoch": epoch, "metric": stats.val_disease_map,
                       "history": [asdict(s) for s in history]}
            if stats.val_disease_map is not None and stats.val_disease_map > best_metric:
                best_metric, best_epoch = stats.val_disease_map, epoch
                save_checkpoint(best, {**payload, "best_metric": best_metric, "best_epoch": epoch})
            save_checkpoint(last, {**payload, "best_metric": best_metric, "best_epoch": best_epoch})
            write_summary(config.out / "summary.csv", history)
            progress("train", epoch, hp.epochs, info=stats.describe())
    except KeyboardInterrupt:
        raise TrainingInterrupted(
            f"interrupted in epoch {epoch}; epochs up to {epoch - 1} are saved in {last}",
            hint="run the same command with --resume to continue") from None
    return TrainResult(checkpoint=best, last=last, epochs=hp.epochs,
                       seconds=time.perf_counter() - began, best_metric=best_metric,
                       best_epoch=best_epoch, history=history)

