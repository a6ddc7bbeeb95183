"""What users run today, for bench/e2e.sh: OpenCV (FFmpeg) decoding on the
CPU in threads, letterbox on the CPU, the torch_baseline.py network in fp16
channels_last on the GPU at batch 64, score threshold and torchvision NMS.

usage: python3 bench/torch_pipeline.py TORCH_BASELINE_PY FOLDER [MAX_FILES]
Prints "fps=<frames per second>" last.
"""
import glob, importlib.util, os, queue, sys, threading, time

import cv2, numpy as np, torch, torchvision

spec = importlib.util.spec_from_file_location("tb", sys.argv[1])
tb = importlib.util.module_from_spec(spec); spec.loader.exec_module(tb)
files = sorted(glob.glob(os.path.join(sys.argv[2], "*.mp4")))
if len(sys.argv) > 3: files = files[:int(sys.argv[3])]
S, B = 640, 64
frames = queue.Queue(maxsize=4 * B)

def letterbox(img):
    h, w = img.shape[:2]; r = min(S / h, S / w); nh, nw = round(h * r), round(w * r)
    img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    top, left = (S - nh) // 2, (S - nw) // 2
    return cv2.copyMakeBorder(img, top, S - nh - top, left, S - nw - left, cv2.BORDER_CONSTANT, value=(114, 114, 114))

def decoder(paths):
    for p in paths:
        cap = cv2.VideoCapture(p)
        while True:
            ok, img = cap.read()
            if not ok: break
            frames.put(letterbox(img)[:, :, ::-1])
        cap.release()

threads = max(1, os.cpu_count())
ts = [threading.Thread(target=decoder, args=(files[i::threads],)) for i in range(threads)]
torch.manual_seed(0)
m = tb.YOLOv8n().eval().cuda().half().to(memory_format=torch.channels_last)
torch.backends.cudnn.benchmark = True
t0 = time.time()
for t in ts: t.start()
done, dets = 0, 0
alive = lambda: any(t.is_alive() for t in ts)
with torch.inference_mode():
    while True:
        batch = []
        while len(batch) < B:
            try: batch.append(frames.get(timeout=0.05))
            except queue.Empty:
                if not alive() and frames.empty(): break
        if not batch: break
        x = torch.from_numpy(np.ascontiguousarray(np.stack(batch))).cuda().permute(0, 3, 1, 2).half().div(255)
        y = m(x.contiguous(memory_format=torch.channels_last)).float()
        for o in y:
            box, cls = o[:4].T, o[4:].T
            score, c = cls.max(1); keep = score > 0.25
            b = box[keep]; b = torch.cat((b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2), 1)
            k = torchvision.ops.batched_nms(b, score[keep], c[keep], 0.7)[:300]
            dets += int(k.numel())
        done += len(batch)
torch.cuda.synchronize()
el = time.time() - t0
print(f"torch pipeline: {len(files)} files, {done} frames, {dets} detections in {el:.1f}s, {threads} decode threads")
print(f"fps={done / el:.1f}")
