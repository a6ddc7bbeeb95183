package infer

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand"
	"reflect"
	"testing"
)

// maskHarness is the C++ main of TestWeighMasksKernelOnCPU: it reads the
// geometry, the prototypes and the rows, runs weigh_masks block by block
// on one thread, and writes the logits used, the windows and the logits.
const maskHarness = `
int main(int argc, char** argv) {
	FILE* f = fopen(argv[1], "rb");
	int h[8];
	if (!f || fread(h, 4, 8, f) != 8) return 1;
	int n = h[0], m = h[1], mh = h[2], mw = h[3], row = h[4], maxDet = h[5];
	float cw, ch; memcpy(&cw, &h[6], 4); memcpy(&ch, &h[7], 4);
	size_t img = (size_t)m * mh * mw;
	float* proto = new float[n * img]; float* dets = new float[(size_t)n * maxDet * row]; int* ndet = new int[n];
	if (fread(proto, 4, n * img, f) != n * img || fread(dets, 4, (size_t)n * maxDet * row, f) != (size_t)n * maxDet * row || fread(ndet, 4, n, f) != (size_t)n) return 1;
	fclose(f);
	unsigned capacity = n * img, used = 0;
	float* logits = new float[capacity]; int* win = new int[(size_t)n * maxDet * 5];
	for (int b = 0; b < n; b++) for (int j = 0; j < maxDet; j++) {
		blockIdx.x = j; blockIdx.y = b;
		weigh_masks(proto, (long long)img, m, mh, mw, cw, ch, dets, row, maxDet, ndet, logits, &used, capacity, win);
	}
	FILE* o = fopen(argv[2], "wb");
	fwrite(&used, 4, 1, o); fwrite(win, 4, (size_t)n * maxDet * 5, o); fwrite(logits, 4, used, o);
	return fclose(o) != 0;
}
`

// TestWeighMasksKernelOnCPU compiles weigh_masks as C++ (as
// TestRotatedNMSKernelOnCPU does) and checks its windows and logits
// against Layout.weighMask bit for bit, on boxes inside the image, across
// its edges, outside it, inverted, huge and NaN.
func TestWeighMasksKernelOnCPU(t *testing.T) {
	run := kernelOnCPU(t, maskSource, maskHarness)
	l := Layout{Masks: 32, MaskH: 40, MaskW: 48, InputH: 160, InputW: 192}
	n, maxDet, row := 3, 40, detRow+32
	rng := rand.New(rand.NewSource(5))
	proto := make([]float32, n*l.protoValues())
	for i := range proto {
		proto[i] = rng.Float32()*4 - 2
	}
	rows, ndet := make([]float32, n*maxDet*row), []int32{40, 0, 17}
	for b := range n {
		for j := range int(ndet[b]) {
			r := rows[(b*maxDet+j)*row:][:row]
			x, y := rng.Float32()*240-24, rng.Float32()*200-20
			r[0], r[1], r[2], r[3] = x, y, x+rng.Float32()*120, y+rng.Float32()*100
			switch j {
			case 1:
				r[0], r[2] = r[2], r[0] // inverted
			case 2:
				r[2] = 1e30
			case 3:
				r[1] = float32(math.NaN())
			case 4:
				r[0], r[1], r[2], r[3] = -50, -40, -10, -5
			case 5:
				r[0], r[1], r[2], r[3] = 0, 0, 192, 160
			}
			for k := range 32 {
				r[detRow+k] = rng.Float32()*2 - 1
			}
		}
	}
	var buf bytes.Buffer
	cw, ch := float32(l.InputW)/float32(l.MaskW), float32(l.InputH)/float32(l.MaskH)
	for _, v := range []any{[]int32{int32(n), int32(l.Masks), int32(l.MaskH), int32(l.MaskW), int32(row), int32(maxDet)}, cw, ch, proto, rows, ndet} {
		binary.Write(&buf, binary.LittleEndian, v)
	}
	rd := bytes.NewReader(run(buf.Bytes()))
	var used uint32
	win := make([]int32, n*maxDet*5)
	if err := binary.Read(rd, binary.LittleEndian, &used); err != nil {
		t.Fatal(err)
	}
	if err := binary.Read(rd, binary.LittleEndian, win); err != nil {
		t.Fatal(err)
	}
	logits := make([]float32, used)
	if err := binary.Read(rd, binary.LittleEndian, logits); err != nil {
		t.Fatal(err)
	}
	per, masks := l.protoValues(), 0
	for i := range n {
		for j := range int(ndet[i]) {
			r := rows[(i*maxDet+j)*row:][:row]
			d := Detection{X1: r[0], Y1: r[1], X2: r[2], Y2: r[3]}
			want := l.weighMask(proto[i*per:(i+1)*per], r[detRow:], &d)
			w := win[(i*maxDet+j)*5:][:5]
			got := &Mask{X0: int(w[0]), Y0: int(w[1]), W: int(w[2]), H: int(w[3]), GridW: l.MaskW, GridH: l.MaskH, CellW: cw, CellH: ch,
				Logits: logits[w[4] : int(w[4])+int(w[2]*w[3])]}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("image %d detection %d (%v): kernel window %d,%d %dx%d, host %d,%d %dx%d (or their logits differ)",
					i, j, r[:4], got.X0, got.Y0, got.W, got.H, want.X0, want.Y0, want.W, want.H)
			}
			masks++
		}
	}
	t.Logf("%d masks, %d logits, equal", masks, used)
}
