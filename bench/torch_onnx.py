# PyTorch running an ONNX detector, for the per-family baselines of issue 19:
# the "what a user would otherwise run" figure for models whose PyTorch code
# (Ultralytics, AGPL) is not on the GPU machine. Each ONNX node becomes the
# torch call the exporter traced it from (Conv -> conv2d, MatMul -> matmul,
# Softmax -> softmax, ...), weights fp16 on the GPU, activations
# channels_last, the whole forward captured in a CUDA graph at the batch
# asked: the strongest plain-PyTorch baseline, the same one
# ../shared/gpu/torch_baseline.py measures for its hand-written YOLOv8n.
# Shape arithmetic (Shape, Gather, Concat of int64) runs on the host, once
# per capture, as PyTorch's own Python does.
#
# Before timing, the same interpreter in fp32 is checked against ONNX
# Runtime on one random image (relative L2), so the figure is of the
# network in the file.
#
#   python3 bench/torch_onnx.py [--batch 64] [--size 640] [--seconds 3] MODEL.onnx...
import argparse, math, sys, time

import numpy as np
import onnx
from onnx import numpy_helper
import torch
import torch.nn.functional as F


def attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


class Net:
    def __init__(self, path, device, dtype):
        m = onnx.load(path)
        self.g = m.graph
        self.device, self.dtype = device, dtype
        self.consts = {}
        # Small constants also on the host: Resize's scales are read as
        # numbers, which a CUDA graph capture cannot copy from the device.
        self.host = {}
        for t in self.g.initializer:
            a = numpy_helper.to_array(t)
            self.consts[t.name] = self.tensor(a)
            if a.size <= 16:
                self.host[t.name] = a
        for n in self.g.node:
            if n.op_type == "Constant" and "value" in attrs(n):
                a = numpy_helper.to_array(attrs(n)["value"])
                if a.size <= 16:
                    self.host[n.output[0]] = a
        self.input = self.g.input[0].name
        self.outputs = [o.name for o in self.g.output]
        self.static = {}

    def tensor(self, a):
        if a.dtype.kind == "f":
            t = torch.from_numpy(np.array(a)).to(self.device, self.dtype)
            return t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t
        return torch.from_numpy(np.array(a)).to(torch.int64)

    def __call__(self, x):
        # Nodes that do not depend on the image's values (constants, shape
        # arithmetic) are computed on the first call at this input shape
        # and reused: a CUDA graph then captures the network's kernels only.
        cache = self.static.setdefault(tuple(x.shape), {})
        env = dict(self.consts)
        env[self.input] = x
        dyn = {self.input}
        for idx, n in enumerate(self.g.node):
            isdyn = n.op_type != "Shape" and any(i in dyn for i in n.input if i)
            if not isdyn and idx in cache:
                outs = cache[idx]
            else:
                ins = [env[i] if i else None for i in n.input]
                try:
                    outs = self.op(n, ins, attrs(n))
                except Exception as e:
                    shapes = [tuple(t.shape) if t is not None else None for t in ins]
                    raise RuntimeError(f"node {n.name} ({n.op_type}) of inputs {shapes}: {e}") from e
                if not isinstance(outs, (list, tuple)):
                    outs = [outs]
                if not isdyn:
                    cache[idx] = outs
            if isdyn:
                dyn.update(n.output)
            for name, v in zip(n.output, outs):
                env[name] = v
        return [env[o] for o in self.outputs]

    def ints(self, t):
        return [int(v) for v in t.reshape(-1).tolist()]

    def op(self, n, x, a):
        op = n.op_type
        if op == "Constant":
            return self.tensor(numpy_helper.to_array(a["value"]))
        if op == "Conv":
            w = x[1]
            k = w.shape[2:]
            pads = a.get("pads", [0] * 4)
            if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
                raise ValueError(f"{n.name}: auto_pad")
            if pads[0] != pads[2] or pads[1] != pads[3]:
                x0 = F.pad(x[0], (pads[1], pads[3], pads[0], pads[2]))
                pads = [0, 0, 0, 0]
            else:
                x0 = x[0]
            return F.conv2d(x0, w, x[2] if len(x) > 2 else None, a.get("strides", [1, 1]), pads[:2],
                            a.get("dilations", [1, 1]), a.get("group", 1))
        if op == "ConvTranspose":
            return F.conv_transpose2d(x[0], x[1], x[2] if len(x) > 2 else None, a.get("strides", [1, 1]),
                                      a.get("pads", [0] * 4)[:2], a.get("output_padding", [0, 0]), a.get("group", 1),
                                      a.get("dilations", [1, 1]))
        if op in ("Add", "Sub", "Mul", "Div", "Pow"):
            p, q = x
            dev = p.is_cuda or q.is_cuda
            if dev:
                # A host number meeting a device tensor: as a Python scalar
                # (a copy to the device cannot be captured).
                p = p.item() if not p.is_cuda and p.dim() == 0 else p
                q = q.item() if not q.is_cuda and q.dim() == 0 else q
                if isinstance(p, torch.Tensor) and not p.is_cuda:
                    p = p.to(self.device, self.dtype)
                if isinstance(q, torch.Tensor) and not q.is_cuda:
                    q = q.to(self.device, self.dtype)
            elif op == "Div" and not p.is_floating_point():
                return torch.div(p, q, rounding_mode="trunc")
            if op == "Div" and not any(isinstance(t, float) or isinstance(t, torch.Tensor) and t.is_floating_point() for t in (p, q)):
                return torch.div(torch.as_tensor(p, device=self.device), q, rounding_mode="trunc")
            return {"Add": lambda a, b: a + b, "Sub": lambda a, b: a - b, "Mul": lambda a, b: a * b,
                    "Div": lambda a, b: a / b, "Pow": lambda a, b: a ** b}[op](p, q)
        if op == "Sigmoid":
            return torch.sigmoid(x[0])
        if op == "Relu":
            return torch.relu(x[0])
        if op == "LeakyRelu":
            return F.leaky_relu(x[0], a.get("alpha", 0.01))
        if op == "HardSwish":
            return F.hardswish(x[0])
        if op in ("Exp", "Log", "Sqrt", "Tanh", "Erf", "Cos", "Sin", "Neg", "Abs", "Reciprocal"):
            return getattr(torch, op.lower())(x[0])
        if op == "Softmax":
            return torch.softmax(x[0], a.get("axis", -1))
        if op == "MatMul":
            return torch.matmul(x[0], x[1])
        if op == "Concat":
            ts = [t for t in x if t is not None and (t.numel() > 0 or t.dim() > 1)]
            return torch.cat(ts, a["axis"])
        if op == "Split":
            ax = a.get("axis", 0)
            if len(x) > 1 and x[1] is not None:
                sizes = self.ints(x[1])
            elif "split" in a:
                sizes = list(a["split"])
            else:
                k = a.get("num_outputs", len(n.output))
                d = x[0].shape[ax]
                sizes = [(d + k - 1) // k] * (k - 1)
                sizes.append(d - sum(sizes))
            return list(torch.split(x[0], sizes, ax))
        if op == "Slice":
            starts, ends = self.ints(x[1]), self.ints(x[2])
            axes = self.ints(x[3]) if len(x) > 3 and x[3] is not None else list(range(len(starts)))
            steps = self.ints(x[4]) if len(x) > 4 and x[4] is not None else [1] * len(starts)
            idx = [slice(None)] * x[0].dim()
            for s, e, ax, st in zip(starts, ends, axes, steps):
                d = x[0].shape[ax]
                if st < 0:
                    raise ValueError(f"{n.name}: negative Slice step")
                s, e = max(-d, min(s, d)), max(-d, min(e, d))
                idx[ax] = slice(s, e, st)
            return x[0][tuple(idx)]
        if op == "Reshape":
            shape = self.ints(x[1])
            shape = [x[0].shape[i] if v == 0 else v for i, v in enumerate(shape)]
            return x[0].reshape(shape)
        if op == "Flatten":
            return torch.flatten(x[0], a.get("axis", 1)) if a.get("axis", 1) == 1 else x[0].reshape(
                math.prod(x[0].shape[:a["axis"]]), -1)
        if op == "Transpose":
            return x[0].permute(a.get("perm", list(reversed(range(x[0].dim())))))
        if op == "Unsqueeze":
            axes = self.ints(x[1]) if len(x) > 1 else list(a["axes"])
            t = x[0]
            r = t.dim() + len(axes)
            for ax in sorted(v % r for v in axes):
                t = t.unsqueeze(ax)
            return t
        if op == "Squeeze":
            axes = self.ints(x[1]) if len(x) > 1 else list(a.get("axes", []))
            t = x[0]
            for ax in sorted((v % t.dim() for v in axes), reverse=True):
                t = t.squeeze(ax)
            return t if axes else t.squeeze()
        if op == "Shape":
            return torch.tensor(list(x[0].shape), dtype=torch.int64)
        if op == "Gather":
            ax = a.get("axis", 0)
            idx = x[1]
            t = x[0]
            if idx.dim() == 0:
                return t.select(ax, int(idx) % t.shape[ax])
            return torch.index_select(t, ax, (idx % t.shape[ax]).reshape(-1).to(t.device)).reshape(
                *t.shape[:ax], *idx.shape, *t.shape[ax + 1:])
        if op == "Cast":
            to = a["to"]
            if to == onnx.TensorProto.FLOAT:
                return x[0].to(self.device, self.dtype) if not x[0].is_floating_point() else x[0]
            return x[0].to(torch.int64)
        if op == "Identity":
            return x[0]
        if op == "Range":
            s, e, d = (float(v) if v.is_floating_point() else int(v) for v in x)
            if x[0].is_floating_point():
                return torch.arange(s, e, d, device=self.device, dtype=self.dtype)
            return torch.arange(s, e, d, dtype=torch.int64)
        if op == "ConstantOfShape":
            v = numpy_helper.to_array(a["value"]) if "value" in a else np.zeros(1, np.float32)
            shape = self.ints(x[0])
            if v.dtype.kind == "f":
                return torch.full(shape, float(v.reshape(-1)[0]), device=self.device, dtype=self.dtype)
            return torch.full(shape, int(v.reshape(-1)[0]), dtype=torch.int64)
        if op == "Expand":
            shape = self.ints(x[1])
            return x[0] * torch.ones(shape, dtype=x[0].dtype, device=x[0].device)
        if op == "MaxPool":
            k = a["kernel_shape"]
            p = a.get("pads", [0] * 4)
            return F.max_pool2d(x[0], k, a.get("strides", k), p[:2], a.get("dilations", [1, 1]), bool(a.get("ceil_mode", 0)))
        if op == "AveragePool":
            k = a["kernel_shape"]
            p = a.get("pads", [0] * 4)
            return F.avg_pool2d(x[0], k, a.get("strides", k), p[:2], bool(a.get("ceil_mode", 0)),
                                bool(a.get("count_include_pad", 0)))
        if op in ("Resize", "Upsample"):
            mode = a.get("mode", b"nearest")
            mode = mode.decode() if isinstance(mode, bytes) else mode
            scales = None
            if op == "Upsample" or len(x) == 2:
                scales = n.input[1]
            elif len(x) > 3 and x[3] is not None and x[3].numel():
                size = self.ints(x[3])[2:]
                return F.interpolate(x[0], size=size, mode="nearest" if mode == "nearest" else "bilinear")
            elif len(x) > 2 and x[2] is not None and x[2].numel():
                scales = n.input[2]
            h = self.host.get(scales)
            sc = [float(v) for v in (h if h is not None else x[n.input.index(scales)].cpu().numpy()).reshape(-1)][2:]
            return F.interpolate(x[0], scale_factor=sc, mode="nearest" if mode == "nearest" else "bilinear")
        if op in ("ReduceMax", "ReduceMin", "ReduceSum", "ReduceMean"):
            axes = self.ints(x[1]) if len(x) > 1 and x[1] is not None else list(a.get("axes", range(x[0].dim())))
            keep = bool(a.get("keepdims", 1))
            f = {"ReduceMax": torch.amax, "ReduceMin": torch.amin, "ReduceSum": torch.sum, "ReduceMean": torch.mean}[op]
            return f(x[0], dim=axes, keepdim=keep)
        if op == "TopK":
            k = self.ints(x[1])[0]
            v, i = torch.topk(x[0], k, a.get("axis", -1), bool(a.get("largest", 1)), bool(a.get("sorted", 1)))
            return [v, i]
        if op == "GatherElements":
            return torch.gather(x[0], a.get("axis", 0), x[1].to(x[0].device))
        if op == "ArgMax":
            r = torch.argmax(x[0], a.get("axis", 0), bool(a.get("keepdims", 1)))
            return r
        if op == "Mod":
            return torch.remainder(x[0], x[1]) if not a.get("fmod", 0) else torch.fmod(x[0], x[1])
        if op == "Tile":
            return x[0].repeat(self.ints(x[1]))
        if op == "Where":
            return torch.where(x[0].to(self.device).bool(), x[1], x[2])
        raise NotImplementedError(f"{n.name}: operator {op}")


def measure(path, batch, size, seconds):
    dev = "cuda"
    x32 = torch.rand(1, 3, size, size)
    # The interpreter in fp32 against ONNX Runtime: the same network.
    net32 = Net(path, dev, torch.float32)
    with torch.no_grad():
        ours = net32(x32.to(dev))[0].float().cpu().numpy()
    err = float("nan")
    try:
        import onnxruntime as ort
        s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        ref = s.run(None, {s.get_inputs()[0].name: x32.numpy()})[0]
        err = float(np.linalg.norm(ours - ref) / max(np.linalg.norm(ref), 1e-30))
    except Exception as e:  # a static batch-1 file still runs; the check is reported missing
        print(f"  onnxruntime check skipped: {e}", file=sys.stderr)
    del net32
    net = Net(path, dev, torch.float16)
    x = torch.rand(batch, 3, size, size, device=dev, dtype=torch.float16).contiguous(memory_format=torch.channels_last)
    torch.backends.cudnn.benchmark = True
    with torch.no_grad():
        for _ in range(3):
            net(x)
        torch.cuda.synchronize()
        # eager
        t0, n = time.perf_counter(), 0
        while time.perf_counter() - t0 < seconds / 2:
            net(x)
            n += 1
        torch.cuda.synchronize()
        eager = n * batch / (time.perf_counter() - t0)
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):
                net(x)
        torch.cuda.current_stream().wait_stream(s)
        g = torch.cuda.CUDAGraph()
        graph = float("nan")
        try:
            with torch.cuda.graph(g):
                net(x)
            for _ in range(3):
                g.replay()
            torch.cuda.synchronize()
            t0, n = time.perf_counter(), 0
            while time.perf_counter() - t0 < seconds:
                g.replay()
                n += 1
            torch.cuda.synchronize()
            graph = n * batch / (time.perf_counter() - t0)
        except Exception as e:
            print(f"  CUDA graph capture failed: {e}", file=sys.stderr)
    return err, eager, graph


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=640)
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("models", nargs="+")
    o = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, batch {o.batch}, {o.size}x{o.size}, fp16 channels_last")
    print("| model | rel. L2 fp32 vs ONNX Runtime | PyTorch eager img/s | PyTorch CUDA graph img/s |")
    print("| --- | --- | --- | --- |")
    for p in o.models:
        try:
            err, eager, graph = measure(p, o.batch, o.size, o.seconds)
            print(f"| {p.split('/')[-1]} | {err:.2g} | {eager:,.0f} | {graph:,.0f} |", flush=True)
        except Exception as e:
            print(f"| {p.split('/')[-1]} | failed: {e} | | |", flush=True)
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
