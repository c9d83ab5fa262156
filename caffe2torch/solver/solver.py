"""The training loop, as Caffe's Solver runs it (src/caffe/solver.cpp, sgd_solver.cpp).

    solver = c2t.get_solver("solver.prototxt")   # paths relative to the working directory
    solver.step(100); solver.solve(); solver.snapshot(); solver.restore("x.solverstate")

Solver::Init builds the TRAIN net (``net`` / ``net_param`` / ``train_net`` /
``train_net_param``, NetState TRAIN merged with the net's own state and ``train_state``) and
the test nets (``test_net`` / ``test_net_param``, then the generic net once per remaining
``test_iter``, each TEST merged with ``test_state[i]``); the test nets use the train net's
params for layers of the same name (ShareTrainedLayersWith). Every net with data layers
draws its own batches.

Solver::Step, per iteration: clear the diffs; test when ``test_interval`` divides the
iteration (not at 0 unless ``test_initialization``); ``iter_size`` forward/backward passes
summing the gradients and the loss, loss /= iter_size; the smoothed loss over
``average_loss``; the display lines; ApplyUpdate (rate of the lr policy, clipping,
normalisation, regularisation, the update rule); iter += 1; a snapshot when ``snapshot``
divides the new iteration or a signal asked for one; stop when a signal asked.

Where this differs from Caffe, on purpose: a non-finite loss stops training with a
SolverError naming the iteration and the first layer whose output is not finite (Caffe
goes on with NaN weights), and ``restore`` moves each net's data on by the batches the
interrupted run had read (Caffe's data layers start again at their first row), so a
resumed run continues exactly as the uninterrupted one would.
"""

from __future__ import annotations

import copy
import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TextIO, cast

import numpy as np
import torch

from caffe2torch.errors import CaffeError, DataError, SolverError
from caffe2torch.graph import CaffeNet
from caffe2torch.graph.compile import compile_net
from caffe2torch.graph.fed import build_fed_net, stream_of
from caffe2torch.io import read_net_with_positions, read_solver
from caffe2torch.io.fork_schema import as_schema
from caffe2torch.io.paths import folder_where_found, shown, where_text
from caffe2torch.io.upgrade import snapshot_prefix as default_snapshot_prefix
from caffe2torch.ir.netstate import NetState
from caffe2torch.layers.fillers import PendingFills, deferred_fills
from caffe2torch.layers.grad_buffers import GradBuffers
from caffe2torch.numerics import f32 as _f32
from caffe2torch.proto import caffe_pb2
from caffe2torch.runtime.devices import resolve_device
from caffe2torch.runtime.glog import GlogWriter, fmt
from caffe2torch.solver.amp import MixedPrecision
from caffe2torch.solver.cuda_graph import CapturedStep, refusal
from caffe2torch.solver.distributed import Distributed
from caffe2torch.solver.lr_policy import LearningRatePolicy
from caffe2torch.solver.metrics import MetricsCSV
from caffe2torch.solver.progress import ProgressBar
from caffe2torch.solver.snapshot import (
    ensure_folder,
    history_arrays,
    resolve_learned_net,
    snapshot_filename,
    write_hdf5_caffemodel,
    write_state,
)
from caffe2torch.solver.state import SolverStateData, read_solver_state
from caffe2torch.solver.updates import CaffeOptimizer, UpdateConfig

_DEFAULT = object()


def _merged_state(phase: int, net_param: Any, override: Any | None) -> NetState:
    """Caffe's NetState precedence: the solver's phase, then the net's own ``state``, then
    ``train_state`` / ``test_state[i]``."""
    msg = caffe_pb2.NetState()
    msg.phase = cast(caffe_pb2.Phase, phase)
    msg.MergeFrom(net_param.state)
    if override is not None:
        msg.MergeFrom(override)
    return NetState.from_proto(msg)


# a net output with more values than this is worth a warning: it floods the log
_MANY_VALUES = 8


class Solver:
    """Caffe's SGDSolver family driven by a SolverParameter; see the module docstring.

    ``path``: the solver file (for messages). ``cwd``: where relative paths in the solver
    and the nets start (default: the working directory, as Caffe). ``device``: see
    :func:`resolve_device`. ``log``: a stream for Caffe's log lines (default stderr; None
    silences them). ``log_csv``: a file for the metrics CSV (solver.metrics). ``weights``:
    caffemodels copied into every net before training (``caffe train -weights``).
    ``build_options``: layer-builder options (``allow_python_layers=True``).
    ``distributed``: this process's rank in a data-parallel run (see
    caffe2torch.solver.distributed): gradients are averaged over the ranks before each
    update, rank 0 alone logs, tests and snapshots. ``amp``: mixed precision (see
    caffe2torch.solver.amp). ``tensorboard``: a folder for TensorBoard scalars.
    ``progress``: a progress bar during solve() (the log lines pass above it).
    ``data_workers``: processes that decode the data layers' rows (default: a few on a
    GPU, none on the CPU; see caffe2torch.runtime.devices.default_workers).
    ``compile``: run the train and test nets through torch.compile (graph.compile).
    ``share``: weight sharing within each net, as load_net's (default "declared": Caffe's
    param names; "auto" also ties twin towers; None unties).
    ``channels_last``: 4-D params and blobs laid out NHWC (graph.layout); None (default):
    on with ``amp`` on a GPU for nets with a 4-D input, else off.
    ``cuda_graph``: on a GPU, each forward/backward replayed as a captured CUDA graph
    (solver.cuda_graph; where it cannot be, the reason is logged and training is eager).
    """

    def __init__(
        self,
        param: Any,
        *,
        path: str | os.PathLike[str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        device: Any = None,
        log: TextIO | object | None = _DEFAULT,
        log_csv: str | os.PathLike[str] | None = None,
        weights: str | Sequence[str] | None = None,
        build_options: dict[str, Any] | None = None,
        distributed: Distributed | None = None,
        amp: bool = False,
        tensorboard: str | os.PathLike[str] | None = None,
        progress: bool = False,
        data_workers: int | None = None,
        share: Any = "declared",
        proto: Any = None,
        compile: bool = False,
        channels_last: bool | None = None,
        cuda_graph: bool = False,
    ) -> None:
        self.param = param
        self.share = share
        self.proto = as_schema(proto)  # a fork's caffe.proto: nets, weights, states read with it
        self.data_workers = data_workers
        self.path = os.fspath(path) if path is not None else None
        self.cwd = os.fspath(cwd) if cwd is not None else os.getcwd()
        self.distributed = distributed
        self.is_root = distributed is None or distributed.is_root
        if not self.is_root:
            log = None
        self.log = GlogWriter(sys.stderr if log is _DEFAULT else log)  # type: ignore[arg-type]
        self.last_snapshot: str | None = None  # the last .solverstate written, as logged
        # -weights files that matched no layer: the run trains from the fillers (the CLI
        # shows these even when the log is off)
        self.weight_warnings: list[str] = []
        self.build_options = dict(build_options or {})
        if param.average_loss < 1:
            raise SolverError(f"average_loss must be >= 1, got {param.average_loss}",
                              path=self.path)
        if param.snapshot and not param.snapshot_prefix:
            raise SolverError("the solver sets snapshot but no snapshot_prefix",
                              path=self.path, hint="add snapshot_prefix: \"snapshots/net\"")
        self.config = UpdateConfig.from_proto(param, self.path)
        self.policy = LearningRatePolicy.from_proto(param, self.path)
        self.seed = int(param.random_seed) if param.random_seed >= 0 else None
        if self.seed is not None:  # Caffe::set_random_seed
            torch.manual_seed(self.seed)
            np.random.seed(self.seed % 2**32)
            random.seed(self.seed)
        self.device = resolve_device(param, device, self.log)
        specs = [*param.weights, *([weights] if isinstance(weights, str) else weights or ())]
        # Fine-tuning on the CPU: fillers wait for the weights and run only for the
        # blobs they leave (on a GPU the nets move after building, so fill eagerly there).
        defer = bool(specs) and self.device.type == "cpu"
        with deferred_fills(PendingFills() if defer else None) as pending:
            self.net = self._init_train_net()
            self.test_nets = self._init_test_nets()
        written: set[int] = set()
        for spec in specs:
            written |= self.copy_weights(spec)
        if pending is not None:
            pending.run(skip=written)
        if distributed is not None:
            # the root solver's weights for everyone; then each rank its own random
            # stream (dropout), as Caffe seeds solver i with random_seed + i
            distributed.broadcast_tensors([*self.net.parameters(), *self.net.buffers()])
            if self.seed is not None:
                torch.manual_seed(self.seed + distributed.rank)
        self.amp = MixedPrecision(self.device) if amp else None
        if self.amp is not None:
            self.amp.prepare(self.net)
        if channels_last is None:  # tensor-core convolutions under float16 are NHWC
            from caffe2torch.graph.layout import channels_last_default

            channels_last = channels_last_default(amp, self.device, self.net)
        if channels_last:
            from caffe2torch.graph.layout import use_channels_last

            for net in (self.net, *self.test_nets):
                use_channels_last(net)
        if compile:  # each net compiled once at its first pass (see graph.compile)
            for net in (self.net, *self.test_nets):
                compile_net(net)
        self.optimizer = CaffeOptimizer(
            [{"params": [lp.param], "lr_mult": lp.lr_mult, "decay_mult": lp.decay_mult,
              "name": lp.name} for lp in self.net.learnable_params()],
            self.config,
        )
        # Net::ClearParamDiffs keeps each diff allocated: layers that compute a weight
        # gradient as one product write it into a buffer kept across iterations
        self.grad_buffers = GradBuffers(self.optimizer.learnable())
        self.captured: CapturedStep | None = None
        if cuda_graph:
            reason = refusal(self.device, self.net)
            if reason is not None:
                self.log.warning(f"CUDA graph not used: {reason}; training runs eagerly")
            else:
                self.captured = CapturedStep(self._plain_pass, list(self.optimizer.learnable()),
                                             self.log)
        self.iter = 0
        self.requested_early_exit = False
        self.action_function: Callable[[], str | None] | None = None
        self.metrics = MetricsCSV(log_csv) if log_csv and self.is_root else None
        self.metric_sinks: list[Any] = [self.metrics] if self.metrics is not None else []
        if tensorboard is not None and self.is_root:
            from caffe2torch.solver.tensorboard import TensorBoardScalars

            self.metric_sinks.append(TensorBoardScalars(tensorboard))
        self.progress = progress and self.is_root
        self.iteration_loss = float("nan")  # the loss of the last iteration
        self._last_rate: float | None = None
        self._losses: list[np.float32] = []
        self._smoothed = _f32(0)
        self._iterations_last = 0
        self._timer = time.monotonic()
        self._bar: ProgressBar | None = None
        self._many_valued: set[str] = set()  # outputs warned about (one log line per value)
        self._bar_log: Any = None
        if param.snapshot_diff:
            self.log.warning("snapshot_diff is not supported: snapshots hold the weights only")
        self.log.info("Solver scaffolding done.", "solver.cpp:57")

    # ------------------------------------------------------------------ nets

    def _read(self, name: str) -> tuple[Any, Any]:
        path = os.path.join(self.cwd, name)
        if not os.path.exists(path) and self.path is not None:
            # Caffe opens the net relative to the working directory, not the solver's
            # folder; when it is found from there (or a folder above), say so
            found = folder_where_found(name, self.path)
            if found is not None:
                from caffe2torch.errors import ParseError

                raise ParseError(
                    f"the solver's net {name!r} is not found from the working directory "
                    f"({os.path.abspath(self.cwd)}), where Caffe opens it; it exists "
                    f"{where_text(found, self.path, 'solver')}", path=self.path,
                    hint=f"run from that folder (cd {shown(found)}) or write the net path "
                    "relative to where you run")
        if not os.path.exists(path) and "\\" in name and self.path is not None:
            forward = name.replace("\\", "/")
            if os.path.exists(os.path.join(self.cwd, forward)):
                from caffe2torch.errors import ParseError

                raise ParseError(
                    f"the solver's net {name!r} is written with backslashes (a Windows "
                    "path); here they are part of the file name", path=self.path,
                    hint=f"write net: \"{forward}\" (forward slashes work on Windows too)")
        return read_net_with_positions(path, self.proto)

    def _build(self, net_param: Any, state: NetState, source_map: Any, k: int,
               share_with: CaffeNet | None) -> CaffeNet:
        seed = None if self.seed is None else self.seed + k
        d = self.distributed
        return build_fed_net(net_param, state, cwd=self.cwd, seed=seed, share_with=share_with,
                             source_map=source_map, device=self.device,
                             options=self.build_options, rank=d.rank if d else 0,
                             world_size=d.world_size if d else 1,
                             num_workers=self.data_workers, share=self.share)

    def _init_train_net(self) -> CaffeNet:
        p = self.param
        fields = [f for f in ("net", "net_param", "train_net", "train_net_param")
                  if p.HasField(f)]
        if len(fields) != 1:
            raise SolverError(
                "the solver must name exactly one train net" if fields else
                "the solver names no train net",
                path=self.path,
                hint="use one of net, net_param, train_net, train_net_param"
                + (f" (it sets {', '.join(fields)})" if fields else ""))
        source_map = None
        if fields[0] in ("net", "train_net"):
            name = getattr(p, fields[0])
            self.log.info(f"Creating training net from {fields[0]} file: {name}", "solver.cpp:102")
            net_param, source_map = self._read(name)
        else:
            self.log.info(f"Creating training net specified in {fields[0]}.", "solver.cpp:89")
            net_param = copy.deepcopy(getattr(p, fields[0]))
        state = _merged_state(caffe_pb2.TRAIN, net_param,
                              p.train_state if p.HasField("train_state") else None)
        return self._build(net_param, state, source_map, 0, None)

    def _init_test_nets(self) -> list[CaffeNet]:
        p = self.param
        generic = [f for f in ("net", "net_param") if p.HasField(f)]
        if len(generic) > 1:
            raise SolverError("the solver sets both net and net_param", path=self.path)
        specific = len(p.test_net_param) + len(p.test_net)
        if (len(p.test_iter) < specific) if generic else (len(p.test_iter) != specific):
            raise SolverError("test_iter must be specified for each test network",
                              path=self.path, hint=f"the solver has {specific} test net(s) "
                              f"and {len(p.test_iter)} test_iter line(s)")
        count = specific + (len(p.test_iter) - specific if generic else 0)
        if len(p.test_state) and len(p.test_state) != count:
            raise SolverError("test_state must be unspecified or specified once per test net",
                              path=self.path)
        if count and p.test_interval <= 0:
            raise SolverError("the solver has test nets but no test_interval > 0",
                              path=self.path, hint="add test_interval: N")
        sources: list[tuple[str, Any, Any]] = []
        for net_param in p.test_net_param:
            sources.append(("test_net_param", copy.deepcopy(net_param), None))
        for name in p.test_net:
            sources.append((f"test_net file: {name}", *self._read(name)))
        for _ in range(count - len(sources)):
            if p.HasField("net_param"):
                sources.append(("net_param", copy.deepcopy(p.net_param), None))
            else:
                sources.append((f"net file: {p.net}", *self._read(p.net)))
        nets: list[CaffeNet] = []
        if not self.is_root:  # only the root solver tests
            return nets
        for i, (what, net_param, source_map) in enumerate(sources):
            state = _merged_state(caffe_pb2.TEST, net_param,
                                  p.test_state[i] if len(p.test_state) else None)
            self.log.info(f"Creating test net (#{i}) specified by {what}", "solver.cpp:185")
            nets.append(self._build(net_param, state, source_map, 1 + i, self.net))
        return nets

    def copy_weights(self, spec: str) -> set[int]:
        """Fine-tune: copy a caffemodel (or a comma-separated list) into every net by layer
        name (Caffe's LoadNetWeights / CopyLayers). Returns the param storages written."""
        written: set[int] = set()
        for name in (s.strip() for s in spec.split(",")):
            if not name:
                continue
            self.log.info(f"Finetuning from {name}", "solver.cpp:72")
            path = os.path.join(self.cwd, name)
            for k, net in enumerate((self.net, *self.test_nets)):
                report = net.copy_from(path, self.proto)
                written |= report.written
                if k == 0:  # the train net's copy, as Caffe logs it (net.cpp)
                    for ignored in report.ignored:
                        self.log.info(f"Ignoring source layer {ignored}", "net.cpp:678")
                    warning = report.nothing_copied(name)
                    if warning:
                        self.weight_warnings.append(warning)
                        self.log.warning(warning, "net.cpp:678")
        return written

    # ------------------------------------------------------------------ state

    @property
    def lr(self) -> float:
        """The rate of the last update (Caffe's logged ``lr``); before the first update,
        the rate the first will use."""
        if self._last_rate is not None:
            return self._last_rate
        return copy.copy(self.policy).rate(self.iter)

    @property
    def loss(self) -> float:
        """The smoothed loss Caffe displays (average over the last ``average_loss``)."""
        return float(self._smoothed)

    @property
    def current_step(self) -> int:
        return self.policy.current_step

    def set_action_function(self, func: Callable[[], str | None] | None) -> None:
        """Caffe's SetActionFunction: ``func()`` returns "stop", "snapshot" or None."""
        self.action_function = func

    def _requested_action(self) -> str | None:
        return self.action_function() if self.action_function is not None else None

    # ------------------------------------------------------------------ training

    def step(self, iters: int = 1) -> None:
        """Solver::Step(iters)."""
        p = self.param
        start_iter = self.iter
        stop_iter = self.iter + int(iters)
        self._losses = []
        self._smoothed = _f32(0)
        self._timer = time.monotonic()
        self._iterations_last = self.iter
        while self.iter < stop_iter:
            self._clear_diffs()
            if p.test_interval and self.iter % p.test_interval == 0 and (
                    self.iter > 0 or p.test_initialization):
                self.test_all()
                if self._agreed_flag(self.requested_early_exit):
                    self.requested_early_exit = True
                    break
            display = bool(p.display) and self.iter % p.display == 0
            loss = _f32(0)
            outputs: dict[str, torch.Tensor] = {}
            for k in range(self.config.iter_size):
                sub, outputs = self._forward_backward(k == 0)
                loss = _f32(loss + sub)
            loss = _f32(loss / _f32(self.config.iter_size))
            if self.distributed is not None:
                self.distributed.average_gradients(self.optimizer.learnable())
            self.iteration_loss = float(loss)
            self._update_smoothed(loss, start_iter, p.average_loss)
            if display:
                self._display(outputs)
            rate = self._apply_update(display)
            if display and self.metric_sinks:
                self._write_train_metrics(rate, outputs)
            if self._bar is not None:
                self._bar.update(self.iter, self.iteration_loss)
            request = self._requested_action()
            if self.distributed is not None:
                request = self.distributed.agree_action(request, self.device)
            if (p.snapshot and self.iter % p.snapshot == 0) or request == "snapshot":
                self._root_snapshot()
            if request == "stop":
                self.requested_early_exit = True
                break

    def solve(self, resume_file: str | os.PathLike[str] | None = None) -> None:
        """Solver::Solve: train to ``max_iter``, the final snapshot and test."""
        p = self.param
        self.log.info(f"Solving {self.net.name}", "solver.cpp:289")
        self.log.info(f"Learning Rate Policy: {p.lr_policy}", "solver.cpp:290")
        self.requested_early_exit = False
        if resume_file is not None:
            self.log.info(f"Restoring previous solver status from {os.fspath(resume_file)}",
                          "solver.cpp:296")
            self.restore(resume_file)
        start_iter = self.iter
        self._start_progress()
        try:
            self.step(p.max_iter - self.iter)
        except DataError as e:  # an image gone bad mid-run: say what the run has kept
            e.hint = "; ".join(filter(None, [e.hint, self._stopped_at()]))
            raise
        finally:
            self._stop_progress()
        if p.snapshot_after_train and (not p.snapshot or self.iter % p.snapshot != 0):
            self._root_snapshot()
        if self.requested_early_exit:
            self.log.info("Optimization stopped early.", "solver.cpp:313")
            return
        if p.display and self.iter % p.display == 0:
            with torch.no_grad():
                out = self.net(stream_of(self.net)())
                loss = _f32(float(self.net.loss(out)))
            self._update_smoothed(loss, start_iter, p.average_loss)
            self.log.info(f"Iteration {self.iter}, loss = {fmt(self._smoothed)}",
                          "solver.cpp:328")
        if p.test_interval and self.iter % p.test_interval == 0:
            self.test_all()
        self.log.info("Optimization Done.", "solver.cpp:333")

    def _start_progress(self) -> None:
        if not self.progress or self._bar is not None:
            return
        self._bar = ProgressBar(self.param.max_iter, initial=self.iter,
                                out=self.log.stream or sys.stderr)
        self._bar_log = self.log.stream
        if self.log.stream is not None:
            self.log.stream = self._bar.stream  # type: ignore[assignment]

    def _stop_progress(self) -> None:
        if self._bar is None:
            return
        self._bar.close()
        if self.log.stream is not None:
            self.log.stream = self._bar_log
        self._bar = None

    def _agreed_flag(self, flag: bool) -> bool:
        """``flag`` as every rank must see it (set on any rank: set on all)."""
        if self.distributed is None:
            return flag
        return bool(self.distributed.agree(int(flag), self.device))

    def _stopped_at(self) -> str:
        """Where a run that stops on bad data stands (Caffe dies in its prefetch thread
        without a word about it): the iteration and the snapshot to resume from."""
        if self.last_snapshot is None:
            return f"training stopped at iteration {self.iter}, before any snapshot"
        return (f"training stopped at iteration {self.iter}; after fixing the data, resume "
                f"with -snapshot {self.last_snapshot}")

    def _root_snapshot(self) -> None:
        if self.is_root:
            self.snapshot()

    def _clear_diffs(self) -> None:
        for p in self.optimizer.learnable():
            p.grad = None

    def _plain_pass(self, batch: dict[str, torch.Tensor]
                    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Forward, loss and backward with nothing read on the host (what a CUDA graph
        captures): the float32 loss and the outputs."""
        if self.amp is not None:
            with self.amp.autocast(cache=False):  # autocast's cache is not capturable
                out = self.net(batch)
        else:
            out = self.net(batch)
        loss = self.net.loss(out).float()
        if loss.requires_grad:
            if self.amp is not None:
                self.amp.backward(loss)
            else:
                loss.backward()
        return loss.detach(), out

    def _forward_backward(self, first: bool = True) -> tuple[np.float32, dict[str, torch.Tensor]]:
        batch = stream_of(self.net)()
        if self.captured is not None:  # the loss is checked after the replay
            loss_t, out = self.captured.run(batch, first)
            value = _f32(float(loss_t))
            if not math.isfinite(float(value)):
                raise self._diverged(value, batch)
            return value, out
        with self.grad_buffers.active():
            if self.amp is not None:
                with self.amp.autocast():
                    out = self.net(batch)
            else:
                out = self.net(batch)
            loss = self.net.loss(out).float()
            value = _f32(float(loss.detach()))
            if not math.isfinite(float(value)):
                raise self._diverged(value, batch)
            if loss.requires_grad:
                if self.amp is not None:
                    self.amp.backward(loss)
                else:
                    loss.backward()
        return value, out

    def _diverged(self, value: Any, batch: dict[str, torch.Tensor]) -> SolverError:
        where = self._first_nonfinite(batch)
        snap = (" Training stopped; the last snapshot written before it is kept."
                if self.param.snapshot else " Training stopped.")
        return SolverError(
            f"iteration {self.iter}: the loss is {float(value)}{where}.{snap}",
            path=self.path,
            hint="lower base_lr, clip_gradients, or check the data (scale, labels)")

    def _first_nonfinite(self, batch: dict[str, torch.Tensor]) -> str:
        """`` (first non-finite output: blob 'b' of layer 'l' (Type))`` from one forward
        of the same batch with every blob kept, or ``""``."""
        try:
            with torch.no_grad():
                blobs = self.net(batch, blobs="all")
        except (CaffeError, RuntimeError):
            return ""
        for name, tensor in batch.items():
            if not bool(torch.isfinite(tensor).all()):
                return f" (the input '{name}' holds non-finite values)"
        for layer in self.net.ir.layers:
            for top in layer.tops:
                t = blobs.get(top.name)
                if isinstance(t, torch.Tensor) and t.is_floating_point() and not bool(
                        torch.isfinite(t).all()):
                    return (f" (first non-finite output: blob '{top.name}' of layer "
                            f"'{layer.name}' ({layer.type}))")
        return ""

    def _update_smoothed(self, loss: np.float32, start_iter: int, average_loss: int) -> None:
        """Solver::UpdateSmoothedLoss, in float32."""
        if len(self._losses) < average_loss:
            self._losses.append(loss)
            size = len(self._losses)
            self._smoothed = _f32(_f32(self._smoothed * _f32(size - 1) + loss) / _f32(size))
        else:
            idx = (self.iter - start_iter) % average_loss
            self._smoothed = _f32(self._smoothed + _f32(loss - self._losses[idx])
                                  / _f32(average_loss))
            self._losses[idx] = loss

    def _output_values(self, net: CaffeNet, outputs: dict[str, torch.Tensor]
                       ) -> list[tuple[str, np.ndarray]]:
        out = []
        for name in net.outputs:
            t = outputs.get(name)
            if isinstance(t, torch.Tensor):
                out.append((name, t.detach().float().cpu().reshape(-1).numpy()))
        return out

    def _display(self, outputs: dict[str, torch.Tensor]) -> None:
        now = time.monotonic()
        lapse = now - self._timer
        per_s = (self.iter - self._iterations_last) / (lapse or 1)
        self.log.info(f"Iteration {self.iter} ({fmt(per_s)} iter/s, {fmt(lapse)}s/"
                      f"{self.param.display} iters), loss = {fmt(self._smoothed)}",
                      "solver.cpp:243")
        self._timer = now
        self._iterations_last = self.iter
        index = 0
        for name, values in self._output_values(self.net, outputs):
            weight = self.net.loss_weights.get(name, 0.0)
            if values.size > _MANY_VALUES and name not in self._many_valued:
                self._many_valued.add(name)
                self.log.warning(
                    f"net output '{name}' has {values.size} values: every display logs each "
                    "of them, as Caffe does; if nothing should read it (a data layer's second "
                    f"label), a Silence layer with bottom '{name}' keeps it out of the log "
                    "(caffe2torch lint: C2T207)")
            for v in values:
                extra = (f" (* {fmt(weight)} = {fmt(_f32(weight) * _f32(v))} loss)"
                         if weight else "")
                self.log.info(f"    Train net output #{index}: {name} = {fmt(v)}{extra}",
                              "solver.cpp:259")
                index += 1

    def _write_metrics(self, iteration: int, net: str, rows: list[tuple[str, float]]) -> None:
        for sink in self.metric_sinks:
            sink.write(iteration, net, rows)

    def _write_train_metrics(self, rate: float, outputs: dict[str, torch.Tensor]) -> None:
        rows: list[tuple[str, float]] = [("lr", rate), ("iteration_loss", self.iteration_loss),
                                         ("smoothed_loss", float(self._smoothed))]
        for name, values in self._output_values(self.net, outputs):
            rows += [(name if len(values) == 1 else f"{name}[{k}]", float(v))
                     for k, v in enumerate(values)]
        self._write_metrics(self.iter - 1, "train", rows)

    def _apply_update(self, display: bool) -> float:
        """SGDSolver::ApplyUpdate, then ++iter. Returns the rate used."""
        rate = self.policy.rate(self.iter)
        if display:
            self.log.info(f"Iteration {self.iter}, lr = {fmt(rate)}", "sgd_solver.cpp:107")
        self.optimizer.iter = self.iter
        if self.amp is not None:
            if not self.amp.step(self.optimizer, rate):
                self.log.warning(f"float16 gradients overflowed at iteration {self.iter}: "
                                 "update skipped, loss scale lowered")
        else:
            self.optimizer.step(rate=rate)
        scale = self.optimizer.last_clip_scale
        if scale is not None:
            clip = float(_f32(self.config.clip_gradients))
            self.log.info(f"Gradient clipping: scaling down gradients (L2 norm "
                          f"{fmt(clip / scale)} > {fmt(clip)}) by scale factor {fmt(scale)}",
                          "sgd_solver.cpp:99")
        self._last_rate = rate
        self.iter += 1
        return rate

    # ------------------------------------------------------------------ testing

    def test_all(self) -> None:
        """Solver::TestAll."""
        for i in range(len(self.test_nets)):
            if self.requested_early_exit:
                break
            self.test(i)

    def test(self, test_net_id: int = 0) -> dict[str, float]:
        """Solver::Test: ``test_iter`` forwards of a test net; logs and returns each
        output averaged (``name`` or ``name[k]``)."""
        p = self.param
        net = self.test_nets[test_net_id]
        n = int(p.test_iter[test_net_id])
        self.log.info(f"Iteration {self.iter}, Testing net (#{test_net_id})", "solver.cpp:357")
        scores: list[np.ndarray] | None = None
        names: list[str] = []
        loss = _f32(0)
        with torch.no_grad():
            for _ in range(n):
                request = self._requested_action()
                while request is not None:
                    if request == "snapshot":
                        self.snapshot()
                    elif request == "stop":
                        self.requested_early_exit = True
                    request = self._requested_action()
                if self.requested_early_exit:
                    break
                out = self._test_forward(net)
                if p.test_compute_loss:
                    loss = _f32(loss + _f32(float(net.loss(out))))
                values = self._output_values(net, out)
                if scores is None:
                    names = [nm for nm, v in values for _ in v]
                    scores = [v.astype(np.float32).copy() for _, v in values]
                else:
                    for acc, (_, v) in zip(scores, values):
                        acc += v
        if self.requested_early_exit:
            self.log.info("Test interrupted.", "solver.cpp:385")
            return {}
        result: dict[str, float] = {}
        rows: list[tuple[str, float]] = []
        if p.test_compute_loss and n:
            loss = _f32(loss / _f32(n))
            self.log.info(f"Test loss: {fmt(loss)}", "solver.cpp:389")
            rows.append(("loss", float(loss)))
        flat = [float(v) for acc in (scores or []) for v in acc]
        counts: dict[str, int] = {}
        for nm in names:
            counts[nm] = counts.get(nm, 0) + 1
        seen: dict[str, int] = {}
        for i, (nm, total) in enumerate(zip(names, flat)):
            mean = _f32(_f32(total) / _f32(n))
            weight = net.loss_weights.get(nm, 0.0)
            extra = f" (* {fmt(weight)} = {fmt(_f32(weight) * mean)} loss)" if weight else ""
            self.log.info(f"    Test net output #{i}: {nm} = {fmt(mean)}{extra}",
                          "solver.cpp:402")
            k = seen.get(nm, 0)
            seen[nm] = k + 1
            key = nm if counts[nm] == 1 else f"{nm}[{k}]"
            result[key] = float(mean)
            rows.append((key, float(mean)))
        self._write_metrics(self.iter, f"test{test_net_id}", rows)
        return result

    def _test_forward(self, net: CaffeNet) -> dict[str, torch.Tensor]:
        """One forward of a test net on its next batch (pycaffe's solver runs its own
        Net here so that the test net's blobs hold the values)."""
        return net(stream_of(net)())

    # ------------------------------------------------------------------ snapshots

    @property
    def snapshot_format(self) -> str:
        return caffe_pb2.SolverParameter.SnapshotFormat.Name(self.param.snapshot_format)

    def snapshot(self) -> tuple[str, str]:
        """Solver::Snapshot: the weights and the solver state at the current iteration.
        Returns (model path, state path)."""
        prefix = self.param.snapshot_prefix
        if not prefix:
            raise SolverError("cannot snapshot: the solver has no snapshot_prefix",
                              path=self.path, hint='add snapshot_prefix: "snapshots/net"')
        prefix = os.path.join(self.cwd, prefix) if not os.path.isabs(prefix) else prefix
        made = ensure_folder(prefix)
        if made:
            self.log.info(f"Created the snapshot folder {made}", "solver.cpp:0")
        shown = self.param.snapshot_prefix  # Caffe writes the prefix as given
        hdf5 = self.snapshot_format == "HDF5"
        ext = ".caffemodel.h5" if hdf5 else ".caffemodel"
        model = snapshot_filename(prefix, self.iter, ext)
        learned = snapshot_filename(shown, self.iter, ext)
        if hdf5:
            self.log.info(f"Snapshotting to HDF5 file {learned}", "solver.cpp:445")
            write_hdf5_caffemodel(self.net, model)
        else:
            self.log.info(f"Snapshotting to binary proto file {learned}", "solver.cpp:436")
            # with a fork's schema, in its numbers: what the fork's Caffe writes and what
            # restore (which reads with the same schema) and the fork itself read back
            self.net.save_caffemodel(model, self.proto)
        state_ext = ".solverstate.h5" if hdf5 else ".solverstate"
        state_path = snapshot_filename(prefix, self.iter, state_ext)
        data = SolverStateData(self.iter, self.policy.current_step, learned,
                               history_arrays(self.optimizer))
        kind = "HDF5" if hdf5 else "binary proto"
        self.log.info(f"Snapshotting solver state to {kind} file "
                      f"{snapshot_filename(shown, self.iter, state_ext)}", "sgd_solver.cpp:273")
        write_state(state_path, data, "HDF5" if hdf5 else "BINARYPROTO", self.proto)
        self.last_snapshot = snapshot_filename(shown, self.iter, state_ext)
        return model, state_path

    def restore(self, state_file: str | os.PathLike[str]) -> None:
        """Solver::Restore from a ``.solverstate`` or ``.solverstate.h5`` (ours or
        Caffe's): the weights of ``learned_net``, the iteration, ``current_step`` and the
        update history; then each net's data moves on to where the run had left it."""
        path = os.fspath(state_file)
        if not os.path.isabs(path) and not os.path.exists(path):
            path = os.path.join(self.cwd, path)
        state = read_solver_state(path, self.proto)
        if state.learned_net:
            learned = state.learned_net
            if not os.path.isabs(learned):
                learned = os.path.join(self.cwd, learned)
            self.net.copy_from(resolve_learned_net(learned, path), self.proto)
        self.iter = state.iter
        self.policy.current_step = state.current_step
        self.log.info("SGDSolver: restoring history", "sgd_solver.cpp:318")
        self.optimizer.load_history(state.history, path)
        self.optimizer.iter = self.iter
        self._last_rate = None
        self._skip_data(self.iter)

    def _skip_data(self, iteration: int) -> None:
        stream_of(self.net).skip(iteration * self.config.iter_size)
        p = self.param
        if not self.test_nets or p.test_interval <= 0:
            return
        tests = sum(1 for i in range(0, iteration, p.test_interval)
                    if i > 0 or p.test_initialization)
        for k, net in enumerate(self.test_nets):
            stream_of(net).skip(tests * int(p.test_iter[k]))

    def close(self) -> None:
        for sink in self.metric_sinks:
            sink.close()
        for net in (self.net, *self.test_nets):
            stream_of(net).close()


def get_solver(
    path: str | os.PathLike[str],
    *,
    device: Any = None,
    log: TextIO | object | None = _DEFAULT,
    log_csv: str | os.PathLike[str] | bool | None = None,
    weights: str | Iterable[str] | None = None,
    max_iter: int | None = None,
    level: int | None = None,
    stages: Iterable[str] = (),
    proto: str | os.PathLike[str] | None = None,
    **options: Any,
) -> Solver:
    """pycaffe's ``caffe.get_solver``: a Solver for a solver prototxt (any Caffe version),
    relative paths from the working directory. Without ``snapshot_prefix``, snapshots go
    beside the solver file (Caffe's default). ``max_iter`` overrides the file's; ``level``
    and ``stages`` are added to its ``train_state`` (``caffe train -level -stage``).
    ``log_csv``: the metrics CSV, or True for ``<snapshot_prefix>_metrics.csv``.
    ``options``: Solver's ``build_options``, ``amp``, ``tensorboard``, ``progress``,
    ``distributed``, ``data_workers``, ``share``. ``proto``: the caffe.proto of the Caffe
    fork the solver, its nets, weights and snapshots were written for."""
    p = os.fspath(path)
    schema = as_schema(proto)
    param = read_solver(p, schema)
    param.snapshot_prefix = default_snapshot_prefix(param, p)
    if max_iter is not None:
        param.max_iter = int(max_iter)
    if level is not None:
        param.train_state.level = level
    param.train_state.stage.extend(stages)
    csv = f"{param.snapshot_prefix}_metrics.csv" if log_csv is True else log_csv or None
    w = [weights] if isinstance(weights, str) else list(weights) if weights else None
    return Solver(param, path=p, device=device, log=log, log_csv=csv, weights=w,
                  proto=schema, **options)


__all__ = ["Solver", "get_solver"]
