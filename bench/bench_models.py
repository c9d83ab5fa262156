"""Converted vs hand-written: forward+backward and inference of LeNet, the seed's Siamese
AlexNet, GoogLeNet and ResNet-50, eager and under torch.compile.

Each converted net is checked equal to its hand-written twin (same weights, same input)
before it is timed. Ratios are hand-written time / converted time: >= 1 means the
converted module is at least as fast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

import caffe2torch as c2t
from bench import handwritten as hw
from bench.common import Report, paired_ratio, shared

GOAL = 0.97


@dataclass
class Case:
    name: str
    prototxt: str
    phase: str
    inputs: dict[str, tuple[int, ...]]
    hand: Callable[[], torch.nn.Module]
    output: str  # the converted net's output blob the hand-written module returns
    hand_args: tuple[str, ...]  # input blob names, in the hand-written forward's order
    shared_params: bool = False


def cases() -> list[Case]:
    siamese = {"data": (8, 3, 227, 227), "data_p": (8, 3, 227, 227), "label": (8,),
               "label_p": (8,)}
    return [
        Case("LeNet b64", shared("corpus/BVLC__caffe/examples/mnist/lenet.prototxt"), "TEST",
             {"data": (64, 1, 28, 28)}, hw.LeNet, "prob", ("data",)),
        Case("Siamese AlexNet b8x2", shared("seeds/siamese_imagenet_v1.prototxt"), "TRAIN",
             siamese, hw.SiameseAlexNet, "loss", ("data", "data_p", "label")),
        Case("GoogLeNet b4",
             shared("corpus/BVLC__caffe/models/bvlc_googlenet/deploy.prototxt"), "TEST",
             {"data": (4, 3, 224, 224)}, hw.GoogLeNet, "prob", ("data",)),
        Case("ResNet-50 b2",
             shared("corpus/KaimingHe__deep-residual-networks/prototxt/ResNet-50-deploy.prototxt"),
             "TEST", {"data": (2, 3, 224, 224)}, hw.ResNet50, "prob", ("data",)),
    ]


def make_inputs(case: Case, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, shape in case.inputs.items():
        if name.startswith("label"):
            out[name] = torch.randint(0, 2, shape, generator=g).float()
        else:
            out[name] = torch.randn(shape, generator=g)
    return out


def build_pair(case: Case) -> tuple[Any, torch.nn.Module]:
    net = c2t.load_net(case.prototxt, phase=case.phase, input_shapes=case.inputs)
    hand = case.hand()
    if case.shared_params:
        blobs = [lp.param for lp in net.learnable_params()]
    else:
        blobs = [b for blist in net.params.values() for b in blist]
    hw.load_caffe_params(hand, [b.detach() for b in blobs])
    return net, hand


def check_equal(case: Case, net: Any, hand: torch.nn.Module, feed: dict[str, torch.Tensor]
                ) -> float:
    """Largest relative difference of the outputs (eval mode: no dropout)."""
    net.train(False)
    hand.train(False)
    with torch.no_grad():
        a = net(**feed)[case.output]
        b = hand(*[feed[n] for n in case.hand_args])
    net.train(case.phase == "TRAIN")
    hand.train(case.phase == "TRAIN")
    scale = float(b.abs().max()) or 1.0
    diff = float((a - b).abs().max()) / scale
    if diff > 1e-4:
        raise AssertionError(f"{case.name}: converted and hand-written differ by {diff:.2e}")
    return diff


def steps(case: Case, net: Any, hand: torch.nn.Module, feed: dict[str, torch.Tensor],
          grad: bool) -> tuple[Callable[[], None], Callable[[], None]]:
    """(converted step, hand-written step) closures: inference under no_grad, or forward
    plus backward of the output against a fixed random gradient."""
    hand_in = [feed[n] for n in case.hand_args]
    out_shape = net.blob_shapes[case.output]
    g = torch.randn(out_shape, generator=torch.Generator().manual_seed(1))
    if not grad:
        def a() -> None:
            with torch.no_grad():
                net(**feed)

        def b() -> None:
            with torch.no_grad():
                hand(*hand_in)
        return a, b

    def a_g() -> None:
        net(**feed)[case.output].backward(g)
        net.zero_grad(set_to_none=True)

    def b_g() -> None:
        hand(*hand_in).backward(g)
        hand.zero_grad(set_to_none=True)
    return a_g, b_g


def run(report: Report, quick: bool) -> None:
    torch.manual_seed(0)
    repeat = 5 if quick else 15
    for case in cases():
        net, hand = build_pair(case)
        feed = make_inputs(case)
        diff = check_equal(case, net, hand, feed)
        for grad in (False, True):
            what = "fwd+bwd" if grad else "inference"
            a, b = steps(case, net, hand, feed, grad)
            ta, tb, ratio = paired_ratio(a, b, repeat, warmup=2,
                                         budget_s=0 if quick else 8.0)
            report.add("converted vs hand-written", f"{case.name} {what} eager",
                       f"{ta * 1e3:8.1f} ms vs {tb * 1e3:8.1f} ms, pairs {ratio:.3f}x",
                       f">= {GOAL}x", ratio >= GOAL, f"max rel diff {diff:.1e}" if not grad
                       else "")
    compile_cases = cases()[:1] if quick else [cases()[0], cases()[3]]
    for case in compile_cases:
        run_compiled(report, case, repeat)


def run_compiled(report: Report, case: Case, repeat: int) -> None:
    """torch.compile of the converted net (its fx GraphModule: positional inputs, dict out)
    against the eager converted net and the compiled hand-written net."""
    import torch._dynamo

    torch._dynamo.reset()
    net, hand = build_pair(case)
    feed = make_inputs(case)
    net.train(False)
    hand.train(False)
    args = [feed[n] for n in net.inputs]
    hand_in = [feed[n] for n in case.hand_args]
    compiled = torch.compile(net)
    compiled_hand = torch.compile(hand)
    with torch.no_grad():
        got = compiled(**feed)[case.output]
        want = net(**feed)[case.output]
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
        compiled_hand(*hand_in)

    def eager() -> None:
        with torch.no_grad():
            net.graph_module(*args)

    def comp() -> None:
        with torch.no_grad():
            compiled(**feed)

    def comp_hand() -> None:
        with torch.no_grad():
            compiled_hand(*hand_in)

    t_comp, t_eager, speedup = paired_ratio(comp, eager, repeat, warmup=2, budget_s=8.0)
    report.add("converted vs hand-written", f"{case.name} inference compiled vs eager",
               f"{t_comp * 1e3:8.1f} ms vs {t_eager * 1e3:8.1f} ms, pairs {speedup:.3f}x",
               ">= 1.0x", speedup >= 1.0, "torch.compile(net) works")
    tc2, th, ratio = paired_ratio(comp, comp_hand, repeat, warmup=2, budget_s=8.0)
    report.add("converted vs hand-written", f"{case.name} inference compiled vs hand",
               f"{tc2 * 1e3:8.1f} ms vs {th * 1e3:8.1f} ms, pairs {ratio:.3f}x",
               f">= {GOAL}x", ratio >= GOAL)
