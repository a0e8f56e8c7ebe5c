"""Command handlers for `python -m core`. Each returns (json payload, text, exit code)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core import datasets, jobs
from core.config import AUTO_BATCH, OPTIMIZERS, SCHEDULES, TrainConfig
from core.data.dataset import Dataset, load_dataset
from core.data.demo import DEMOS
from core.hooks import ProgressBar
from core.recipes import RECIPES, recipe_config
from core.runs import delete_run, new_run, run_summary
from core.store import Store

Result = tuple[object, str, int]
TRAIN_KEYS = ("run_id", "name", "status", "model", "data", "device", "epochs", "best_val_acc",
              "best_epoch", "test_acc", "train_seconds", "train_images_per_s", "params", "flops",
              "image_size", "batch_size", "compile_mode", "error", "per_class")


def stderr_progress(label: str):
    def report(done: int, total: int) -> None:
        print(f"\r{label}: {done}/{total}", end="" if done < total else "\n", file=sys.stderr)
    return report


def data_import(args: argparse.Namespace) -> Result:
    dataset = datasets.import_path(args.path, args.name, val=args.val, test=args.test,
                                   seed=args.seed, image_size=args.image_size,
                                   progress=stderr_progress("importing"))
    return import_result(dataset)


def data_demo(args: argparse.Namespace) -> Result:
    dataset = datasets.add_demo(args.kind, args.name, val=args.val, test=args.test, seed=args.seed,
                                overwrite=args.overwrite, image_size=args.image_size,
                                per_class=args.per_class, test_per_class=args.test_per_class,
                                progress=stderr_progress(f"writing {args.kind}"))
    return import_result(dataset)


def import_result(dataset: Dataset) -> Result:
    summary = dataset.summary()
    dropped = f", dropped {len(summary['dropped'])}" if summary["dropped"] else ""
    text = (f"dataset {summary['name']}: {summary['kept']} images in {len(summary['classes'])} "
            f"classes{dropped}; splits {summary['splits']}")
    return summary, text, 0


def data_list(args: argparse.Namespace) -> Result:
    summaries = datasets.summaries()
    for summary in summaries:
        summary.pop("dropped")
    text = "\n".join(f"{s['name']:24} {s['kept']:7} images  {len(s['classes']):3} classes  "
                     f"{s['origin']}" for s in summaries) or "no datasets yet"
    return {"datasets": summaries}, text, 0


def data_delete(args: argparse.Namespace) -> Result:
    datasets.remove(args.name)
    return {"deleted": args.name}, f"deleted dataset {args.name}", 0


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    fields = {key: getattr(args, key) for key in (
        "data", "model", "epochs", "batch_size", "lr", "optimizer", "schedule", "image_size",
        "device", "name", "seed", "weight_decay", "label_smoothing", "patience", "precision",
        "jitter", "pad_crop", "warmup_epochs", "freeze_epochs", "init_from", "gpus")
        if getattr(args, key, None) is not None}
    if getattr(args, "no_flip", False):  # only a flag given overrides a recipe's choice
        fields["flip"] = False
    for key in ("compile", "tta_flip"):  # --x / --no-x, or neither (None)
        if getattr(args, key, None) is not None:
            fields[key] = getattr(args, key)
    if getattr(args, "ema_decay", None) is not None:
        fields["ema_decay"] = args.ema_decay or None  # 0: off
    if getattr(args, "recipe", None):
        if "data" not in fields:
            raise ValueError("A recipe adapts to the dataset: give --data NAME too.")
        return recipe_config(args.recipe, **fields)
    return TrainConfig(**fields)


def batch_size_arg(text: str) -> int:
    """`--batch-size`: a number, or "auto" (AUTO_BATCH: the largest that fits the device)."""
    if text.strip().lower() == "auto":
        return AUTO_BATCH
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a batch size; give a whole number "
                                         "such as 64, or auto") from None
    if value < 1:
        raise argparse.ArgumentTypeError("the batch size must be at least 1 (or auto)")
    return value


def train(args: argparse.Namespace) -> Result:
    from core import distributed  # torch: imported by the commands that train, not by every one

    if distributed.launched_by_torchrun() and not distributed.joined():
        return distributed.train_as_rank(args, train)  # one rank of a torchrun job
    store = Store()
    if args.execute:  # a run the worker claimed, started here through torchrun
        return train_result(distributed.execute(args.execute, store, may_launch=False))
    if args.resume:
        return train_resume(args, store)
    if not args.data or not (args.model or args.recipe):
        raise ValueError("train needs --data NAME and --model MODEL or --recipe RECIPE "
                         "(or --resume RUN).")
    config = config_from_args(args)
    load_dataset(config.data)  # fail fast, before a run row exists
    if args.queue:
        run_id = jobs.submit(config, store)
        return {"run_id": run_id, "status": "queued"}, f"queued run {run_id}", 0
    run_id = new_run(config, store, status="running")
    return train_result(distributed.execute(run_id, store, [ProgressBar(config.epochs)]))


def train_resume(args: argparse.Namespace, store: Store) -> Result:
    from core import distributed

    run = jobs.resumable_run(args.resume, store)
    if args.epochs:
        store.update_run(run["run_id"], config=run["config"] | {"epochs": args.epochs})
    epochs = args.epochs or run["config"]["epochs"]
    return train_result(distributed.execute(run["run_id"], store, [ProgressBar(epochs)]))


def train_result(result: dict) -> Result:
    payload = {key: result.get(key) for key in TRAIN_KEYS}
    text = (f"run {payload['name']} ({payload['run_id']}): {payload['status']}, "
            f"best val acc {fmt(payload['best_val_acc'])}, test acc {fmt(payload['test_acc'])}, "
            f"{fmt(payload['train_seconds'], '.1f')} s, "
            f"{fmt(payload['train_images_per_s'], '.0f')} images/s")
    if payload["error"]:
        text += f"\n{payload['error']}"
    return payload, text, 0 if payload["status"] in ("completed", "stopped") else 1


def fmt(value, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def runs_list(args: argparse.Namespace) -> Result:
    store = Store()
    jobs.reconcile(store)
    runs = [run_summary(run) for run in store.list_runs()]
    text = "\n".join(f"{r['run_id']}  {r['name'][:32]:32} {r['status']:11} {r['model'][:16]:16} "
                     f"{r['data'][:16]:16} val {fmt(r['best_val_acc'])} test {fmt(r['test_acc'])}"
                     for r in runs) or "no runs yet"
    return {"runs": runs}, text, 0


def runs_show(args: argparse.Namespace) -> Result:
    store = Store()
    jobs.reconcile(store)
    run = store.get_run(args.run)
    if run is None:
        raise ValueError(f"There is no run {args.run!r}; see `python -m core runs list`.")
    payload = run_summary(run) | {"config": run["config"], "result": run["summary"]}
    text = "\n".join(f"{key}: {value}" for key, value in payload.items() if key != "result")
    return payload, text, 0


def runs_cancel(args: argparse.Namespace) -> Result:
    run_id = jobs.stop(args.run)
    return {"run_id": run_id, "stop_requested": True}, f"asked run {run_id} to stop", 0


def runs_delete(args: argparse.Namespace) -> Result:
    delete_run(args.run, Store())
    return {"deleted": args.run}, f"deleted run {args.run}", 0


def predict(args: argparse.Namespace) -> Result:
    from core.infer import load_model, open_image

    loaded = load_model(args.run)
    images = [open_image(path) for path in args.images]
    tops = loaded.top_k(images, args.top_k)
    predictions = [{"image": str(path), "top": top}
                   for path, top in zip(args.images, tops, strict=True)]
    text = "\n".join(f"{p['image']}: " + ", ".join(f"{t['label']} {t['prob']:.3f}"
                                                   for t in p["top"]) for p in predictions)
    return {"run_id": loaded.run_id, "predictions": predictions}, text, 0


def export(args: argparse.Namespace) -> Result:
    from core.export import export_run

    result = export_run(args.run, args.format, args.out)
    parity = result["parity"]
    text = (f"exported run {result['run_id']} as {result['format']} to {result['path']} "
            f"(card {result['card']}); parity on {parity['images']} {parity['inputs']} images: "
            f"max |diff| {fmt(parity['max_abs_diff'], '.2e')}, "
            f"top-1 agreement {fmt(parity['top1_agreement'], '.3f')}")
    if parity["passed"]:
        return result, text, 0
    print(f"error: the exported model's outputs differ from PyTorch's by more than "
          f"{parity['tolerance']:g} (max {fmt(parity['max_abs_diff'], '.2e')}); do not ship "
          "it. Try the other format.", file=sys.stderr)
    return result, text, 1


def lr_find(args: argparse.Namespace) -> Result:
    from core.lr_find import lr_find as range_test

    config = config_from_args(args)
    load_dataset(config.data)
    found = range_test(config)
    text = (f"suggested learning rate: {fmt(found['suggestion'], '.2e')} "
            f"(tried {len(found['lrs'])} steps from {found['lrs'][0]:.1e})")
    return found, text, 0


def bench(args: argparse.Namespace) -> Result:
    from core import bench as benchmarks
    from core.setup import pick_device

    device = pick_device(args.device or "auto")
    if args.kind == "pipeline":
        rows = benchmarks.pipeline(args.data, args.model or "tiny-cnn", image_size=args.image_size,
                                   batch_size=args.batch_size or 64, steps=args.steps,
                                   warmup=args.warmup, device=args.device or "auto")
        title = "Engine vs naive pipeline vs synthetic ceiling (training images/s)"
    elif args.kind == "latency":
        from core.latency import single_image_latency

        if not args.run:
            raise ValueError("bench latency needs --run RUN.")
        rows = [single_image_latency(args.run, repeats=args.steps)]
        title = "Single-image latency, model loaded once (ms)"
    elif args.kind == "ingest":
        rows = benchmarks.ingest(args.data, args.image_size or 32)
        title = "Ingest: decoding into the cache"
    else:
        if not (args.model or args.recipe):
            raise ValueError("bench accuracy needs --model (or --recipe).")
        seeds = [int(s) for s in args.seeds.split(",")]
        targets = [float(t) for t in args.targets.split(",")]
        rows = benchmarks.time_to_accuracy(config_from_args(args), targets, seeds)
        title = "Time to accuracy"
    table = benchmarks.markdown_table(rows, title, device)
    return {"kind": args.kind, "rows": rows, "markdown": table}, table, 0


def worker(args: argparse.Namespace) -> Result:
    count = jobs.work(idle_exit_s=args.idle_exit)
    if count < 0:
        return {"started": False}, "another worker already serves this workspace", 0
    return {"trained": count}, f"worker trained {count} runs", 0


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", help="dataset name")
    parser.add_argument("--model", help="preset, timm name, or path to a JSON layer spec")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=batch_size_arg,
                        help="a number, or auto: the largest that fits the device (found once)")
    parser.add_argument("--lr", type=float, help="peak learning rate")
    parser.add_argument("--optimizer", choices=OPTIMIZERS)
    parser.add_argument("--schedule", choices=SCHEDULES)
    parser.add_argument("--image-size", type=int)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"))
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"))
    parser.add_argument("--name", help="a name for the run")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--weight-decay", type=float)
    parser.add_argument("--label-smoothing", type=float)
    parser.add_argument("--warmup-epochs", type=float)
    parser.add_argument("--patience", type=int, help="early stopping after N epochs without "
                                                     "val-loss improvement")
    parser.add_argument("--pad-crop", type=int, help="random translation in pixels (0: off)")
    parser.add_argument("--jitter", type=float, help="colour jitter strength (0: off)")
    parser.add_argument("--no-flip", action="store_true", help="no random horizontal flips")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction,
                        help="the fastest switch: torch.compile the model (CUDA graphs for "
                             "small images on a GPU), falling back to eager if it fails")
    parser.add_argument("--tta-flip", action=argparse.BooleanOptionalAction,
                        help="evaluate with flip test-time augmentation")
    parser.add_argument("--ema-decay", type=float, metavar="D",
                        help="evaluate an exponential moving average of the weights, e.g. "
                             "0.999 (0: off)")
    parser.add_argument("--recipe", choices=sorted(RECIPES),
                        help="a preset of every setting, adapted to the dataset; other flags "
                             "override it")
    parser.add_argument("--freeze-epochs", type=int, help="pretrained: epochs with frozen backbone")
    parser.add_argument("--init-from", help="start from this run's weights (new head)")
    parser.add_argument("--resume", metavar="RUN", help="continue an interrupted or stopped run")
    parser.add_argument("--queue", action="store_true", help="queue for the background worker")
    parser.add_argument("--gpus", type=int, help="train data-parallel on N GPUs through torchrun "
                                                 "(--batch-size is then the global batch)")
    parser.add_argument("--execute", metavar="RUN", help="train this recorded run now (the "
                                                        "worker starts multi-GPU runs so)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="CNN Studio engine")
    commands = parser.add_subparsers(dest="command")

    def command(group, name: str, handler, help_text: str) -> argparse.ArgumentParser:
        sub = group.add_parser(name, help=help_text)
        sub.set_defaults(handler=handler)
        sub.add_argument("--json", action="store_true", help="print one JSON object on stdout")
        return sub

    data = commands.add_parser("data", help="import and list datasets").add_subparsers()
    for sub in (command(data, "import", data_import, "import a zip, folder or CSV"),
                command(data, "demo", data_demo, "a built-in dataset, no download")):
        sub.add_argument("--name", required=True)
        sub.add_argument("--image-size", type=int, help="also build the cache at this size")
        sub.add_argument("--val", type=float, default=0.1)
        sub.add_argument("--test", type=float, default=0.1)
        sub.add_argument("--seed", type=int, default=0)
    data.choices["import"].add_argument("path", type=Path)
    data.choices["demo"].add_argument("kind", choices=sorted(DEMOS))
    data.choices["demo"].add_argument("--overwrite", action="store_true")
    data.choices["demo"].add_argument("--per-class", type=int, metavar="N",
                                      help="keep N training images per class (seeded)")
    data.choices["demo"].add_argument("--test-per-class", type=int, metavar="N",
                                      help="keep N images per class of an official test set")
    command(data, "list", data_list, "list datasets")
    command(data, "delete", data_delete, "delete a dataset").add_argument("name")

    add_train_arguments(command(commands, "train", train, "train a model (or resume a run)"))

    sub = command(commands, "lr-find", lr_find, "suggest a learning rate (LR range test)")
    add_train_arguments(sub)

    sub = command(commands, "bench", bench, "benchmarks (see bench/RESULTS.md)")
    sub.add_argument("kind", choices=("pipeline", "ingest", "accuracy", "latency"))
    sub.add_argument("--run", help="latency: the run whose model to time")
    add_train_arguments(sub)
    sub.add_argument("--steps", type=int, default=50, help="timed steps per side")
    sub.add_argument("--warmup", type=int, default=5, help="untimed steps per side")
    sub.add_argument("--seeds", default="0", help="accuracy: comma-separated seeds")
    sub.add_argument("--targets", default="0.93,0.94", help="accuracy: test-accuracy targets")

    runs = commands.add_parser("runs", help="list, show, cancel, delete runs").add_subparsers()
    command(runs, "list", runs_list, "list runs")
    for name, handler in (("show", runs_show), ("cancel", runs_cancel), ("delete", runs_delete)):
        command(runs, name, handler, f"{name} a run").add_argument("run")

    sub = command(commands, "predict", predict, "classify images with a trained run")
    sub.add_argument("--run", required=True)
    sub.add_argument("--top-k", type=int, default=3)
    sub.add_argument("images", nargs="+", type=Path)

    sub = command(commands, "export", export, "export a run as ONNX, TorchScript or safetensors")
    sub.add_argument("--run", required=True)
    sub.add_argument("--format", required=True, choices=("onnx", "torchscript", "safetensors"))
    sub.add_argument("--out", required=True, type=Path,
                     help="file (or folder) to write; the model card goes beside it")

    sub = command(commands, "worker", worker, "train queued runs in the background (with "
                  "CNN_STUDIO_EXECUTOR=ray: dispatch them over a Ray cluster)")
    sub.add_argument("--idle-exit", type=float, default=120.0, help="seconds idle before exiting")
    return parser
