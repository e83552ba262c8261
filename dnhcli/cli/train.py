"""`dnh train`: train the DNH network on a prepared dataset."""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from dnhcli.cli.shared import (
    BitsOpt,
    DataOpt,
    ForceOpt,
    JsonOpt,
    OutDirOpt,
    SeedOpt,
    ThreadsOpt,
    handle_errors,
    run_and_report,
    stdout,
)
from dnhcli.models.registry import OBJECTIVES, list_models
from dnhcli.training.config import PRESETS, Hyperparams, TrainConfig
from dnhcli.training.config import preset as make_preset

if TYPE_CHECKING:
    from dnhcli.training.trainer import TrainResult

_D = Hyperparams()
_FIELDS = {f.name for f in fields(Hyperparams)}


@handle_errors
def train_command(
    ctx: typer.Context,
    data: DataOpt,
    out: OutDirOpt,
    epochs: Annotated[int, typer.Option(help="Epochs to train (in all, when resuming).",
                                        min=1)] = _D.epochs,
    lr: Annotated[float, typer.Option(help="Adam learning rate (both optimizers).")] = _D.lr,
    batch_size: Annotated[int, typer.Option(help="Images per batch.", min=2)] = _D.batch_size,
    bits: BitsOpt = _D.bits,
    class_weight: Annotated[float, typer.Option(
        help="Weight of the classification loss (0 = Cauchy and adversarial terms only).")
    ] = _D.class_weight,
    alpha1: Annotated[float, typer.Option(help="Weight of the organ-level Cauchy loss J1.")] = _D.alpha1,
    alpha2: Annotated[float, typer.Option(
        help="Weight of the disease-level Cauchy loss J2.")] = _D.alpha2,
    beta: Annotated[float, typer.Option(
        help="Weight of the adversarial term (0 switches the discriminator off).")] = _D.beta,
    gamma: Annotated[float, typer.Option(help="Cauchy scale gamma.")] = _D.gamma,
    quantization: Annotated[float, typer.Option(
        help="Weight of the quantization term mean((|h|-1)^2).")] = _D.quantization,
    balance: Annotated[bool, typer.Option(
        help="Class-balance weights: DCH pair weights in the Cauchy losses (dnh), per-image "
             "inverse class frequency in the centre loss (centres).")] = _D.balance,
    organ_balance: Annotated[bool, typer.Option(
        help="J2 as the mean of per-organ J2, so every organ weighs the same.")] = _D.organ_balance,
    classes: Annotated[str, typer.Option(
        help="What the classifier predicts: organ (as the reference) or class.")] = _D.classes,
    shift: Annotated[int, typer.Option(
        help="Augmentation: shift each training image by up to this many pixels (0 = off).",
        min=0)] = _D.shift,
    hflip: Annotated[bool, typer.Option(
        help="Augmentation: mirror training images left-right at random.")] = _D.hflip,
    lr_schedule: Annotated[str, typer.Option(
        help="Learning-rate schedule: constant, cosine or step (x0.1 at 50%, x0.01 at 75%).")
    ] = _D.lr_schedule,
    weight_decay: Annotated[float, typer.Option(
        help="Decoupled weight decay of the encoder and classifier (AdamW; 0 = Adam).")
    ] = _D.weight_decay,
    label_smoothing: Annotated[float, typer.Option(
        help="Label smoothing of the classification loss.")] = _D.label_smoothing,
    arch: Annotated[str, typer.Option(
        help=f"Encoder architecture: {', '.join(list_models())}.")] = _D.arch,
    objective: Annotated[str, typer.Option(
        help="Training objective: " + "; ".join(f"{k}: {v}" for k, v in OBJECTIVES.items()) + "."
    )] = _D.objective,
    centre_weight: Annotated[float, typer.Option(
        help="Weight of the hash-centre loss (objective centres).")] = _D.centre_weight,
    sampling: Annotated[str, typer.Option(
        help="Batch sampling: natural (each image once per epoch), organ or class (draws with "
             "replacement, every organ or class equally likely).")] = _D.sampling,
    logit_adjust: Annotated[float, typer.Option(
        help="Logit adjustment tau of the classification loss (0 = off; 1 as Menon et al.).")
    ] = _D.logit_adjust,
    ordinal: Annotated[bool, typer.Option(
        help="Graded hash centres for organs whose diseases are ordered grades (Retina).")
    ] = _D.ordinal,
    instance_weight: Annotated[float, typer.Option(
        help="Weight of the instance term: NT-Xent between the codes of two altered views of each "
             "image, so distinct images get distinct codes (0 = off, one view).")
    ] = _D.instance_weight,
    instance_temperature: Annotated[float, typer.Option(
        help="Temperature of the instance term's NT-Xent.")] = _D.instance_temperature,
    instance_balance: Annotated[float, typer.Option(
        help="Weight of bit balance + decorrelation of the codes (with the two views; 0 = off).")
    ] = _D.instance_balance,
    preset: Annotated[str, typer.Option(
        help="Start from a preset: " + ", ".join(PRESETS) + " (reference: the reference method, "
             "LeNet-5 + DNH with the reference's settings). Options given here override it.")
    ] = "default",
    seed: SeedOpt = _D.seed,
    threads: ThreadsOpt = None,
    val_every: Annotated[int, typer.Option(
        help="Validate every N epochs (and always at the last); best.pt is chosen among "
             "validated epochs.", min=1)] = 1,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue the run in --out from its last whole epoch.")] = False,
    force: ForceOpt = False,
    json: JsonOpt = False,
) -> None:
    """Train a hashing network: an encoder with a tanh hash layer and a classifier, by an objective.

    Writes last.pt, best.pt (by validation disease-level mAP@100) and summary.csv to --out.
    Resume with the same command plus --resume (only --epochs may change).
    The defaults train the BN CNN toward hash centres plus an instance term (two altered views
    of each image, NT-Xent), so distinct images get distinct codes; --preset reference trains
    the reference method.
    """
    options = dict(locals())  # the hyperparameters given on the command line override the preset
    given = {name: value for name, value in options.items() if name in _FIELDS
             and getattr(ctx.get_parameter_source(name), "name", "DEFAULT") != "DEFAULT"}
    hparams = make_preset(preset, **given)
    config = TrainConfig(data=data, out=out, hparams=hparams, threads=threads, resume=resume,
                         force=force, val_every=val_every)
    from dnhcli.training.trainer import train

    run_and_report(json, lambda progress: train(config, progress), _render)


def _render(result: TrainResult) -> None:
    last = result.history[-1]
    assert last.val_organ_map is not None and last.fragile_fraction is not None  # last is validated
    table = Table(title="Training finished", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("best checkpoint", f"{result.checkpoint} (epoch {result.best_epoch}, "
                            f"val disease mAP@100 {result.best_metric:.4f})"),
        ("last checkpoint", f"{result.last} (epoch {last.epoch})"),
        ("time", f"{result.seconds:.1f} s, {last.images_per_second:.0f} training images/s"),
        ("val mAP@100", f"organ {last.val_organ_map:.4f}, disease {last.val_disease_map:.4f}"),
        ("losses", f"class {last.loss_class:.4f}, J1 {last.loss_j1:.4f}, J2 {last.loss_j2:.4f}, "
                   f"disc {last.loss_disc:.4f}, quant {last.loss_quant:.4f}, centre {last.loss_centre:.4f}, "
                   f"instance {last.loss_instance:.4f}"),
        ("fragile components", f"{100 * last.fragile_fraction:.3f}% of val code components "
                               "with |h| < 0.01"),
        ("distinct val codes", str(last.distinct_codes)),
    ]
    for split, distinct, tie in (("train", last.train_distinct_codes, last.train_mean_tie),
                                 ("val", last.distinct_codes, last.val_mean_tie)):
        if distinct is not None and tie is not None:
            rows.append((f"{split} codes", f"{distinct} distinct, mean tie size {tie:.1f} "
                                           f"(items sharing an item's exact code, itself included)"))
    for name, value in rows:
        table.add_row(name, value)
    stdout.print(table)
