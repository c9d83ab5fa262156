"""Solver rules (Solver::Init, SGDSolver::GetLearningRate, the solver registry)."""

from __future__ import annotations

import os

from caffe2torch.io.paths import folder_where_found, shown, where_text
from caffe2torch.io.positions import COL, LINE, scan
from caffe2torch.io.upgrade import SOLVER_TYPES
from caffe2torch.lint.context import Context
from caffe2torch.lint.diagnostic import Edit, Fix
from caffe2torch.lint.fix import Rewriter
from caffe2torch.lint.rules_portability import fork_fields
from caffe2torch.lint.source import field_end, token_at, token_end
from caffe2torch.proto import caffe_pb2
from caffe2torch.suggest import close_names, did_you_mean

SOLVERS = ("SGD", "Nesterov", "AdaGrad", "RMSProp", "AdaDelta", "Adam")
POLICIES = ("fixed", "step", "exp", "inv", "multistep", "poly", "sigmoid")
_NEEDS = {  # policy -> settings its formula reads (and what a missing one does)
    "exp": (("gamma", "gamma defaults to 0: the rate drops to 0 after the first iteration"),),
    "step": (("gamma", "gamma defaults to 0: the rate drops to 0 at the first step"),),
    "inv": (("gamma", "gamma defaults to 0: the rate never changes"),
            ("power", "power defaults to 0: the rate never changes")),
    "multistep": (("gamma", "gamma defaults to 0: the rate drops to 0 at the first step"),),
    "poly": (("power", "power defaults to 0: the rate never changes"),),
    "sigmoid": (("gamma", "gamma defaults to 0: the rate stays at base_lr / 2"),
                ("stepsize", "stepsize defaults to 0")),
}


def check_solver(ctx: Context, solver: caffe_pb2.SolverParameter) -> None:
    top = scan(ctx.buf.text()).top_fields

    def at(name: str):
        spots = top.get(name)
        return spots[0] if spots else (None, None)

    nets = ("net", "net_param", "train_net", "train_net_param")
    if not any(solver.HasField(n) for n in nets):
        ctx.report("C2T506", "the solver names no net (net, net_param, train_net or "
                   "train_net_param)", None, None, help='add `net: "train_val.prototxt"`')
    _net_files(ctx, solver, top)
    _adagrad_momentum(ctx, solver, at)
    policy = solver.lr_policy
    if solver.HasField("lr_policy") and policy not in POLICIES:
        close = close_names(policy.lower(), POLICIES, cutoff=0.5)
        if policy.lower() in POLICIES:
            close = [policy.lower()]
        edit = _value_edit(ctx, "lr_policy", f'"{close[0]}"', top) if len(close) == 1 else None
        ctx.report("C2T504", f'unknown lr_policy "{policy}": Caffe stops with \'Unknown '
                   "learning rate policy'", *at("lr_policy"),
                   help=did_you_mean(close) or "one of " + ", ".join(POLICIES), fix=edit)
    if policy == "step" and not solver.HasField("stepsize"):
        ctx.report("C2T501", 'lr_policy "step" without stepsize: Caffe divides the iteration '
                   "by stepsize (0)", *at("lr_policy"), help="add `stepsize: N`")
    for name, what in _NEEDS.get(policy, ()):
        if not solver.HasField(name) and not (policy == "step" and name == "stepsize"):
            ctx.report("C2T505", f'lr_policy "{policy}" reads {name}, which is not set: {what}',
                       *at("lr_policy"), help=f"add `{name}: ...`")
    if policy == "multistep" and not solver.stepvalue:
        ctx.report("C2T505", 'lr_policy "multistep" without stepvalue: the rate never changes',
                   *at("lr_policy"), help="add one `stepvalue: N` per step")
    if list(solver.stepvalue) != sorted(solver.stepvalue):
        ctx.report("C2T505", "stepvalue must increase: Caffe steps through them in order and "
                   "stops at the first that is not reached", *at("stepvalue"),
                   help="sort the stepvalue lines")
    n_test_nets = len(solver.test_net) + len(solver.test_net_param)
    if n_test_nets and len(solver.test_iter) != n_test_nets:
        ctx.report("C2T502", f"{n_test_nets} test net(s) but {len(solver.test_iter)} test_iter: "
                   "Caffe stops ('test_iter must be specified for each test network')",
                   *(at("test_iter") if solver.test_iter else at("test_net")),
                   severity="error", help="give one test_iter per test net")
    elif solver.test_interval and not solver.test_iter and not n_test_nets:
        ctx.report("C2T502", "test_interval is set but test_iter is not: Caffe builds no test "
                   "net from `net`, so it never tests", *at("test_interval"),
                   help="add `test_iter: N` (test batches per test run)")
    if solver.HasField("type") and solver.type not in SOLVERS:
        close = close_names(solver.type, SOLVERS, cutoff=0.4)
        by_lower = {s.lower(): s for s in SOLVERS}
        close = [by_lower[solver.type.lower()]] if solver.type.lower() in by_lower else close
        ctx.report("C2T503", f'unknown solver type "{solver.type}": Caffe knows '
                   + ", ".join(SOLVERS), *at("type"), help=did_you_mean(close),
                   fix=_value_edit(ctx, "type", f'"{close[0]}"', top)
                   if len(close) == 1 else None)
    if solver.HasField("solver_type"):
        name = caffe_pb2.SolverParameter.SolverType.Name(solver.solver_type)
        new = SOLVER_TYPES[name]
        fix = None if solver.HasField("type") else _field_edit(
            ctx, "solver_type", f'type: "{new}"', top)
        ctx.report("C2T507", f"solver_type: {name} is the old spelling of type: \"{new}\"",
                   *at("solver_type"), help=f'write `type: "{new}"`', fix=fix)
    for path, fork, what in fork_fields(solver):
        ctx.report("C2T602", f"{what} is defined by {fork}, not by BVLC Caffe",
                   *at(path.split(".")[0]), help="BVLC Caffe rejects the file")


def _value_edit(ctx: Context, name: str, new: str, top) -> Fix | None:
    spots = top.get(name)
    if not spots:
        return None
    rw = Rewriter(ctx.src)
    line, col = ctx.buf.orig(*spots[0])
    k = token_at(rw.toks, line, col)
    e = field_end(rw.toks, k)
    edit = rw.replace_token(rw.toks[e][LINE], rw.toks[e][COL], new)
    return Fix(f"write {new}", (edit,)) if edit else None


def _field_edit(ctx: Context, name: str, new: str, top) -> Fix | None:
    spots = top.get(name)
    if not spots:
        return None
    rw = Rewriter(ctx.src)
    line, col = ctx.buf.orig(*spots[0])
    k = token_at(rw.toks, line, col)
    e = field_end(rw.toks, k)
    start = ctx.src.offset(line, col)
    end = ctx.src.offset(*token_end(rw.toks[e]))
    return Fix(f"write {new}", (Edit(start, end, new),))


def _net_files(ctx: Context, solver: caffe_pb2.SolverParameter, top) -> None:
    """Solver::InitTrainNet / InitTestNets read the net files relative to the working
    directory: a file that is not there stops Caffe ('Failed to parse NetParameter file')."""
    names = [("net", 0, solver.net)] if solver.HasField("net") else []
    if solver.HasField("train_net"):
        names.append(("train_net", 0, solver.train_net))
    names += [("test_net", k, n) for k, n in enumerate(solver.test_net)]
    def at(field: str, k: int):
        spots = top.get(field) or [(None, None)]
        return spots[min(k, len(spots) - 1)]

    for field, k, name in names:
        if not name or os.path.isfile(name):
            continue
        found = folder_where_found(name, ctx.path) if ctx.path else None
        if found is not None:
            ctx.report("C2T508", f"{field} '{name}' is not found from the working directory "
                       f"({os.getcwd()}), where Caffe (and caffe2torch train) open it; it "
                       f"exists {where_text(found, ctx.path or '', 'solver')}", *at(field, k),
                       severity="warning",
                       help=f"run from that folder (cd {shown(found)}), or write the path "
                       "relative to where you run")
        else:
            ctx.report("C2T508", f"{field} '{name}' does not exist (Caffe opens it relative "
                       f"to the working directory, {os.getcwd()})", *at(field, k),
                       help="check the path; write it relative to the folder you run from")


def _adagrad_momentum(ctx: Context, solver: caffe_pb2.SolverParameter, at) -> None:
    """AdaGradSolver's constructor: CHECK_EQ(0, momentum) 'Momentum cannot be used with
    AdaGrad.'"""
    if solver.HasField("type"):
        kind, where = solver.type, "type"
    elif solver.HasField("solver_type"):
        kind = caffe_pb2.SolverParameter.SolverType.Name(solver.solver_type)
        where = "solver_type"
    else:
        return
    if kind.lower() == "adagrad" and solver.momentum != 0:
        ctx.report("C2T509", f"momentum {solver.momentum:g} with the AdaGrad solver: Caffe "
                   "stops ('Momentum cannot be used with AdaGrad.')", *at("momentum"),
                   help=f"delete `momentum`, or choose another solver type (the {where} line)")
