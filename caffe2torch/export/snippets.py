"""Source text of the small classes a generated module carries for Caffe rules that torch
has no single function for. Each is plain torch code (no caffe2torch import) and repeats,
op for op, what the library's layer module computes, so the results agree exactly."""

from __future__ import annotations

POOL = '''
class CaffePool2d(nn.Module):
    """Caffe's MAX / AVE pooling where torch's own pooling has other windows.

    Output size: ceil((size + 2 pad - kernel) / stride) + 1 (floor with ceil=False), one
    window less when the last would start inside the padding. MAX ignores the padding; the
    AVE divisor counts the padding but nothing beyond it."""

    def __init__(self, method: str, kernel, stride, pad, ceil: bool = True) -> None:
        super().__init__()
        self.method = method
        self.kernel = tuple(kernel)
        self.stride = tuple(stride)
        self.pad = tuple(pad)
        self.ceil = ceil

    def _out(self, size: int, k: int, s: int, p: int) -> int:
        ratio = (size + 2 * p - k) / s
        out = (math.ceil(ratio) if self.ceil else math.floor(ratio)) + 1
        if p and (out - 1) * s >= size + p:
            out -= 1
        return out

    def forward(self, x: torch.Tensor, with_mask: bool = False):
        size = (x.shape[-2], x.shape[-1])
        geo = list(zip(size, self.kernel, self.stride, self.pad))
        out = [self._out(n, k, s, p) for n, k, s, p in geo]
        # pad (or crop) so that plain floor-mode pooling sees Caffe's windows
        right = [(o - 1) * s + k - n - p for o, (n, k, s, p) in zip(out, geo)]
        borders = (self.pad[1], right[1], self.pad[0], right[0])
        if self.method == "MAX":
            padded = F.pad(x, borders, value=float("-inf"))
            top, index = F.max_pool2d(padded, self.kernel, self.stride, return_indices=True)
            empty = top == float("-inf")  # a window with no input: -FLT_MAX, mask -1
            top = torch.clamp(top, min=torch.finfo(x.dtype).min)
            if not with_mask:
                return top
            width = padded.shape[-1]
            h = torch.div(index, width, rounding_mode="floor") - self.pad[0]
            w = torch.remainder(index, width) - self.pad[1]
            mask = torch.where(empty, -1, h * size[1] + w)
            return top, mask.to(x.dtype)
        summed = F.avg_pool2d(F.pad(x, borders), self.kernel, self.stride, divisor_override=1)
        extents = []
        for o, (n, k, s, p) in zip(out, geo):
            start = torch.arange(o, device=x.device) * s - p
            end = torch.clamp(start + k, max=n + p)
            extents.append((end - start).to(x.dtype))
        return summed / (extents[0][:, None] * extents[1][None, :])
'''

LRN = '''
class CaffeLRN(nn.Module):
    """Caffe's local response normalisation. ACROSS_CHANNELS: x * (k + alpha / size * sum
    of x^2 over `size` channels)^-beta; WITHIN_CHANNEL: x * (1 + alpha * mean of x^2 over a
    size x size window, zero padded)^-beta."""

    def __init__(self, size: int, alpha: float, beta: float, k: float, within: bool) -> None:
        super().__init__()
        self.size, self.alpha, self.beta, self.k, self.within = size, alpha, beta, k, within

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = (self.size - 1) // 2
        squares = x * x
        if self.within:
            pooled = F.avg_pool2d(squares, self.size, 1, pre, False, True)
            scale = 1.0 + self.alpha * pooled
        else:
            padded = F.pad(squares, (0, 0, 0, 0, pre, self.size - 1 - pre))
            window = F.avg_pool3d(padded.unsqueeze(1), (self.size, 1, 1), 1).squeeze(1)
            scale = self.k + self.alpha * window
        return x * torch.pow(scale, -self.beta)
'''

SNIPPETS = {"CaffePool2d": POOL, "CaffeLRN": LRN}
# snippets that use another snippet: it goes into the file before them
NEEDS: dict[str, tuple[str, ...]] = {}


def add_snippets(snippets: dict[str, str], needs: dict[str, tuple[str, ...]] | None = None) -> None:
    """Register more snippets (each family of emitters brings its own)."""
    SNIPPETS.update(snippets)
    NEEDS.update(needs or {})
