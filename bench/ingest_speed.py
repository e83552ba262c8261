"""`dnh hash` throughput on full-size DICOMs: `--engine local` vs `--engine ray` with 1 and 2
workers, side by side in one run, and where one image's time goes.

    python bench/ingest_speed.py [--images 600] [--rounds 3] [--model encoder.onnx] [--json]

Writes --images CT-like DICOM files (512x512, 12 bits stored in 16, Rescale Slope/Intercept
and a soft-tissue window) into a scratch folder, then in each round hashes the whole folder
into a fresh database with every configuration in turn (interleaved, so that a busy machine
slows them all alike): `local` (one thread, `--on-error skip`: the same work as Ray),
`local-default` (the same with `dnh hash`'s default `--on-error stop`, which decodes every
input once more before writing), `ray-1` and `ray-2` (Ray actors of one thread each).

What is timed: one `hash_into_db` call, from planning (DICOM headers) to the last commit. The
local engine runs in a new child process each time, as `dnh hash` would (the clock starts in
the child, after its imports). Ray is started once for the whole benchmark, untimed; each run
builds its own actor pool, so starting the actors (worker processes, the model loaded in each)
is timed. Each run is paired with one of --small images, its fixed cost: "net" throughput is
(images - small) / (time - time of the small run). Figures are medians over the rounds with
their min-max spread. "ceiling" is the decode + encode loop alone in 1 and then 2 plain
processes at once (no Ray, no planning, no writer): how far 2 cores can scale this work here.
The model is --model, else runs/demo/export/encoder.onnx (from `make demo`).
"""

from __future__ import annotations

import os
import sys

for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_name] = "1"  # before numpy: one core per engine process (children and Ray inherit it)

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from dnhcli.bench.report import cpu_name  # noqa: E402
from dnhcli.ingest.ray_engine import RaySettings  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEMO_MODEL = REPO / "runs" / "demo" / "export" / "encoder.onnx"
SIDE = 512
# name, engine, Ray workers, --on-error
CONFIGS = (("local", "local", 1, "skip"), ("local-default", "local", 1, None),
           ("ray-1", "ray", 1, "skip"), ("ray-2", "ray", 2, "skip"))


def write_dicoms(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """`count` CT-like slices: an elliptic body of soft tissue (HU ~40) with two lungs (HU ~-800),
    a spine (HU ~700) and noise, uncompressed 16-bit with Rescale Intercept -1024."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import UID, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:SIDE, 0:SIDE] / SIDE - 0.5
    series, study = generate_uid(), generate_uid()
    paths = []
    for i in range(count):
        a, b = 0.40 + rng.uniform(-0.03, 0.03), 0.30 + rng.uniform(-0.03, 0.03)
        hu = np.full((SIDE, SIDE), -1000.0)
        hu[(x / a) ** 2 + (y / b) ** 2 < 1] = 40.0
        for side in (-1, 1):
            hu[((x - side * 0.17) / 0.13) ** 2 + (y / 0.2) ** 2 < 1] = -800.0
        hu[(x ** 2 + (y - 0.2) ** 2) < 0.004 + rng.uniform(0, 0.002)] = 700.0
        hu += rng.normal(0, 20, hu.shape)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.2")  # CT Image Storage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = UID("1.2.840.10008.1.2.1")  # explicit VR little endian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.InstanceNumber = study, series, i + 1
        ds.Modality, ds.BodyPartExamined, ds.PatientID = "CT", "CHEST", "BENCH"
        ds.Rows = ds.Columns = SIDE
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = 1, -1024, "HU"
        ds.WindowCenter, ds.WindowWidth = 40, 400
        ds.PixelData = np.clip(hu + 1024, 0, 4095).astype(np.uint16).tobytes()
        path = folder / f"ct{i:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def get_model(given: Path | None) -> Path:
    """--model, else the demo's exported encoder."""
    model = given or DEMO_MODEL
    if not model.is_file():
        raise SystemExit(f"no model at {model}: give --model, or run `make demo` first")
    return model


def note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def load_one_thread(model: Path) -> Any:
    from dnhcli.deploy.backends import load_backend

    if model.suffix == ".pt":  # PyTorch's threads are global
        import torch

        torch.set_num_threads(1)
    return load_backend(model, threads=1)


def one_run(model: Path, folder: Path, engine: str, workers: int, on_error: str | None, db: Path,
            backend: Any = None) -> dict[str, Any]:
    """One timed `hash_into_db` of `folder` into a fresh database at `db`; also when the first
    encoded batch reached the writer, and this process's CPU seconds (the driver's, for Ray)."""
    from dnhcli.retrieval.hashing import HashConfig, hash_into_db

    shutil.rmtree(db, ignore_errors=True)
    arrivals: list[float] = []  # the writer reports progress once per batch it is given

    def progress(stage: str, done: int, total: int, info: str = "") -> None:
        arrivals.append(time.perf_counter())

    config = HashConfig(model=model, db=db, inputs=(folder,), engine=engine, workers=workers, threads=1,
                        on_error=on_error)
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    began = time.perf_counter()
    result = hash_into_db(config, progress, backend=backend or load_one_thread(model))
    seconds = time.perf_counter() - began
    done = resource.getrusage(resource.RUSAGE_SELF)
    shutil.rmtree(db, ignore_errors=True)
    return {"seconds": seconds, "first_batch_s": (arrivals[0] - began) if arrivals else None,
            "batches": len(arrivals), "added": result.added, "count": result.count, "failed": result.failed,
            "cpu_s": done.ru_utime + done.ru_stime - cpu.ru_utime - cpu.ru_stime,
            "minor_faults_per_image": (done.ru_minflt - cpu.ru_minflt) / max(result.added, 1)}


def child(command: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Run `command` (run: one local `one_run`; loop: the decode + encode loop) in a new process."""
    done = subprocess.run([sys.executable, __file__, "--child", command, json.dumps(spec)],
                          capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise SystemExit(f"child {command} failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def child_main(command: str, spec: dict[str, Any]) -> dict[str, Any]:
    from dnhcli.ingest.decode import keep_freed_memory

    keep_freed_memory()  # as `dnh hash` and every Ray worker do
    if command == "parts":
        paths = [Path(p) for p in spec["paths"]]
        return breakdown(paths, load_one_thread(Path(spec["model"])), Path(spec["scratch"]))
    if command == "run":
        backend = load_one_thread(Path(spec["model"]))  # loaded before the clock, as for Ray's driver
        return one_run(Path(spec["model"]), Path(spec["folder"]), "local", 1, spec["on_error"],
                       Path(spec["db"]), backend)
    from dnhcli.ingest.decode import Decoder
    from dnhcli.ingest.local import run_local
    from dnhcli.ingest.plan import Known, plan_files

    backend = load_one_thread(Path(spec["model"]))
    units = list(plan_files([Path(p) for p in spec["paths"]], Known(None)))
    list(run_local(units[:8], Decoder(backend.input_side), backend, 8))  # warm-up
    time.sleep(max(0.0, spec["start_at"] - time.time()))  # the processes of one trial start together
    usage, began = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    count = sum(len(batch.codes) for batch in run_local(units, Decoder(backend.input_side), backend, 8))
    seconds, used = time.perf_counter() - began, resource.getrusage(resource.RUSAGE_SELF)
    return {"images": count, "seconds": seconds, "minor_faults": used.ru_minflt - usage.ru_minflt}


def ceiling(model: Path, paths: list[Path]) -> dict[str, Any]:
    """Images/s of the decode + encode loop (`run_local`, batches of 8 units as a Ray worker
    gets them) in 1 new process, then in 2 at once on halves."""
    from concurrent.futures import ThreadPoolExecutor

    out: dict[str, Any] = {}
    for processes in (1, 2):
        shares = [paths[i::processes] for i in range(processes)]
        start_at = time.time() + 5  # after the children's imports
        specs = [{"model": str(model), "start_at": start_at, "paths": [str(p) for p in share]}
                 for share in shares]
        with ThreadPoolExecutor(processes) as pool:
            done = list(pool.map(lambda spec: child("loop", spec), specs))
        images = sum(d["images"] for d in done)
        out[f"{processes}_process"] = round(images / max(d["seconds"] for d in done), 1)
        out[f"{processes}_process_faults_per_image"] = round(sum(d["minor_faults"] for d in done) / images)
    out["ratio"] = round(out["2_process"] / out["1_process"], 2)
    return out


def breakdown(paths: list[Path], backend: Any, scratch: Path) -> dict[str, Any]:
    """Milliseconds per image on one core, median over `paths`, in a new process (as a Ray worker
    or `dnh hash` starts): the driver's planning of the file (`plan_files`: its kind, its
    header for the key), read + decode to display values, fit to the model's input, encode (batches of 64) and
    the store's append (one commit of all); and the page faults and system time of the read,
    decode and fit loop."""
    from dnhcli.data import preprocess
    from dnhcli.data.dicom import read_dicom
    from dnhcli.index.codes import codes_from_continuous
    from dnhcli.ingest.plan import Known, plan_files
    from dnhcli.stores.hashdb import HashDB

    header, read, fit, images, meta = [], [], [], [], []
    usage = resource.getrusage(resource.RUSAGE_SELF)
    for path in paths:
        began = time.perf_counter()
        list(plan_files([path], Known(None)))
        header.append(time.perf_counter() - began)
        began = time.perf_counter()
        frames, tags = read_dicom(path)
        read.append(time.perf_counter() - began)
        began = time.perf_counter()
        images.append(preprocess.fit(frames[0], backend.input_side, str(path)))
        fit.append(time.perf_counter() - began)
        meta.append({"source": str(path), "file": str(path.absolute()), "index": None, **tags[0],
                     "key": f"dicom:{tags[0]['sop_instance_uid']}"})
    used = resource.getrusage(resource.RUSAGE_SELF)
    batch = np.stack(images)
    backend.encode(batch[:64])  # warm-up
    encode = []
    for start in range(0, len(batch), 64):
        began = time.perf_counter()
        codes = backend.encode(batch[start:start + 64])
        encode.append((time.perf_counter() - began) / len(codes))
    codes = codes_from_continuous(backend.encode(batch))
    db_path = scratch / "breakdown-db"
    shutil.rmtree(db_path, ignore_errors=True)
    with HashDB.create(db_path, backend.bits, backend.fingerprint, {}) as db:
        began = time.perf_counter()
        db.add(codes, meta)
        write = (time.perf_counter() - began) / len(codes)
    shutil.rmtree(db_path, ignore_errors=True)
    ms = {"plan": statistics.median(header) * 1e3, "read_decode": statistics.median(read) * 1e3,
          "fit": statistics.median(fit) * 1e3, "encode": statistics.median(encode) * 1e3,
          "write": write * 1e3}
    total = sum(ms.values())
    return {"images": len(paths), "ms": {k: round(v, 3) for k, v in ms.items()}, "total_ms": round(total, 3),
            "share": {k: round(v / total, 3) for k, v in ms.items()},
            "worker_ms": round(ms["read_decode"] + ms["fit"] + ms["encode"], 3),
            "driver_ms": round(ms["plan"] + ms["write"], 3),
            "decode_minor_faults_per_image": round((used.ru_minflt - usage.ru_minflt) / len(paths)),
            "decode_system_ms_per_image": round((used.ru_stime - usage.ru_stime) / len(paths) * 1e3, 3)}


def summarize(name: str, runs: list[dict[str, Any]], images: int, small: int) -> dict[str, Any]:
    raw = [images / r["seconds"] for r in runs]
    net = [(images - small) / max(r["seconds"] - r["small_seconds"], 1e-9) for r in runs]
    firsts = [r["first_batch_s"] for r in runs if r["first_batch_s"] is not None]
    return {"name": name, "runs": runs, "seconds": round(statistics.median(r["seconds"] for r in runs), 3),
            "images_per_s": round(statistics.median(raw), 1),
            "images_per_s_spread": [round(min(raw), 1), round(max(raw), 1)],
            "fixed_s": round(statistics.median(r["small_seconds"] for r in runs), 3),
            "net_images_per_s": round(statistics.median(net), 1),
            "net_images_per_s_spread": [round(min(net), 1), round(max(net), 1)],
            "first_batch_s": round(statistics.median(firsts), 3) if firsts else None,
            "cpu_s": round(statistics.median(r["cpu_s"] for r in runs), 2),
            "minor_faults_per_image": round(statistics.median(r["minor_faults_per_image"] for r in runs))}


def ratios(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    pairs = (("ray-2", "ray-1"), ("ray-1", "local"), ("ray-2", "local"), ("local", "local-default"))
    for top, bottom in pairs:
        if top in rows and bottom in rows:
            out[f"{top}/{bottom}"] = {key: round(rows[top][key] / rows[bottom][key], 2)
                                      for key in ("images_per_s", "net_images_per_s")}
    return out


def span(pair: list[float]) -> str:
    return f"{pair[0]:.0f}-{pair[1]:.0f}"


def render(report: dict[str, Any]) -> str:
    lines = [f"{report['cpu']}, {report['cores']} cores; {report['images']} DICOMs {SIDE}x{SIDE} 16-bit, "
             f"{report['rounds']} round(s), model {report['model']} ({report['backend']}, "
             f"{report['bits']} bits, input {report['input_side']} px; Ray tasks of "
             f"{report['units_per_task']} files)",
             f"timed: {report['timed']}", "",
             f"{'config':<14} {'img/s':>7} {'spread':>9} {'fixed s':>8} {'net img/s':>10} {'spread':>9} "
             f"{'1st batch s':>11} {'cpu s':>6} {'faults/img':>10}"]
    for row in report["configs"]:
        first = "-" if row["first_batch_s"] is None else f"{row['first_batch_s']:.2f}"
        raw, net = (span(row[key]) for key in ("images_per_s_spread", "net_images_per_s_spread"))
        lines.append(f"{row['name']:<14} {row['images_per_s']:>7.1f} {raw:>9} {row['fixed_s']:>8.2f} "
                     f"{row['net_images_per_s']:>10.1f} {net:>9} {first:>11} {row['cpu_s']:>6.2f} "
                     f"{row['minor_faults_per_image']:>10}")
    lines.append("(cpu s and faults/img: the timing process's own, the driver's for Ray)")
    lines.append("")
    for name, figures in report["ratios"].items():
        lines.append(f"{name}: {figures['images_per_s']:.2f}x raw, {figures['net_images_per_s']:.2f}x net")
    if report.get("ceiling"):
        c = report["ceiling"]
        lines.append(f"ceiling, decode + encode loop without Ray: 1 process {c['1_process']:.0f} img/s, "
                     f"2 processes {c['2_process']:.0f} img/s ({c['ratio']:.2f}x); "
                     f"{c['1_process_faults_per_image']} page faults per image")
    part = report["per_image"]
    lines += ["", f"one image on one core (median of {part['images']}), ms:"]
    lines += [f"  {k:<12} {v:7.3f}  {part['share'][k]:5.1%}" for k, v in part["ms"].items()]
    lines.append(f"  {'total':<12} {part['total_ms']:7.3f}  (worker side {part['worker_ms']:.3f}, "
                 f"driver side {part['driver_ms']:.3f})")
    lines.append(f"  read + decode + fit: {part['decode_minor_faults_per_image']} minor page faults and "
                 f"{part['decode_system_ms_per_image']:.2f} ms of system time per image")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--small", type=int, default=2, help="images of the fixed-cost run")
    parser.add_argument("--model", type=Path, help="encoder.onnx, encoder.xml or a checkpoint")
    parser.add_argument("--configs", default=",".join(c[0] for c in CONFIGS))
    parser.add_argument("--breakdown-images", type=int, default=100)
    parser.add_argument("--no-ceiling", action="store_true", help="skip the 1-vs-2-process loop")
    parser.add_argument("--json", action="store_true",
                        help="one JSON document on stdout (the table on stderr)")
    parser.add_argument("--scratch", type=Path, help="work here (default: a temporary folder)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child_main(args.child[0], json.loads(args.child[1]))))
        return
    if args.images <= args.small or args.rounds < 1:
        raise SystemExit("--images must exceed --small, and --rounds be at least 1")
    chosen = [c for c in CONFIGS if c[0] in args.configs.split(",")]
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="dnh-ingest-bench-"))
    scratch.mkdir(parents=True, exist_ok=True)
    ray = None
    try:
        model = get_model(args.model).absolute()
        backend = load_one_thread(model)
        began = time.perf_counter()
        paths = write_dicoms(scratch / "dicoms", args.images)
        small = scratch / "small"
        small.mkdir(exist_ok=True)
        for path in paths[:args.small]:
            shutil.copy(path, small / path.name)
        note(f"wrote {args.images} DICOMs in {time.perf_counter() - began:.1f} s; model {model}")
        if any(c[1] == "ray" for c in chosen):
            from dnhcli.ingest import ray_engine

            ray, _ = ray_engine.start_ray(ray_engine.RaySettings(workers=2, threads=1))

        def run(folder: Path, engine: str, workers: int, on_error: str | None) -> dict[str, Any]:
            if engine == "local":
                return child("run", {"model": str(model), "folder": str(folder), "on_error": on_error,
                                     "db": str(scratch / "db")})
            return one_run(model, folder, engine, workers, on_error, scratch / "db", backend)

        for _, engine, workers, on_error in chosen:  # warm-up: page cache, Ray's worker pool
            run(small, engine, workers, on_error)
        runs: dict[str, list[dict[str, Any]]] = {c[0]: [] for c in chosen}
        for round_ in range(args.rounds):
            for name, engine, workers, on_error in chosen:
                fixed = run(small, engine, workers, on_error)
                full = run(scratch / "dicoms", engine, workers, on_error)
                if full["added"] != args.images or fixed["added"] != args.small:
                    raise SystemExit(f"{name}: added {full['added']} of {args.images} images "
                                     f"({fixed['added']} of {args.small} in the small run)")
                runs[name].append({"round": round_, **{k: round(v, 4) if isinstance(v, float) else v
                                                      for k, v in full.items()},
                                   "small_seconds": round(fixed["seconds"], 4)})
                note(f"round {round_ + 1}: {name} {full['seconds']:.2f} s "
                     f"({args.images / full['seconds']:.0f} img/s), small run {fixed['seconds']:.2f} s")
        rows = {name: summarize(name, runs[name], args.images, args.small) for name in runs}
        report = {"cpu": cpu_name(), "cores": os.cpu_count(), "images": args.images, "small": args.small,
                  "rounds": args.rounds, "model": str(model), "backend": backend.name, "bits": backend.bits,
                  "input_side": backend.input_side, "units_per_task": RaySettings().units_per_task,
                  "timed": "one hash_into_db call per run (planning, decode, encode, writer) into a fresh "
                           "database; local in a new process each run; Ray started once, untimed; actor "
                           f"start-up and model load timed; fixed = a run of {args.small} images; "
                           "net = (images - small) / (time - fixed)",
                  "configs": list(rows.values()), "ratios": ratios(rows),
                  "ceiling": None if args.no_ceiling else ceiling(model, paths),
                  "per_image": child("parts", {"model": str(model), "scratch": str(scratch), "paths": [
                      str(p) for p in paths[:args.breakdown_images]]}),
                  "command": " ".join(["python", "bench/ingest_speed.py", *sys.argv[1:]])}
    finally:
        if ray is not None:
            ray.shutdown()
        if args.scratch is None:
            shutil.rmtree(scratch, ignore_errors=True)
    if args.json:
        note(render(report))
        print(json.dumps(report, indent=2))
    else:
        print(render(report))


if __name__ == "__main__":
    main()
