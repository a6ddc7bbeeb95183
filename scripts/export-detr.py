# Runs on the GPU machine (PyTorch and transformers there): exports
# DETR-family detectors with random weights as users export them from
# Hugging Face, each into DIR/<name>/model.onnx beside its
# preprocessor_config.json. Usage: python3 scripts/export-detr.py DIR
# [--small] [--hf-init] [--no-calibrate] [--only rtdetr|dfine]. --small
# exports the same architectures narrowed (RT-DETR on a ResNet-18-style
# backbone, D-FINE-N's sizes): the same operators in a file small enough
# to bring back and examine on a machine without a GPU.
# Weights are drawn at the scale trained ones have (see reinit) and batch
# statistics set as training leaves them (calibrate); --hf-init keeps
# transformers' own weights, whose activations underflow fp16, and
# --no-calibrate identity statistics, under which D-FINE's overflow it.
import os, sys, traceback
import torch

out = sys.argv[1]
small = "--small" in sys.argv[2:]
only = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else None

def reinit(model):
    # transformers initialises these models with weights of std 0.01, under
    # which the activations shrink to 1e-9 and less by the encoder: below
    # fp16's range, so any fp16 engine (PyTorch's too) outputs zeros there.
    # Trained weights keep activations near 1; so do these: He-normal
    # convolutions, Xavier linear layers, unit batch statistics. The
    # deformable attention's offsets and weights keep transformers' own
    # initialisation (a grid of points, uniform weights).
    torch.manual_seed(0)
    for name, m in model.named_modules():
        if name.endswith("sampling_offsets") or name.endswith("attention_weights"):
            continue
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                torch.nn.init.zeros_(m.bias)
        elif isinstance(m, torch.nn.Linear):
            torch.nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                torch.nn.init.zeros_(m.bias)
        elif isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            torch.nn.init.ones_(m.weight)
            torch.nn.init.zeros_(m.bias)


def calibrate(model):
    # Sets every batch normalisation's statistics to those of its input on
    # random images, layer by layer in one forward pass, as training leaves
    # them: each normalised activation then has unit scale, and deep
    # residual stacks stay inside fp16's range (with identity statistics,
    # D-FINE's encoder overflows fp16 on random weights, and any fp16
    # engine outputs NaN there).
    def pre(m, args):
        x = args[0]
        dims = [0, 2, 3] if x.dim() == 4 else [0]
        m.running_mean.copy_(x.mean(dims))
        m.running_var.copy_(x.var(dims))
    hooks = [m.register_forward_pre_hook(pre) for m in model.modules()
             if isinstance(getattr(m, "running_mean", None), torch.Tensor) and isinstance(getattr(m, "running_var", None), torch.Tensor)]
    model.eval()
    with torch.no_grad():
        torch.manual_seed(1)
        model(pixel_values=torch.rand(4, 3, 640, 640))
    for h in hooks:
        h.remove()
    print("calibrated", len(hooks), "batch normalisations")


def export(name, model, processor):
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    if "--hf-init" not in sys.argv:
        reinit(model)
        if "--no-calibrate" not in sys.argv:
            calibrate(model)
    model.eval()
    print(name, "parameters:", sum(p.numel() for p in model.parameters()))

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

def first(*makers):
    for make in makers:
        try:
            return make()
        except Exception:
            traceback.print_exc()
    return None

import transformers
print("transformers", transformers.__version__, "torch", torch.__version__)
try:
    if only not in (None, "rtdetr"):
        raise StopIteration
    from transformers import RTDetrConfig, RTDetrForObjectDetection, RTDetrImageProcessor
    cfg = RTDetrConfig()
    if small:
        from transformers import RTDetrResNetConfig
        cfg = first(lambda: RTDetrConfig(
            backbone_config=RTDetrResNetConfig(embedding_size=32, hidden_sizes=[32, 64, 128, 256], depths=[1, 1, 1, 1],
                                               layer_type="basic", out_features=["stage2", "stage3", "stage4"]),
            encoder_in_channels=[64, 128, 256], encoder_hidden_dim=128, d_model=128, decoder_in_channels=[128, 128, 128],
            encoder_ffn_dim=256, decoder_ffn_dim=256, decoder_layers=2))
    export("rtdetr-small" if small else "rtdetr", RTDetrForObjectDetection(cfg), RTDetrImageProcessor())
except StopIteration:
    pass
except Exception:
    traceback.print_exc()
try:
    if only not in (None, "dfine"):
        raise StopIteration
    from transformers import DFineConfig, DFineForObjectDetection, RTDetrImageProcessor
    model = DFineForObjectDetection(DFineConfig())
    if small:
        from transformers import HGNetV2Config
        b0 = dict(stem_channels=[3, 16, 16], stage_in_channels=[16, 64, 256, 512], stage_mid_channels=[16, 32, 64, 128],
                  stage_out_channels=[64, 256, 512, 1024], stage_num_blocks=[1, 1, 2, 1], stage_numb_of_layers=[3, 3, 3, 3],
                  stage_downsample=[False, True, True, True], stage_light_block=[False, False, True, True],
                  stage_kernel_size=[3, 3, 5, 5], use_lab=True, embedding_size=16, hidden_sizes=[64, 256, 512, 1024])
        common = dict(encoder_hidden_dim=128, d_model=128, decoder_layers=3, encoder_ffn_dim=512, decoder_ffn_dim=512,
                      depth_mult=0.5, hidden_expansion=0.34)
        candidates = [  # D-FINE-N's sizes on three levels, then on two
            dict(backbone_config=HGNetV2Config(out_features=["stage2", "stage3", "stage4"], **b0), encoder_in_channels=[256, 512, 1024],
                 feat_strides=[8, 16, 32], num_feature_levels=3, decoder_in_channels=[128, 128, 128], encode_proj_layers=[2], **common),
            dict(backbone_config=HGNetV2Config(out_features=["stage3", "stage4"], out_indices=[3, 4], **b0), encoder_in_channels=[512, 1024],
                 feat_strides=[16, 32], num_feature_levels=2, decoder_in_channels=[128, 128], decoder_n_points=[6, 6],
                 encode_proj_layers=[1], **common),
        ]
        model = None
        for kw in candidates:
            try:
                m = DFineForObjectDetection(DFineConfig(**kw)).eval()
                with torch.no_grad():
                    m(pixel_values=torch.rand(1, 3, 640, 640))
                model = m
                break
            except Exception as e:
                print("D-FINE small candidate failed:", str(e).splitlines()[0][:200])
    if model is not None:
        export("dfine-small" if small else "dfine", model, RTDetrImageProcessor())
except StopIteration:
    pass
except Exception:
    traceback.print_exc()
