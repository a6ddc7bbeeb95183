package infer

import "sort"

// Detection is one detected object, in model-input pixels until mapped.
type Detection struct {
	Class          int
	Score          float32
	X1, Y1, X2, Y2 float32
	// Keypoints are a pose model's points of this detection, in the
	// model's order (nil for other models).
	Keypoints []Keypoint
}

// Keypoint is one point of a pose: where it is (model-input pixels until
// mapped, like boxes) and the model's confidence that it is visible (1
// when the model gives none).
type Keypoint struct {
	X, Y, Score float32
}

// PostOptions control Decode.
type PostOptions struct {
	Conf          float32 // minimum score
	IoU           float32 // NMS overlap above which the lower-scored box goes
	MaxDet        int     // detections kept per image (0: 300)
	ClassAgnostic bool    // NMS across classes
	// TopK bounds the candidates per image that enter NMS, best first
	// (0: DefaultTopK). The GPU engine selects them on the device.
	TopK int
}

// DefaultTopK is the number of candidates per image NMS considers unless
// PostOptions.TopK says otherwise.
const DefaultTopK = 1024

func (o PostOptions) topK() int {
	if o.TopK <= 0 {
		return DefaultTopK
	}
	return o.TopK
}

func (o PostOptions) maxDet() int {
	if o.MaxDet <= 0 {
		return 300
	}
	return o.MaxDet
}

// nms keeps the best-scored boxes among the topK best, dropping any box
// that overlaps a kept box of the same class (any class when agnostic) by
// more than iou. Equal scores keep their order in c.
func nms(c []Detection, iou float32, maxDet, topK int, agnostic bool) []Detection {
	sort.SliceStable(c, func(i, j int) bool { return c[i].Score > c[j].Score })
	if len(c) > topK {
		c = c[:topK]
	}
	keep := make([]Detection, 0, min(len(c), maxDet))
	dropped := make([]bool, len(c))
	for i := range c {
		if dropped[i] {
			continue
		}
		keep = append(keep, c[i])
		if len(keep) == maxDet {
			break
		}
		for j := i + 1; j < len(c); j++ {
			if !dropped[j] && (agnostic || c[j].Class == c[i].Class) && IoU(c[i], c[j]) > iou {
				dropped[j] = true
			}
		}
	}
	return keep
}

// IoU returns the intersection over union of two boxes.
func IoU(a, b Detection) float32 {
	iw := min(a.X2, b.X2) - max(a.X1, b.X1)
	ih := min(a.Y2, b.Y2) - max(a.Y1, b.Y1)
	if iw <= 0 || ih <= 0 {
		return 0
	}
	inter := iw * ih
	union := (a.X2-a.X1)*(a.Y2-a.Y1) + (b.X2-b.X1)*(b.Y2-b.Y1) - inter
	if union <= 0 {
		return 0
	}
	return inter / union
}
