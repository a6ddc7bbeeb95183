# Runs on the GPU machine (PyTorch and transformers there): exports
# DETR-family detectors with random weights as users export them from
# Hugging Face, each into DIR/<name>/model.onnx beside its
# preprocessor_config.json. Usage: python3 scripts/export-detr.py DIR
import os, sys, traceback
import torch

out = sys.argv[1]

def export(name, model, processor):
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    model.eval()

    class Wrap(torch.nn.Module):
        def __init__(s, m):
            super().__init__(); s.m = m
        def forward(s, images):
            o = s.m(pixel_values=images)
            return o.logits, o.pred_boxes

    x = torch.rand(1, 3, 640, 640)
    kw = dict(input_names=["images"], output_names=["logits", "pred_boxes"], opset_version=17,
              dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}, "pred_boxes": {0: "batch"}})
    try:
        torch.onnx.export(Wrap(model), x, os.path.join(d, "model.onnx"), dynamo=False, **kw)
    except TypeError:
        torch.onnx.export(Wrap(model), x, os.path.join(d, "model.onnx"), **kw)
    processor.save_pretrained(d)
    print(name, "exported:", os.path.getsize(os.path.join(d, "model.onnx")) >> 20, "MiB")

import transformers
print("transformers", transformers.__version__, "torch", torch.__version__)
try:
    from transformers import RTDetrConfig, RTDetrForObjectDetection, RTDetrImageProcessor
    export("rtdetr", RTDetrForObjectDetection(RTDetrConfig()), RTDetrImageProcessor())
except Exception:
    traceback.print_exc()
try:
    from transformers import DFineConfig, DFineForObjectDetection, RTDetrImageProcessor
    export("dfine", DFineForObjectDetection(DFineConfig()), RTDetrImageProcessor())
except Exception:
    traceback.print_exc()
