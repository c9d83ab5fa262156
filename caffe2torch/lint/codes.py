"""The stable diagnostic codes: ``C2T`` + family digit + two digits, each with a name, a
default severity, and the text ``caffe2torch lint --explain CODE`` prints."""

from __future__ import annotations

from dataclasses import dataclass

FAMILIES = {
    "0": "syntax",
    "1": "schema",
    "2": "graph",
    "3": "layer",
    "4": "weights",
    "5": "solver",
    "6": "portability",
}


@dataclass(frozen=True)
class Code:
    code: str
    name: str
    severity: str
    summary: str
    explain: str

    @property
    def family(self) -> str:
        return FAMILIES[self.code[3]]


def _c(code: str, name: str, severity: str, summary: str, explain: str) -> Code:
    return Code(code, name, severity, summary, " ".join(explain.split()))


_TABLE = [
    # ------------------------------------------------------------------ syntax
    _c("C2T001", "syntax-error", "error", "the text is not valid protobuf text format",
       """Caffe reads prototxt with protobuf's TextFormat parser and stops at the first
       token it cannot read (a missing ':' or value, a stray character). The linter reports
       it, drops the broken field and keeps checking the rest of the file."""),
    _c("C2T002", "unclosed-block", "error", "a `{` block is never closed",
       """A block opened with `{` has no matching `}`. Caffe reports the end of the file (or
       the next layer) as the error place; the linter points at the block that is still
       open, which is where the `}` is missing."""),
    _c("C2T003", "stray-close-brace", "error", "a `}` closes no block",
       """There is one `}` too many: the block before it was closed already. Fields after
       it land at the top level of the file, where Caffe rejects them."""),
    # ------------------------------------------------------------------ schema
    _c("C2T101", "unknown-field", "error", "the message has no field of that name",
       """protobuf rejects a field its schema does not define. Usually a typo (the help
       names the nearest fields of that message) or a field written in the wrong block
       (kernel_size belongs in convolution_param, not in the layer). Fields that only a
       Caffe fork defines are C2T602 instead."""),
    _c("C2T102", "v1-field-in-layer", "error", "a V1 field inside a V2 `layer { }` block",
       """`blobs_lr`, `weight_decay`, `blob_share_mode` and `param: "name"` belong to V1
       `layers { }` blocks. In a V2 `layer { }` block write one `param { lr_mult: ...
       decay_mult: ... name: ... }` per parameter blob. --fix rewrites them."""),
    _c("C2T103", "layer-type-dialect", "error",
       "a layer type written in the other dialect (enum vs string)",
       """V1 `layers { }` blocks take enum types (`type: INNER_PRODUCT`); V2 `layer { }`
       blocks take quoted strings (`type: "InnerProduct"`). Copying a V1 block into a V2
       net gives `Expected string but found INNER_PRODUCT`. --fix writes the V2 name."""),
    _c("C2T104", "invalid-enum-value", "error", "not a value of that enum",
       """An enum field (pool, phase, norm_region, ...) has a value the schema does not
       define. The help lists the valid values."""),
    _c("C2T105", "wrong-value-type", "error", "a value of the wrong type",
       """A number where a string is expected (or a string where a number is), a float
       for an integer field, or a value for a field that takes a `{ }` block."""),
    _c("C2T106", "mixed-v1-v2", "error", "V1 `layers` and V2 `layer` blocks in one net",
       """Caffe refuses a net that has both: 'Refusing to upgrade inconsistent NetParameter
       input; the definition includes both layer and layers fields'. This happens when a
       snippet in the new format is pasted into an old net (or the reverse). Upgrade the V1
       part (`caffe2torch upgrade FILE`, or --fix) so the whole file is V2."""),
    _c("C2T107", "v2-field-in-layers", "error", "a V2-only field inside a V1 `layers { }` block",
       """V1 `layers { }` blocks (V1LayerParameter) lack the fields added later (param
       blocks, batch_norm_param, ...). Upgrade the file to V2 first, then use the field."""),
    _c("C2T108", "upgrade-refused", "error", "Caffe's upgrade of the old format fails",
       """Caffe upgrades V0/V1 nets when it reads them and stops on some old constructs
       (a padding layer that feeds no convolution, input fields without enough shapes)."""),
    _c("C2T109", "upgrade-problem", "warning", "Caffe's upgrade drops part of the old net",
       """Caffe logs 'had one or more problems upgrading' and carries on without the parts
       it could not convert; the built net then differs from the file."""),
    _c("C2T110", "duplicate-field", "error", "a non-repeated field is given twice",
       """protobuf's TextFormat::Parse, which Caffe calls, refuses a non-repeated field
       (name, type, num_output, ...) that appears twice in one block. Delete one."""),
    # ------------------------------------------------------------------ graph
    _c("C2T201", "unknown-bottom", "error", "a bottom blob that no earlier layer produces",
       """Caffe stops with 'Unknown bottom blob' when a layer reads a blob that no earlier
       layer of the same phase writes: a typo, a layer order problem, or a blob produced
       only in the other phase. The message names the phase and the nearest blob names."""),
    _c("C2T202", "duplicate-top", "error", "a top blob produced by two layers",
       """Only an in-place layer (top i equal to bottom i) may write a blob that exists
       already. Otherwise Caffe stops with 'Top blob ... produced by multiple sources'."""),
    _c("C2T203", "include-and-exclude", "error", "a layer with both include and exclude",
       """Caffe refuses 'Specify either include rules or exclude rules; not both.'"""),
    _c("C2T204", "layer-in-no-phase", "warning", "a layer no phase ever builds",
       """The layer's include/exclude rules exclude it from TRAIN and from TEST (or its
       level/stage conditions contradict each other), so it is dead text."""),
    _c("C2T205", "unused-top", "warning", "a top blob nobody reads",
       """In a net with a loss, a computed blob that no layer of any phase reads becomes an
       extra net output: usually a misspelt bottom further down or a forgotten branch.
       Net outputs of deploy nets, loss and accuracy tops, and data tops are not reported."""),
    _c("C2T206", "duplicate-layer-name", "warning", "two layers of one phase share a name",
       """Caffe copies caffemodel weights by layer name into the first layer of that name
       only, and names in logs become ambiguous."""),
    _c("C2T207", "unread-data-top", "warning", "a data top nobody reads",
       """A data layer's top that no layer reads (the second pair label `sim_p` of a
       Siamese net, a label in a net without a loss on it) becomes a net output: Caffe
       logs one `Train net output` line per element of it at every display (batch_size
       lines), and the metrics CSV and its plot get one series per element. A Silence
       layer with that bottom consumes it and costs nothing."""),
    _c("C2T208", "propagate-down-count", "error", "propagate_down not given once per bottom",
       """Net::Init checks that propagate_down is either absent or given exactly once per
       bottom blob of the layer: 'propagate_down param must be specified either 0 or
       bottom_size times'."""),
    _c("C2T209", "loss-weight-count", "error", "loss_weight not given once per top",
       """Net::SetLossWeights checks that loss_weight is either absent or given exactly
       once per top blob: 'loss_weight must be unspecified or specified once per top
       blob'."""),
    # ------------------------------------------------------------------ layer
    _c("C2T301", "unknown-layer-type", "error", "no layer type of that name",
       """The type is not a BVLC Caffe layer type nor one of the fork types caffe2torch
       knows. The help names the nearest types."""),
    _c("C2T302", "bottom-count", "error", "wrong number of bottoms for the layer type",
       """Each layer type takes a fixed number of bottoms (ContrastiveLoss takes 3: the two
       embeddings and the similarity label); Caffe checks it when it sets the layer up."""),
    _c("C2T303", "top-count", "error", "wrong number of tops for the layer type",
       """Each layer type produces a fixed number of tops; Caffe checks it at setup."""),
    _c("C2T304", "kernel-too-large", "error", "the kernel is larger than the padded input",
       """A convolution or pooling window larger than the input plus its padding gives an
       empty (or clipped, for pooling) output: the input was smaller than the author
       thought (an extra pooling, a different input size)."""),
    _c("C2T305", "concat-shape-mismatch", "error", "Concat bottoms differ outside the axis",
       """All Concat bottoms must agree on every axis except the concatenation axis."""),
    _c("C2T306", "eltwise-shape-mismatch", "error", "Eltwise bottoms of different shapes",
       """Eltwise (SUM, PROD, MAX) needs bottoms of exactly the same shape."""),
    _c("C2T307", "missing-layer-setting", "error", "a required setting is missing",
       """Convolution needs num_output and a kernel size; Pooling needs a kernel size or
       global_pooling; InnerProduct needs num_output. Caffe checks these at setup."""),
    _c("C2T308", "ignored-param-block", "warning", "a parameter block the layer type ignores",
       """The layer carries a `*_param` block that its type never reads (a pooling_param on
       a Convolution layer, usually after copy-and-paste): its settings have no effect."""),
    _c("C2T309", "too-many-params", "error", "more `param { }` blocks than param blobs",
       """Net::AppendParam refuses a layer with more `param` entries than it has param
       blobs ('Too many params specified for layer'): usually a bias `param` left after
       `bias_term: false`, or params on a layer that learns nothing."""),
    _c("C2T310", "batchnorm-param-lr", "error", "BatchNorm statistics given a learning rate",
       """BatchNorm's three blobs are statistics, not learned weights: BatchNormLayer::
       LayerSetUp refuses a `param` whose lr_mult is not 0 ('Cannot configure batch
       normalization statistics as layer parameters'). Use lr_mult: 0 or no `param`."""),
    _c("C2T320", "paired-data-shuffle", "warning", "paired data layers shuffle independently",
       """A Siamese/triplet net reads pair i from line i of each list file. With shuffle on,
       BVLC Caffe has each data layer permute its own list, so the pairs (and their labels)
       no longer match. caffe2torch reads paired data layers of one batch_size as one
       aligned group with one shared shuffle, so there the finding is an info note about
       BVLC Caffe; with different batch sizes the layers are read independently in both
       and it is a warning. To keep the net portable to BVLC Caffe, shuffle the lists
       together offline and turn shuffle off."""),
    _c("C2T330", "paired-batch-size", "error", "paired data layers of different batch sizes",
       """The towers of a Siamese/triplet net read pair i from line i of each list, one
       batch from each data layer per iteration: their data layers need one batch_size.
       BVLC Caffe sets such a net up and stops only at the loss ('Check failed: bottom[0]->
       shape(0) == bottom[1]->shape(0) ... The data and label should have the same first
       dimension'), which names neither data layer; caffe2torch refuses it when it builds
       the net."""),
    _c("C2T321", "pair-lists-length", "error", "paired list files of different lengths",
       """(--check-data) Line i of each list forms pair i; lists of different lengths
       misalign as soon as the shorter one wraps around. Compared where the data layers
       share one batch_size (caffe2torch then reads them as one aligned group and refuses
       lists of different lengths at run time); data layers of different batch sizes are
       read each on its own."""),
    _c("C2T322", "pair-labels-disagree", "error", "paired list files disagree on a label",
       """(--check-data) Both lists carry the pair's label; where they differ the label the
       loss sees depends on which data layer feeds it, and the lists are probably out of
       step."""),
    _c("C2T323", "data-source-unreadable", "warning", "a data source cannot be read",
       """(--check-data) The list file named by `source` does not exist (relative to the
       current directory, as Caffe opens it, or to the net's folder) or is malformed."""),
    _c("C2T327", "list-image-missing", "warning", "a list file names images that do not exist",
       """(--check-data) ImageData opens root_folder + the listed name relative to the folder
       Caffe runs in, and stops at the first image it cannot open. The finding names the
       first missing image and counts the others."""),
    _c("C2T328", "pair-label-not-binary", "warning", "a pair label other than 0 or 1",
       """(--check-data) Siamese pair lists end in the pair label: 1 for a pair of one
       class, 0 for two classes. ContrastiveLoss counts any non-zero label as similar, so a
       list of class labels (say, 7) trains every pair as similar."""),
    _c("C2T324", "embedding-through-relu-dropout", "warning",
       "a ReLU or Dropout right before a ContrastiveLoss embedding",
       """The distance of a metric loss should see the raw embedding: a ReLU clips it to
       the positive orthant (dimensions die and distances shrink), Dropout zeroes random
       dimensions independently in the two branches, so similar pairs look far apart."""),
    _c("C2T325", "shared-param-mismatch", "error", "a shared param with different lr/decay",
       """Layers that share a parameter (`param { name: "w" }`) must agree on lr_mult and
       decay_mult where they set them: Caffe stops with 'Shared param ... has mismatched
       lr_mult'."""),
    _c("C2T329", "shared-param-shape", "error", "a shared param with blobs of different shapes",
       """Layers that share a parameter (`param { name: "w" }`) share one blob: Net::
       AppendParam needs the same shape (STRICT, the default) or the same count
       (`share_mode: PERMISSIVE`). Two InnerProduct layers of different num_output (or
       inputs of different size) sharing "w" stop Caffe with 'Cannot share param ...
       shape mismatch'."""),
    _c("C2T326", "siamese-not-shared", "warning", "twin branches do not share weights",
       """A pairwise loss compares two branches built alike, but the layers of one branch
       have no `param { name: ... }` shared with the other: each branch learns its own
       weights, which is rarely what a Siamese net wants."""),
    # ------------------------------------------------------------------ weights
    _c("C2T401", "weights-shape-mismatch", "error", "caffemodel blob shape differs",
       """(--weights) Caffe copies weights by layer name and stops with 'Cannot copy param
       ... shape mismatch' when the caffemodel blob does not have the shape the net
       computes (an InnerProduct whose input size changed, a different num_output)."""),
    _c("C2T402", "weights-unreadable", "error", "the weights file cannot be read",
       """(--weights) The file is missing or is not a binary NetParameter."""),
    # ------------------------------------------------------------------ solver
    _c("C2T501", "step-without-stepsize", "error", "lr_policy step without stepsize",
       """`lr_policy: "step"` divides the iteration by stepsize; without it Caffe divides
       by zero."""),
    _c("C2T502", "test-interval-without-iter", "warning", "testing asked for but not set up",
       """test_interval without test_iter builds no test net from a generic `net`, so Caffe
       never tests; with explicit test nets, Caffe needs one test_iter per test net."""),
    _c("C2T503", "unknown-solver-type", "error", "no solver of that type",
       """Caffe's solvers are SGD, Nesterov, AdaGrad, RMSProp, AdaDelta and Adam."""),
    _c("C2T504", "unknown-lr-policy", "error", "no learning rate policy of that name",
       """Caffe's policies are fixed, step, exp, inv, multistep, poly and sigmoid; anything
       else stops training with 'Unknown learning rate policy'."""),
    _c("C2T505", "lr-policy-setting", "warning", "the lr_policy misses a setting it uses",
       """gamma, power and stepvalue default to 0 / none: exp with no gamma drops the rate
       to 0 after the first iteration, multistep without stepvalue never steps."""),
    _c("C2T506", "solver-no-net", "error", "the solver names no net",
       """A solver needs net, net_param, train_net or train_net_param."""),
    _c("C2T507", "deprecated-solver-type", "info", "the old enum solver_type",
       """`solver_type: SGD` is the old spelling; Caffe upgrades it to `type: "SGD"`."""),
    _c("C2T508", "solver-net-missing", "error", "the solver's net file does not exist",
       """Caffe opens the `net`, `train_net` and `test_net` files relative to the working
       directory (not the solver's folder) and stops when one is missing. When the file
       exists beside the solver instead, the finding is a warning: run from that folder,
       or write the path relative to where you run."""),
    _c("C2T509", "adagrad-momentum", "error", "momentum with the AdaGrad solver",
       """AdaGrad has no momentum term; Caffe refuses a solver that sets one: 'Momentum
       cannot be used with AdaGrad.' Delete the momentum line."""),
    # ------------------------------------------------------------------ portability
    _c("C2T601", "fork-layer-type", "warning", "a layer type only a Caffe fork defines",
       """BVLC Caffe does not have this layer type; the named fork does. caffe2torch reads
       the file, but BVLC Caffe (and tools built on it) will not."""),
    _c("C2T602", "fork-field", "warning", "a field only a Caffe fork defines",
       """The field is an extension of a Caffe fork; BVLC Caffe rejects the file."""),
    _c("C2T603", "python-layer", "info", "a Python layer",
       """A Python layer runs user code (python_param.module / layer) that must be importable;
       it cannot be checked or exported without that code."""),
    _c("C2T604", "legacy-format", "info", "a V0/V1 net that Caffe upgrades on reading",
       """Caffe still reads V0/V1 nets by upgrading them in memory. --fix (or `caffe2torch
       upgrade`) rewrites the file in the current format; for V1 nets --fix keeps your
       comments and layout."""),
    _c("C2T605", "kept-unknown-field", "warning",
       "a field (or V1 layer type) that no schema caffe2torch knows defines",
       """The field is in neither BVLC Caffe's schema nor the Caffe forks caffe2torch knows;
       it most likely comes from the fork the net was written for (the message names it when
       known). caffe2torch keeps it aside with its text and place, so reading, upgrading,
       `info`, `draw` and this linter go on; building stops only at a layer whose meaning
       depends on it. Give the fork's src/caffe/proto/caffe.proto with `--proto PATH` to
       read the field with its type (a plug-in builder can then use it), or delete it.
       An unknown V1 enum type (`type: LOCAL`) becomes the layer type of that name."""),
]

CODES: dict[str, Code] = {c.code: c for c in _TABLE}


def explain(code: str) -> str | None:
    """The --explain text for ``code`` (case-insensitive), or None when unknown."""
    c = CODES.get(code.upper())
    if c is None:
        return None
    return (f"{c.code} {c.name} ({c.family}, {c.severity})\n\n{c.summary}.\n\n{c.explain}\n")


def matches(code: str, selectors: list[str]) -> bool:
    """Whether ``code`` is named by one of ``selectors``: a code, a prefix (``C2T2``), a
    family (``graph``) or a rule name (``unknown-bottom``)."""
    c = CODES.get(code)
    for s in selectors:
        s = s.strip()
        if not s:
            continue
        if code.startswith(s.upper()) or (c is not None and s.lower() in (c.family, c.name)):
            return True
    return False
