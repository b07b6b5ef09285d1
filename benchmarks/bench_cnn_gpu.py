"""GPU check of the cnn extractor: featx on CUDA vs CPU, speed and agreement.

For a machine with an NVIDIA GPU and onnxruntime-gpu installed in place of
onnxruntime (exits 2 with a one-line message when the CUDA provider is
missing).  Builds ``--images`` 640x480 JPEGs (bench_pipeline.make_images) in a
folder of their own, then:

* runs the CLI, ``featx extract cnn`` (one process per run, ``-j 1`` by
  default), with ``--device cpu`` / ``cuda`` / ``auto`` at batch 32, ``cuda`` at
  batch 1, and ``--layer logits`` on cpu and cuda: wall time (median of
  ``--repeat``, process start-up included), img/s, and the provider that ran
  (``extractor_details.provider`` in the run's NAME.featx.json sidecar);
* compares the outputs: embeddings of cuda b32, cuda b1 and auto vs cpu (max
  abs diff, max row-relative diff, min cosine); cuda b1 vs cuda b32 (identical?);
  logits cuda vs cpu (max abs diff, top-1 agreement);
* times ONNX Runtime alone on the model bytes featx uses
  (models.default_model_bytes), on a fixed random batch at batch 1 and 32: CPU,
  CUDA with featx's options (cnn.CUDA_OPTIONS: TF32 off, heuristic cuDNN
  search) and CUDA with TF32 on; ms/run, img/s, max abs diff vs CPU.

Targets (PASS/FAIL lines, exit 1 if any fails): the cuda runs, and auto, ran
on CUDAExecutionProvider; every embedding's max abs diff vs CPU <= 1e-4; top-1
agreement of the logits 100%.

    python benchmarks/bench_cnn_gpu.py [--images 800] [--repeat 1] [--jobs 1]
        [--keep DIR] [--json PATH]

Development only: ``--cpu-as-cuda`` (not in --help) is a dry run for machines
without a GPU: cuda runs use ``--device cpu``, the "CUDA" sessions the CPU
provider, and the provider check is skipped.  Its numbers say nothing about GPUs.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from bench_pipeline import ENV, featx_cmd, make_images  # benchmarks/bench_pipeline.py
from common import timed  # benchmarks/common.py

CPU, CUDA = "CPUExecutionProvider", "CUDAExecutionProvider"
MAX_ABS = 1e-4
RUNS = {  # name: options of `featx extract cnn`
    "cpu_b32": ["--device", "cpu", "--batch-size", "32"],
    "cuda_b32": ["--device", "cuda", "--batch-size", "32"],
    "cuda_b1": ["--device", "cuda", "--batch-size", "1"],
    "auto_b32": ["--device", "auto", "--batch-size", "32"],
    "cpu_logits": ["--device", "cpu", "--batch-size", "32", "--layer", "logits"],
    "cuda_logits": ["--device", "cuda", "--batch-size", "32", "--layer", "logits"],
}


def image_folder(ap, folder: Path, n: int) -> Path:
    """``folder`` holding exactly make_images' n photos (made unless already there)."""
    want = [f"img{i:05d}.jpg" for i in range(n)]
    have = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    if have != want:
        if any(not (h.startswith("img") and h.endswith(".jpg")) for h in have):
            ap.error(f"--keep {folder}: holds files this script did not make; give a new folder")
        for h in set(have) - set(want):
            (folder / h).unlink()
        make_images(folder, n)
    return folder


def featx_run(name, opts, images, out, args) -> dict:
    npy, sidecar = out / f"{name}.npy", out / f"{name}.featx.json"
    cmd = featx_cmd("extract", "cnn", images, "-o", npy, "-q", "--overwrite", "-j", args.jobs,
                    "--summary-json", out / f"{name}.summary.json", *opts)
    try:
        wall = timed(lambda: subprocess.run(cmd, check=True, env=ENV, capture_output=True, text=True),
                     args.repeat)
    except subprocess.CalledProcessError as e:
        npy.unlink(missing_ok=True)  # not compared
        msg = " | ".join(x.strip() for x in e.stderr.strip().splitlines()[-2:])[:400] or f"exit {e.returncode}"
        print(f"  {name:11s} FAILED: {msg}", flush=True)
        return {"error": msg}
    side = json.loads(sidecar.read_text())
    summary = json.loads((out / f"{name}.summary.json").read_text())
    r = {"wall_s": wall, "img_s": args.images / wall, "featx_img_s": side["timing"].get("items_per_second"),
         "provider": side.get("extractor_details", {}).get("provider"), "rows": summary["rows"],
         "failed": summary["failed"], "shape": summary["output"]["shape"]}
    print(f"  {name:11s} {r['img_s']:7.1f} img/s (wall {wall:6.2f} s; featx's own timing "
          f"{r['featx_img_s']} img/s)  {r['provider']}, {r['rows']} rows, {r['failed']} failed", flush=True)
    return r


def load(out: Path, name: str):
    if not (out / f"{name}.npy").exists():
        return None
    paths = (out / f"{name}.index.csv").read_text().splitlines()[1:]
    return np.load(out / f"{name}.npy").astype(np.float64), [p.split(",", 1)[1] for p in paths]


def compare(a, b) -> dict:
    d = np.abs(a - b)
    rel = d.max(axis=1) / np.maximum(np.abs(a).max(axis=1), 1e-12)
    cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)
    return {"max_abs": float(d.max()), "max_row_rel": float(rel.max()), "min_cos": float(cos.min()),
            "identical": bool(np.array_equal(a, b))}


def compare_runs(out: Path) -> dict:
    outs = {n: load(out, n) for n in RUNS}
    res = {}
    for ref, other in (("cpu_b32", "cuda_b32"), ("cpu_b32", "cuda_b1"), ("cpu_b32", "auto_b32"),
                       ("cuda_b32", "cuda_b1"), ("cpu_logits", "cuda_logits")):
        key = f"{other} vs {ref}"
        if outs[ref] is None or outs[other] is None or outs[ref][1] != outs[other][1]:
            print(f"  {key:25s} not compared (a run failed, or their rows differ)")
            continue
        (a, _), (b, _) = outs[ref], outs[other]
        c = res[key] = compare(a, b)
        extra = ""
        if ref == "cpu_logits":
            c["top1_agree"] = int((a.argmax(1) == b.argmax(1)).sum())
            c["rows"] = len(a)
            extra = f"; top-1 agreement {c['top1_agree']}/{len(a)}"
        print(f"  {key:25s} max abs diff {c['max_abs']:.3g}, max row-relative {c['max_row_rel']:.3g}, "
              f"min cosine {c['min_cos']:.9f}, identical: {c['identical']}{extra}")
    return res


def ort_alone(cpu_as_cuda: bool, runs: int) -> dict:
    """ONNX Runtime on featx's model bytes, without featx: CPU, CUDA as featx runs it, CUDA + TF32."""
    import onnxruntime as ort

    from featx.extractors.cnn import CUDA_OPTIONS, ort_providers
    from featx.extractors.cnn.models import default_model_bytes

    data, _ = default_model_bytes()
    fx = [CPU] if cpu_as_cuda else ort_providers("cuda", ort.get_available_providers())
    tf32 = [CPU] if cpu_as_cuda else [(CUDA, {**CUDA_OPTIONS, "use_tf32": "1"}), CPU]
    x = np.random.default_rng(0).standard_normal((32, 3, 224, 224)).astype(np.float32)
    res, ref = {}, {}
    for label, providers in (("cpu", [CPU]), ("cuda", fx), ("cuda_tf32", tf32)):
        so = ort.SessionOptions()  # as featx's (threads: the engine's default)
        so.log_severity_level = 3
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        try:
            sess = ort.InferenceSession(data, sess_options=so, providers=providers)
        except Exception as e:  # noqa: BLE001  (a CUDA provider that fails to load)
            print(f"  {label:10s} session failed: {str(e).strip().splitlines()[0][:300]}")
            continue
        inp, outp = sess.get_inputs()[0].name, sess.get_outputs()[0].name
        for bs in (1, 32):
            feed = {inp: x[:bs]}
            for _ in range(3):  # warm-up (first-run allocations, cuDNN algorithm choice)
                y = sess.run([outp], feed)[0]
            t = timed(lambda s=sess, o=outp, f=feed: s.run([o], f), runs)
            r = res[f"{label}_b{bs}"] = {"provider": sess.get_providers()[0], "ms_per_run": t * 1e3,
                                         "img_s": bs / t}
            if label == "cpu":
                ref[bs] = y
            elif bs in ref:
                r["max_abs_vs_cpu"] = float(np.abs(y.astype(np.float64) - ref[bs]).max())
            diff = f", max abs diff vs cpu {r['max_abs_vs_cpu']:.3g}" if "max_abs_vs_cpu" in r else ""
            print(f"  {label:10s} batch {bs:2d}: {r['ms_per_run']:8.2f} ms/run {r['img_s']:8.1f} img/s "
                  f"({r['provider']}){diff}", flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=800, help="640x480 JPEGs to extract")
    ap.add_argument("--repeat", type=int, default=1, help="timed runs of each featx command (median)")
    ap.add_argument("--jobs", type=int, default=1, help="featx -j for every run")
    ap.add_argument("--ort-runs", type=int, default=20, help="timed runs per ONNX Runtime measurement")
    ap.add_argument("--keep", metavar="DIR", help="make the images here (or reuse them) and keep them")
    ap.add_argument("--json", metavar="PATH", help="also write the results here")
    ap.add_argument("--cpu-as-cuda", action="store_true", help=argparse.SUPPRESS)  # dev dry run
    args = ap.parse_args()

    try:
        import onnxruntime as ort
    except ImportError:
        sys.exit("onnxruntime is not installed: pip install onnxruntime-gpu")
    if CUDA not in ort.get_available_providers() and not args.cpu_as_cuda:
        print("this onnxruntime has no CUDA provider: pip install onnxruntime-gpu (in place of onnxruntime)",
              file=sys.stderr)
        sys.exit(2)
    from featx.extractors.cnn.models import default_model_bytes

    default_model_bytes()  # build/cache the model now, outside the timed runs
    gpu = ""
    if shutil.which("nvidia-smi"):
        gpu = subprocess.run(["nvidia-smi", "-L"], check=False, capture_output=True, text=True).stdout.strip()
    res: dict = {"onnxruntime": ort.__version__, "providers": ort.get_available_providers(), "gpu": gpu,
                 "python": sys.version.split()[0], "images": args.images, "repeat": args.repeat,
                 "jobs": args.jobs, "dry_run_cpu_as_cuda": args.cpu_as_cuda}
    work = Path(tempfile.mkdtemp(prefix="featx-bench-gpu-"))
    try:
        images = image_folder(ap, Path(args.keep) if args.keep else work / "images", args.images)
        out = work / "out"
        out.mkdir()
        if args.cpu_as_cuda:
            print("DRY RUN (--cpu-as-cuda): every 'cuda' run and session is on the CPU; no GPU numbers")
        print(f"onnxruntime {ort.__version__} {res['providers']}; {gpu.splitlines()[0] if gpu else 'no nvidia-smi'}"
              f"\n{args.images} images 640x480 JPEG in {images}; featx -j {args.jobs}, median of {args.repeat}",
              flush=True)
        for dev in ("cpu",) if args.cpu_as_cuda else ("cpu", "cuda"):  # untimed: imports, model, CUDA libs cached
            subprocess.run(featx_cmd("extract", "cnn", images / "img00000.jpg", "-o", out / "warm.npy", "-q",
                                     "--overwrite", "-j", "1", "--device", dev), check=False, env=ENV,
                           capture_output=True)
        print("featx extract cnn (CLI, one process per run, start-up included):")
        res["runs"] = {}
        for name, opts in RUNS.items():
            if args.cpu_as_cuda:
                opts = ["cpu" if o == "cuda" else o for o in opts]
            res["runs"][name] = featx_run(name, opts, images, out, args)
        print("outputs compared:")
        res["compare"] = cmp = compare_runs(out)
        print(f"ONNX Runtime alone, same model bytes, fixed random batch, median of {args.ort_runs} "
              "after 3 warm-up runs:")
        res["ort_alone"] = ort_alone(args.cpu_as_cuda, args.ort_runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    checks = {}
    if not args.cpu_as_cuda:
        for name in ("cuda_b32", "cuda_b1", "cuda_logits", "auto_b32"):
            checks[f"{name} ran on {CUDA} (sidecar)"] = res["runs"][name].get("provider") == CUDA
    for name in ("cuda_b32", "cuda_b1", "auto_b32"):
        c = cmp.get(f"{name} vs cpu_b32")
        checks[f"embedding {name} vs cpu: max abs diff <= {MAX_ABS:g}"] = c is not None and c["max_abs"] <= MAX_ABS
    lg = cmp.get("cuda_logits vs cpu_logits")
    checks["logits cuda vs cpu: top-1 agreement 100%"] = lg is not None and lg["top1_agree"] == lg["rows"]
    res["checks"] = checks
    for what, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {what}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    sys.exit(0 if all(checks.values()) else 1)


if __name__ == "__main__":
    main()
