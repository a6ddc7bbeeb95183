# PyTorch baseline for the DETR family (issue 20): transformers' RT-DETR and
# D-FINE as a user runs them, the models scripts/export-detr.py exports
# (random weights, same configuration), in fp16 channels_last, the forward
# captured in a CUDA graph at the batch asked (eager where capture fails,
# said so), images/s over a few seconds.
#
#   python3 bench/torch_detr.py [--batch 64] [--seconds 3] [rtdetr] [dfine]
import argparse, time
import torch


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
            with torch.cuda.graph(g):
                fwd()
            g.replay()
            torch.cuda.synchronize()
            mode, run = "cuda graph", g.replay
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
