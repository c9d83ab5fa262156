#!/usr/bin/env python
"""Seeded mutation fuzzer for caffe2torch's readers, linter and builder.

Each case takes a file of the corpus (net / solver prototxt, caffemodel, binaryproto,
solverstate), applies a few seeded mutations (truncation, byte flips, deleted braces,
swapped or repeated layers, huge numbers, deep nesting, a million layers, corrupt varints)
and runs every entry point that accepts that kind of file. The contract checked:

* only CaffeError subclasses escape (any other exception is a failure);
* an error about a file names that file (``err.path``);
* nothing hangs (a per-case timeout in a worker process) and nothing blows up the memory
  (the worker runs under an address-space limit; a MemoryError or a killed worker is a
  failure).

Failing inputs are written to ``--out`` with the traceback, so that each can be replayed
with ``--replay FILE``. Usage::

    python tools/fuzz.py --minutes 30 --seed 1          # a long run
    python tools/fuzz.py --cases 200 --seed 7           # a short one
    python tools/fuzz.py --replay fuzz-out/case-123.prototxt
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing as mp
import os
import random
import re
import resource
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = REPO.parent / "shared" / "corpus"
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))

TEXT_EXT = {".prototxt", ".pbtxt", ".solver", ".txt"}
BINARY_KIND = {".caffemodel": "caffemodel", ".binaryproto": "binaryproto",
               ".solverstate": "solverstate"}

HUGE_NUMBERS = ("999999999999", "1e9", "4294967296", "-1", "0", "-2147483649", "nan", "inf",
                "18446744073709551616", "1e308", "65536", "2147483647")
NUM_RE = re.compile(rb"(?<![\w.])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
LAYER_RE = re.compile(rb"\blayers?\s*\{")


# ----------------------------------------------------------------------------- corpus


@dataclasses.dataclass(frozen=True)
class Seed:
    path: str
    kind: str  # "text" or one of BINARY_KIND's values
    data: bytes


def load_corpus(root: Path, max_bytes: int = 8 << 20) -> list[Seed]:
    """Every corpus file the fuzzer knows how to feed, smallest binaries only."""
    seeds = []
    for p in sorted(root.rglob("*")):
        if not p.is_file() or p.stat().st_size > max_bytes:
            continue
        ext = p.suffix.lower()
        if ext in BINARY_KIND:
            seeds.append(Seed(str(p), BINARY_KIND[ext], p.read_bytes()))
        elif ext in TEXT_EXT or "solver" in p.name:
            data = p.read_bytes()
            if b"{" in data or b":" in data:
                seeds.append(Seed(str(p), "text", data))
    return seeds


# ----------------------------------------------------------------------------- mutations


def _layer_spans(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each top-level ``layer {...}`` / ``layers {...}`` block."""
    spans = []
    for m in LAYER_RE.finditer(data):
        depth, i = 0, m.end() - 1
        while i < len(data):
            c = data[i]
            if c == ord("{"):
                depth += 1
            elif c == ord("}"):
                depth -= 1
                if depth == 0:
                    spans.append((m.start(), i + 1))
                    break
            i += 1
    # keep non-overlapping outermost blocks
    out: list[tuple[int, int]] = []
    for s, e in spans:
        if not out or s >= out[-1][1]:
            out.append((s, e))
    return out


def m_truncate(rng: random.Random, d: bytes) -> bytes:
    return d[: rng.randrange(len(d) + 1)] if d else d


def m_flip(rng: random.Random, d: bytes) -> bytes:
    if not d:
        return d
    b = bytearray(d)
    for _ in range(rng.choice((1, 1, 2, 8, 32))):
        i = rng.randrange(len(b))
        b[i] = rng.randrange(256) if rng.random() < 0.5 else b[i] ^ (1 << rng.randrange(8))
    return bytes(b)


def m_delete_brace(rng: random.Random, d: bytes) -> bytes:
    idx = [i for i, c in enumerate(d) if c in b"{}"]
    if not idx:
        return d
    i = rng.choice(idx)
    return d[:i] + d[i + 1:]


def m_delete_span(rng: random.Random, d: bytes) -> bytes:
    if len(d) < 2:
        return d
    i = rng.randrange(len(d))
    return d[:i] + d[i + rng.randrange(1, min(64, len(d) - i) + 1):]


def m_swap_layers(rng: random.Random, d: bytes) -> bytes:
    spans = _layer_spans(d)
    if len(spans) < 2:
        return d
    a, b = sorted(rng.sample(range(len(spans)), 2))
    (s1, e1), (s2, e2) = spans[a], spans[b]
    return d[:s1] + d[s2:e2] + d[e1:s2] + d[s1:e1] + d[e2:]


def m_repeat_layer(rng: random.Random, d: bytes) -> bytes:
    spans = _layer_spans(d)
    if not spans:
        return d
    s, e = rng.choice(spans)
    return d[:e] + b"\n" + d[s:e] * rng.choice((1, 2, 50)) + d[e:]


def m_huge_number(rng: random.Random, d: bytes) -> bytes:
    nums = list(NUM_RE.finditer(d))
    if not nums:
        return d
    m = rng.choice(nums)
    return d[: m.start()] + rng.choice(HUGE_NUMBERS).encode() + d[m.end():]


def m_huge_field(rng: random.Random, d: bytes) -> bytes:
    """Insert a field Caffe would use to size a blob, with a huge value."""
    spans = _layer_spans(d)
    field = rng.choice((b"num_output: 999999999999", b"kernel_size: 1000000000",
                        b"convolution_param { num_output: 4000000 kernel_size: 1000 }",
                        b"inner_product_param { num_output: 3000000000 }",
                        b"input_dim: 1000000000", b"dim: 99999999999",
                        b"input_param { shape { dim: 1 dim: 100000 dim: 100000 dim: 1000 } }",
                        b"pad: 2147483647", b"stride: 0", b"group: 0", b"axis: -1000",
                        b"top_k: 4000000000", b"dilation: 1000000000"))
    if not spans:
        return field + b"\n" + d
    _, e = rng.choice(spans)
    # inside the block, just before its closing brace
    return d[: e - 1] + b" " + field + b" " + d[e - 1:]


def m_deep_nesting(rng: random.Random, d: bytes) -> bytes:
    n = rng.choice((100, 1000, 10000, 100000))
    head = rng.choice((b"layer { ", b"net_param { ", b"layer { convolution_param { "))
    return head * n + d + (b" }" * n if rng.random() < 0.7 else b"")


def m_many_layers(rng: random.Random, d: bytes) -> bytes:
    n = rng.choice((1000, 10000, 1000000))
    unit = rng.choice((
        b'layer { name: "r" type: "ReLU" bottom: "data" top: "data" }\n',
        b'layers { name: "r" type: RELU bottom: "data" top: "data" }\n',
        b'layer { type: "Split" bottom: "data" top: "data" }\n',
    ))
    return d + unit * n


def m_weird_bytes(rng: random.Random, d: bytes) -> bytes:
    junk = rng.choice((b"\x00", b"\xff\xfe", b"\xef\xbb\xbf", b'"', b"'", b"#", b"\\",
                       b"\r", b"<", b"-", b"e", b"[", b"]", b";", b":"))
    i = rng.randrange(len(d) + 1)
    return d[:i] + junk * rng.choice((1, 3, 1000)) + d[i:]


def m_corrupt_varint(rng: random.Random, d: bytes) -> bytes:
    """Replace a length-delimited header with a huge or over-long varint."""
    if len(d) < 4:
        return d
    i = rng.randrange(len(d) - 1)
    bad = rng.choice((b"\xff" * 9 + b"\x7f", b"\xff" * 12, b"\x80\x80\x80\x80\x10",
                      b"\xff\xff\xff\xff\x0f"))
    return d[:i] + bad + d[i + rng.randrange(1, 4):]


def m_splice(rng: random.Random, d: bytes) -> bytes:
    if len(d) < 4:
        return d
    a, b = sorted(rng.sample(range(len(d)), 2))
    return d[:a] + d[b:] + d[a:b]


TEXT_MUTATORS = (m_truncate, m_flip, m_delete_brace, m_delete_span, m_swap_layers,
                 m_repeat_layer, m_huge_number, m_huge_number, m_huge_field, m_huge_field,
                 m_deep_nesting, m_many_layers, m_weird_bytes, m_splice)
BINARY_MUTATORS = (m_truncate, m_flip, m_flip, m_delete_span, m_corrupt_varint, m_splice)
# expensive mutators run at most once per case, and only now and then
RARE = {m_deep_nesting: 0.15, m_many_layers: 0.04}


def mutate(rng: random.Random, seed: Seed) -> tuple[bytes, list[str]]:
    pool = TEXT_MUTATORS if seed.kind == "text" else BINARY_MUTATORS
    chosen = []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        m = rng.choice(pool)
        if m in RARE and (m in chosen or rng.random() > RARE[m]):
            continue
        chosen.append(m)
    # the size-blowing mutators go last, so that the others work on the small file
    chosen.sort(key=lambda m: m in RARE)
    data = seed.data
    for m in chosen:
        data = m(rng, data)
    return data, [m.__name__ for m in chosen]


# ----------------------------------------------------------------------------- targets


def _check_typed(exc: BaseException, path: str, entry: str) -> str | None:
    """None when ``exc`` honours the contract, else a description of the breach."""
    from caffe2torch.errors import CaffeError

    if not isinstance(exc, CaffeError):
        return f"{entry}: {type(exc).__name__} escaped: {exc!s:.300}"
    if entry in ("read_net", "read_solver", "lint", "read_caffemodel", "read_binaryproto",
                 "read_solverstate") and exc.path is None:
        return f"{entry}: CaffeError without the file's path: {exc!s:.300}"
    return None


def run_case(kind: str, path: str, progress=None) -> dict:
    """Run every entry point for one file; returns {entry: outcome} and any breaches."""
    import caffe2torch as c2t
    from caffe2torch.errors import CaffeError
    from caffe2torch.io import read_binaryproto, read_caffemodel, read_solverstate

    breaches: list[str] = []
    outcome: dict[str, str] = {}

    def attempt(entry: str, fn, *args, **kw):
        if progress is not None:
            progress(entry)
        try:
            result = fn(*args, **kw)
            outcome[entry] = "ok"
            return result
        except CaffeError as e:
            outcome[entry] = type(e).__name__
            breach = _check_typed(e, path, entry)
        except RecursionError as e:
            outcome[entry] = "RecursionError"
            breach = f"{entry}: RecursionError escaped: {e!s:.200}"
        except Exception as e:  # the contract: nothing but CaffeError escapes
            outcome[entry] = type(e).__name__
            breach = _check_typed(e, path, entry) or f"{entry}: {e!r}"
            breach += "\n" + traceback.format_exc(limit=12)
        if breach:
            breaches.append(breach)
        return None

    if kind == "text":
        text = Path(path).read_bytes().decode("latin-1")
        is_solver = attempt("is_solver", lambda: _is_solver(text))
        attempt("upgrade_text", c2t.upgrade_text, text)
        attempt("lint", c2t.lint, path)
        if is_solver:
            attempt("read_solver", c2t.read_solver, path)
        else:
            net = attempt("read_net", c2t.read_net, path)
            if net is not None:
                for phase in ("TEST", "TRAIN"):
                    attempt(f"load_net[{phase}]", c2t.load_net, net, phase=phase,
                            input_shapes=_input_shapes(net))
    elif kind == "caffemodel":
        attempt("read_caffemodel", read_caffemodel, path)
        from caffe2torch.io import read_caffemodel_arrays

        attempt("read_caffemodel_arrays", read_caffemodel_arrays, path)
    elif kind == "binaryproto":
        attempt("read_binaryproto", read_binaryproto, path)
    elif kind == "solverstate":
        attempt("read_solverstate", read_solverstate, path)
    elif kind == "sleep":  # the harness's own test: a case that never answers
        attempt("sleep", time.sleep, 3600)
    return {"outcome": outcome, "breaches": breaches}


def _is_solver(text: str) -> bool:
    from caffe2torch.io.text import is_solver_text

    return bool(is_solver_text(text))


def _input_shapes(net) -> dict[str, list[int]]:
    """Shapes for data tops whose shape the prototxt cannot give (Data, ImageData...)."""
    shapes: dict[str, list[int]] = {}
    for layer in net.layer:
        if layer.type in ("Data", "ImageData", "HDF5Data", "WindowData", "MemoryData",
                          "Python", "AnnotatedData"):
            for k, top in enumerate(layer.top):
                shapes[top] = [2, 3, 32, 32] if k == 0 else [2]
    return shapes


# ----------------------------------------------------------------------------- worker


def _limit_memory(max_gib: float) -> None:
    limit = int(max_gib * (1 << 30))
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _worker(conn, max_gib: float) -> None:
    _limit_memory(max_gib)
    sys.setrecursionlimit(10000)
    while True:
        msg = conn.recv()
        if msg is None:
            return
        kind, path = msg
        try:
            res = run_case(kind, path, lambda entry: conn.send(("at", entry)))
        except MemoryError:
            res = {"outcome": {}, "breaches": ["MemoryError: the case blew up the memory"]}
        except BaseException as e:  # run_case itself failing is a fuzzer bug: report it
            res = {"outcome": {}, "breaches": [f"harness: {e!r}\n{traceback.format_exc()}"]}
        conn.send(res)


class Runner:
    """One worker process, restarted after a timeout or a crash."""

    def __init__(self, timeout: float, max_gib: float) -> None:
        self.timeout, self.max_gib = timeout, max_gib
        self.ctx = mp.get_context("fork")
        self.proc = None
        self.conn = None

    def _start(self) -> None:
        import caffe2torch  # noqa: F401  (imported once here, inherited by each worker)

        parent, child = self.ctx.Pipe()
        self.proc = self.ctx.Process(target=_worker, args=(child, self.max_gib), daemon=True)
        self.proc.start()
        self.conn = parent

    def _stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.join()
        self.proc = self.conn = None

    def run(self, kind: str, path: str) -> dict:
        if self.proc is None or not self.proc.is_alive():
            self._start()
        assert self.conn is not None and self.proc is not None
        start = time.monotonic()
        self.conn.send((kind, path))
        entry, entry_start = "start", start
        while True:  # the timeout applies to each entry point
            left = self.timeout - (time.monotonic() - entry_start)
            if left <= 0 or not self.conn.poll(left):
                self._stop()
                return {"outcome": {}, "breaches": [
                    f"{entry}: hang: no answer in {self.timeout:.0f} s"]}
            try:
                res = self.conn.recv()
            except (EOFError, ConnectionResetError):
                self.proc.join(1)
                code = self.proc.exitcode
                self._stop()
                return {"outcome": {}, "breaches": [
                    f"{entry}: worker died (exit code {code}): crash or memory blow-up"]}
            if isinstance(res, tuple):  # ("at", entry point about to run)
                entry, entry_start = res[1], time.monotonic()
                continue
            break
        res["seconds"] = time.monotonic() - start
        return res

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.send(None)
                self.proc.join(5)
            except (BrokenPipeError, OSError):
                pass
        self._stop()


# ----------------------------------------------------------------------------- driver


@dataclasses.dataclass
class Report:
    cases: int = 0
    failures: int = 0
    seconds: float = 0.0
    by_seed_kind: Counter = dataclasses.field(default_factory=Counter)
    by_mutator: Counter = dataclasses.field(default_factory=Counter)
    outcomes: Counter = dataclasses.field(default_factory=Counter)
    failure_files: list = dataclasses.field(default_factory=list)
    signatures: Counter = dataclasses.field(default_factory=Counter)

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for k in ("by_seed_kind", "by_mutator", "outcomes", "signatures"):
            d[k] = dict(getattr(self, k).most_common())
        return d


def _signature(breach: str) -> str:
    first = breach.splitlines()[0]
    return re.sub(r"\d+", "N", first)[:160]


def fuzz(
    seeds: list[Seed],
    *,
    seed: int = 0,
    cases: int | None = None,
    seconds: float | None = None,
    timeout: float = 20.0,
    max_gib: float = 6.0,
    binary_share: float = 0.25,
    out: Path | None = None,
    log=None,
) -> Report:
    """Run mutated cases until ``cases`` or ``seconds`` is reached; failures -> ``out``."""
    rng = random.Random(seed)
    text = [s for s in seeds if s.kind == "text"]
    binary = [s for s in seeds if s.kind != "text"]
    report = Report()
    runner = Runner(timeout, max_gib)
    start = time.monotonic()
    tmp = tempfile.TemporaryDirectory(prefix="c2t-fuzz-")
    try:
        while True:
            if cases is not None and report.cases >= cases:
                break
            if seconds is not None and time.monotonic() - start >= seconds:
                break
            s = rng.choice(binary if binary and rng.random() < binary_share else text)
            data, names = mutate(rng, s)
            ext = ".prototxt" if s.kind == "text" else "." + s.kind
            case_path = os.path.join(tmp.name, f"case-{report.cases}{ext}")
            with open(case_path, "wb") as f:
                f.write(data)
            res = runner.run(s.kind, case_path)
            report.cases += 1
            report.by_seed_kind[s.kind] += 1
            report.by_mutator.update(names)
            report.outcomes.update(f"{k}:{v}" for k, v in res["outcome"].items())
            if res["breaches"]:
                report.failures += 1
                sigs = [_signature(b) for b in res["breaches"]]
                new = any(report.signatures[g] == 0 for g in sigs)
                report.signatures.update(sigs)
                if out is not None and (new or len(report.failure_files) < 50):
                    out.mkdir(parents=True, exist_ok=True)
                    dst = out / f"case-{seed}-{report.cases - 1}{ext}"
                    dst.write_bytes(data)
                    dst.with_suffix(dst.suffix + ".txt").write_text(
                        f"seed file: {s.path}\nmutations: {names}\n\n"
                        + "\n\n".join(res["breaches"]))
                    report.failure_files.append(str(dst))
                if log:
                    log(f"FAIL case {report.cases - 1} ({s.path}, {names}): "
                        f"{res['breaches'][0].splitlines()[0][:200]}")
            if log and report.cases % 100 == 0:
                log(f"{report.cases} cases, {report.failures} failures, "
                    f"{time.monotonic() - start:.0f} s")
    finally:
        runner.close()
        tmp.cleanup()
    report.seconds = time.monotonic() - start
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cases", type=int)
    ap.add_argument("--minutes", type=float)
    ap.add_argument("--timeout", type=float, default=20.0,
                    help="seconds each entry point may take on one case")
    ap.add_argument("--max-gib", type=float, default=6.0, help="worker address-space limit")
    ap.add_argument("--out", type=Path, default=Path("fuzz-out"))
    ap.add_argument("--report", type=Path, help="write the summary as JSON here")
    ap.add_argument("--replay", type=Path, help="run one saved case and print the outcome")
    args = ap.parse_args(argv)

    if args.replay:
        ext = args.replay.suffix.lower()
        kind = BINARY_KIND.get(ext, "text")
        res = Runner(args.timeout, args.max_gib).run(kind, str(args.replay))
        print(json.dumps(res, indent=2))
        return 1 if res["breaches"] else 0

    if not args.corpus.is_dir():
        print(f"no corpus at {args.corpus}", file=sys.stderr)
        return 2
    seeds = load_corpus(args.corpus)
    if args.cases is None and args.minutes is None:
        args.cases = 200
    report = fuzz(seeds, seed=args.seed, cases=args.cases,
                  seconds=args.minutes * 60 if args.minutes else None,
                  timeout=args.timeout, max_gib=args.max_gib, out=args.out,
                  log=lambda m: print(m, flush=True))
    summary = report.as_dict()
    text = json.dumps(summary, indent=2)
    if args.report:
        args.report.write_text(text)
    print(text)
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
