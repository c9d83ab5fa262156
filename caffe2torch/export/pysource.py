"""Layer modules -> lines of standalone PyTorch source: the lookup of each layer's emitter.

The emitters live with the layers (``@emitter(CaffeReLU)`` beside CaffeReLU in its family
or fork module; the vocabulary is caffe2torch.layers.emit). export/standalone.py walks the
net's deploy view and asks each layer's module for its lines here.
"""

from __future__ import annotations

from caffe2torch.layers.emit import Emit, emitter_for


def emit_layer(e: Emit) -> list[str]:
    """The lines of ``e``'s layer, from the emitter registered for its module's class."""
    fn = emitter_for(type(e.module))
    if fn is None:
        raise e.unsupported(f"module {type(e.module).__name__}")
    return fn(e)
