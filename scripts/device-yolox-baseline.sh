#!/usr/bin/env bash
# Runs on the GPU machine with .device/c carried (dsbatch.xz, models/yolox_nano.onnx): the PyTorch
# baseline of YOLOX-Nano (bench/torch_yolox.py) and the GPU engine on the same model, in one call.
set -u
xz -dkf .device/c/dsbatch.xz
export DSBATCH_ORT_LIB=$(ls /opt/torch/.venv/lib/python3.12/site-packages/onnxruntime/capi/libonnxruntime.so.1.* | head -1)
python3 bench/torch_yolox.py 64 128 2>&1 | tail -4
.device/c/dsbatch bench infer --model .device/c/models/yolox_nano.onnx --imgsz 416 --batch 64 --duration 4s 2>&1 | grep -v "^engine ready" 
.device/c/dsbatch bench infer --model .device/c/models/yolox_nano.onnx --imgsz 416 --batch 128 --duration 4s 2>&1 | grep forward
python3 bench/torch_yolox.py 64 2>&1 | tail -1
