# PyTorch baseline for the DETR family (issue 20): transformers' RT-DETR and
# D-FINE as a user runs them, the models scripts/export-detr.py exports
# (random weights, same configuration), in fp16 channels_last, the forward
# captured in a CUDA graph at the batch asked (its host-to-device uploads of
# constants through pinned memory; eager where capture still fails, said
# so), checked against eager, images/s over a few seconds.
#
#   python3 bench/torch_detr.py [--batch 64] [--seconds 3] [rtdetr] [dfine]
import argparse, contextlib, time
import torch


@contextlib.contextmanager
def pinned_uploads():
    """Lets transformers' forward be captured: it builds small tensors from
    Python lists on the host (spatial shapes, level starts) and uploads them,
    which CUDA graph capture forbids from pageable memory. While capturing,
    such uploads go through pinned host copies that stay alive with the graph
    (their values are the model's constants), as captured copies must."""
    keep = []
    to, as_tensor, tensor = torch.Tensor.to, torch.as_tensor, torch.tensor

    def cuda(d):
        return d is not None and torch.device(d).type == "cuda" if isinstance(d, (str, torch.device)) else False

    def upload(t, device):
        p = t.pin_memory()
        keep.append(p)
        return to(p, device, non_blocking=True)

    def to_(self, *a, **k):
        dev = k.get("device", next((x for x in a if isinstance(x, (str, torch.device))), None))
        if self.device.type == "cpu" and cuda(dev):
            dt = k.get("dtype", next((x for x in a if isinstance(x, torch.dtype)), None))
            return upload(self if dt is None else to(self, dt), dev)
        return to(self, *a, **k)

    def make(orig):
        def f(data, *a, device=None, **k):
            if cuda(device) and not (isinstance(data, torch.Tensor) and data.is_cuda):
                return upload(orig(data, *a, **k), device)
            return orig(data, *a, device=device, **k)
        return f

    torch.Tensor.to, torch.as_tensor, torch.tensor = to_, make(as_tensor), make(tensor)
    try:
        yield keep
    finally:
        torch.Tensor.to, torch.as_tensor, torch.tensor = to, as_tensor, tensor


def build(name):
    import transformers as T
    if name == "rtdetr":
        return T.RTDetrForObjectDetection(T.RTDetrConfig())
    return T.DFineForObjectDetection(T.DFineConfig())


def measure(name, batch, seconds):
    torch.manual_seed(0)
    m = build(name).eval().cuda().half().to(memory_format=torch.channels_last)
    x = torch.rand(batch, 3, 640, 640, device="cuda", dtype=torch.half).contiguous(memory_format=torch.channels_last)

    def fwd():
        o = m(pixel_values=x)
        return o.logits, o.pred_boxes

    with torch.no_grad():
        for _ in range(3):
            fwd()
        torch.cuda.synchronize()
        mode, run = "eager", fwd
        try:
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                for _ in range(2):
                    fwd()
            torch.cuda.current_stream().wait_stream(s)
            g = torch.cuda.CUDAGraph()
            with pinned_uploads() as keep, torch.cuda.graph(g):
                out = fwd()
            g.replay()
            torch.cuda.synchronize()
            # The graph must compute what eager does.
            want = fwd()
            diff = max((a.float() - b.float()).abs().max().item() for a, b in zip(out, want))
            if diff > 1e-2:
                raise RuntimeError(f"the captured forward differs from eager by {diff:.3g}")
            mode, run = f"cuda graph (max diff from eager {diff:.2g})", g.replay
        except Exception as e:
            print(name, "capture failed, eager:", str(e).splitlines()[0][:160])
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            run()
            n += 1
        torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        eager_n, t1 = 0, time.perf_counter()
        while time.perf_counter() - t1 < seconds / 2:
            fwd()
            eager_n += 1
        torch.cuda.synchronize()
        de = time.perf_counter() - t1
    print(f"{name}: batch {batch}, fp16 channels_last, {mode}: {n * batch / dt:.0f} img/s; eager {eager_n * batch / de:.0f} img/s")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("models", nargs="*", default=["rtdetr", "dfine"])
    a = ap.parse_args()
    for name in a.models:
        try:
            measure(name, a.batch, a.seconds)
        except Exception as e:
            print(name, "failed:", e)


if __name__ == "__main__":
    main()
