# YOLOX-Nano's network in PyTorch (Megvii's architecture: depth 0.33, width
# 0.25, depthwise convolutions; BatchNorm folded into the convolutions, as
# the YOLOv8n baseline in ../shared/gpu/torch_baseline.py folds it), random
# weights: the PyTorch baseline for the pretrained yolox_nano.onnx (416×416).
# Times it fp16 channels_last, eager and as a CUDA graph, at the batches
# given (default 64), the way torch_baseline.py times YOLOv8n.
# Usage on the GPU machine: python3 bench/torch_yolox.py [batch ...]
import sys
import torch
import torch.nn as nn


class Conv(nn.Module):
    def __init__(s, c1, c2, k, st=1, groups=1):
        super().__init__()
        s.c = nn.Conv2d(c1, c2, k, st, (k - 1) // 2, groups=groups, bias=True)
        s.a = nn.SiLU()

    def forward(s, x):
        return s.a(s.c(x))


def dw(c1, c2, k, st=1):
    return nn.Sequential(Conv(c1, c1, k, st, groups=c1), Conv(c1, c2, 1))


class Bottleneck(nn.Module):
    def __init__(s, c, shortcut):
        super().__init__()
        s.c1, s.c2, s.add = Conv(c, c, 1), dw(c, c, 3), shortcut

    def forward(s, x):
        y = s.c2(s.c1(x))
        return x + y if s.add else y


class CSP(nn.Module):
    def __init__(s, c1, c2, n, shortcut=True):
        super().__init__()
        h = c2 // 2
        s.c1, s.c2, s.c3 = Conv(c1, h, 1), Conv(c1, h, 1), Conv(2 * h, c2, 1)
        s.m = nn.Sequential(*[Bottleneck(h, shortcut) for _ in range(n)])

    def forward(s, x):
        return s.c3(torch.cat((s.m(s.c1(x)), s.c2(x)), 1))


class SPP(nn.Module):
    def __init__(s, c1, c2):
        super().__init__()
        h = c1 // 2
        s.c1, s.c2 = Conv(c1, h, 1), Conv(4 * h, c2, 1)
        s.m = nn.ModuleList(nn.MaxPool2d(k, 1, k // 2) for k in (5, 9, 13))

    def forward(s, x):
        x = s.c1(x)
        return s.c2(torch.cat([x] + [m(x) for m in s.m], 1))


class Focus(nn.Module):
    def __init__(s, c2):
        super().__init__()
        s.c = Conv(12, c2, 3)

    def forward(s, x):
        return s.c(torch.cat((x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]), 1))


class YOLOXNano(nn.Module):
    def __init__(s, nc=80):
        super().__init__()
        s.stem = Focus(16)
        s.d2 = nn.Sequential(dw(16, 32, 3, 2), CSP(32, 32, 1))
        s.d3 = nn.Sequential(dw(32, 64, 3, 2), CSP(64, 64, 3))
        s.d4 = nn.Sequential(dw(64, 128, 3, 2), CSP(128, 128, 3))
        s.d5 = nn.Sequential(dw(128, 256, 3, 2), SPP(256, 256), CSP(256, 256, 1, False))
        s.up = nn.Upsample(scale_factor=2, mode="nearest")
        s.lat0, s.p4 = Conv(256, 128, 1), CSP(256, 128, 1, False)
        s.red1, s.p3 = Conv(128, 64, 1), CSP(128, 64, 1, False)
        s.bu2, s.n3 = dw(64, 64, 3, 2), CSP(128, 128, 1, False)
        s.bu1, s.n4 = dw(128, 128, 3, 2), CSP(256, 256, 1, False)
        s.stems = nn.ModuleList(Conv(c, 64, 1) for c in (64, 128, 256))
        s.cls = nn.ModuleList(nn.Sequential(dw(64, 64, 3), dw(64, 64, 3)) for _ in range(3))
        s.reg = nn.ModuleList(nn.Sequential(dw(64, 64, 3), dw(64, 64, 3)) for _ in range(3))
        s.cls_p = nn.ModuleList(nn.Conv2d(64, nc, 1) for _ in range(3))
        s.reg_p = nn.ModuleList(nn.Conv2d(64, 4, 1) for _ in range(3))
        s.obj_p = nn.ModuleList(nn.Conv2d(64, 1, 1) for _ in range(3))

    def forward(s, x):
        x = s.d2(s.stem(x))
        c3 = s.d3(x)
        c4 = s.d4(c3)
        c5 = s.d5(c4)
        f0 = s.lat0(c5)
        f1 = s.p4(torch.cat((s.up(f0), c4), 1))
        f1r = s.red1(f1)
        p3 = s.p3(torch.cat((s.up(f1r), c3), 1))
        p4 = s.n3(torch.cat((s.bu2(p3), f1r), 1))
        p5 = s.n4(torch.cat((s.bu1(p4), f0), 1))
        outs = []
        for i, f in enumerate((p3, p4, p5)):
            f = s.stems[i](f)
            r = s.reg[i](f)
            outs.append(torch.cat((s.reg_p[i](r), s.obj_p[i](r).sigmoid(), s.cls_p[i](s.cls[i](f)).sigmoid()), 1).flatten(2))
        return torch.cat(outs, 2).permute(0, 2, 1)


def bench(fn, iters):
    torch.cuda.synchronize()
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    ts = []
    for _ in range(iters):
        e0.record(); fn(); e1.record(); torch.cuda.synchronize(); ts.append(e0.elapsed_time(e1))
    ts.sort()
    return ts[len(ts) // 2]


if __name__ == "__main__":
    torch.manual_seed(0)
    m = YOLOXNano().eval()
    print(f"params {sum(p.numel() for p in m.parameters()) / 1e6:.2f}M, convolutions {sum(isinstance(x, nn.Conv2d) for x in m.modules())}")
    m = m.cuda().half().to(memory_format=torch.channels_last)
    torch.backends.cudnn.benchmark = True
    print("| batch | eager img/s | cudagraph img/s | output |")
    for B in [int(a) for a in sys.argv[1:]] or [64]:
        x = torch.randn(B, 3, 416, 416, device="cuda", dtype=torch.half).to(memory_format=torch.channels_last)
        with torch.inference_mode():
            for _ in range(5):
                y = m(x)
            t = bench(lambda: m(x), 20)
            g, st = torch.cuda.CUDAGraph(), torch.cuda.Stream()
            st.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(st):
                for _ in range(3):
                    m(x)
            torch.cuda.current_stream().wait_stream(st)
            with torch.cuda.graph(g):
                y = m(x)
            tg = bench(g.replay, 30)
        print(f"| {B} | {B / t * 1e3:.0f} | {B / tg * 1e3:.0f} | {list(y.shape)} |", flush=True)
