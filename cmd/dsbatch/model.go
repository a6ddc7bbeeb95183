package main

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/dsbatch/dsbatch/infer"
)

// modelFlags say how a model is read: run's and check's.
func modelFlags() []cli.Flag {
	return []cli.Flag{
		&cli.Float64Flag{Name: "conf", Value: 0.25, Usage: "minimum detection score"},
		&cli.Float64Flag{Name: "iou", Value: 0.45, Usage: "NMS overlap threshold"},
		&cli.IntFlag{Name: "max-det", Value: 300, Usage: "detections kept per frame"},
		&cli.IntFlag{Name: "topk", Value: infer.DefaultTopK, Usage: "best-scored candidates per frame that enter NMS (the GPU engine selects them on the GPU when at most 1024)"},
		&cli.BoolFlag{Name: "agnostic-nms", Usage: "NMS across classes"},
		&cli.StringFlag{Name: "classes", Usage: "class names file, one per line (default: the model's metadata)"},
		&cli.StringFlag{Name: "head", Value: "auto", Usage: "output layout: auto, v5, v8 (v9, v11), e2e, one2one (v10, yolo26), nms (nms=True exports), yolox or detr (rt-detr, rf-detr, d-fine)"},
		&cli.StringFlag{Name: "input", Usage: "input convention, comma-separated: rgb|bgr, scale=1/255, mean=R:G:B, std=R:G:B, fit=centre|top-left|stretch, pad=114, " +
			"or a name (ultralytics, yolox, imagenet) then changes (default: the model's, else its layout's: yolox for YOLOX heads, ultralytics otherwise)"},
		&cli.IntFlag{Name: "imgsz", Usage: "input size for models with a dynamic input"},
		&cli.StringFlag{Name: "strides", Usage: "grid strides of YOLOX-style heads, comma-separated (default 8,16,32)"},
		&cli.StringFlag{Name: "ort-lib", Usage: "ONNX Runtime library (default: $DSBATCH_ORT_LIB, then beside the executable)"},
	}
}

// readModel is what is known of a model before it runs: the file, its
// description file's settings, class names, input size and ONNX Runtime.
type readModel struct {
	*infer.Model
	names []string
	h, w  int
	// lib is ONNX Runtime's library, or libErr why none was found: a run
	// whose workers are all GPUs does without it.
	lib    string
	libErr error
	desc   *modelFile // what its description file said
}

// openModel reads the model at path with its description file (whose
// settings fill the flags left unset) and checks what can be checked
// without running it.
func openModel(c *cli.Context, path string) (*readModel, error) {
	m := &readModel{}
	var err error
	if m.desc, err = applyModelFile(c, path); err != nil {
		return nil, err
	}
	if m.Model, err = infer.ReadModel(path); err != nil {
		return nil, err
	}
	m.names = m.Model.Names
	if m.desc.names != nil {
		m.names = m.desc.names
	}
	if f := c.String("classes"); f != "" {
		if m.names, err = readNames(f); err != nil {
			return nil, err
		}
	}
	if m.h, m.w, err = m.InputSize(c.Int("imgsz")); err != nil {
		return nil, err
	}
	m.lib, m.libErr = infer.FindORT(c.String("ort-lib"))
	return m, nil
}

// probedModel is a model whose layout and input convention are known.
type probedModel struct {
	*readModel
	input     infer.Preprocess
	inputFrom string // where the convention came from, for reports
	layout    infer.Layout
}

// probe works out the model's input convention and output layout, running
// one image on e, and says on stderr what it chose and why. Class names
// are made up for a model that names none.
func (m *readModel) probe(c *cli.Context, e infer.Engine) (*probedModel, error) {
	p := &probedModel{readModel: m}
	head, err := infer.ParseHead(c.String("head"))
	if err != nil {
		return nil, err
	}
	input, from, set, err := modelInput(c, m.Model)
	if err != nil {
		return nil, err
	}
	if slices.Contains(m.desc.set, "input") {
		from = m.desc.path
	}
	strides, err := parseStrides(c.String("strides"))
	if err != nil {
		return nil, err
	}
	if head == 0 {
		head = m.Head
	}
	name := filepath.Base(m.Path)
	switch {
	case m.Cut != "":
		fmt.Fprintf(c.App.ErrWriter, "dsbatch: model %s: its exported post-processing is cut off at %s, and done by dsbatch on every engine\n", name, m.Cut)
	case m.Joined != nil:
		fmt.Fprintf(c.App.ErrWriter, "dsbatch: model %s: outputs %s joined into one\n", name, strings.Join(m.Joined, " and "))
	}
	if m.Masks.Name != "" {
		fmt.Fprintf(c.App.ErrWriter, "dsbatch: model %s: mask prototypes %s joined after the detections\n", name, m.Masks.Name)
	}
	p.layout, err = infer.ProbeLayout(c.Context, e, infer.ProbeOptions{H: m.h, W: m.w, Names: len(m.names), Head: head, Input: input, Strides: strides, KeypointShape: m.KeypointShape, Task: m.Metadata["task"], Masks: m.Masks})
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", m.Path, err)
	}
	if !set && p.layout.Head == infer.HeadYOLOX {
		input, from = infer.YOLOX, "YOLOX's convention, for its layout"
	}
	p.input, p.inputFrom = input, from
	fmt.Fprintf(c.App.ErrWriter, "dsbatch: model %s: %s head, output [B, %d, %d]; input %dx%d %s (%s)\n",
		name, p.layout, p.layout.D1, p.layout.D2, m.w, m.h, input, from)
	if len(m.desc.set) > 0 {
		fmt.Fprintf(c.App.ErrWriter, "dsbatch: from %s: %s\n", m.desc.path, strings.Join(m.desc.set, ", "))
	}
	if kp := m.desc.keypoints; kp != nil && len(kp) != p.layout.Keypoints {
		return nil, fmt.Errorf("model description %s: %d keypoint names for a model of %d points", m.desc.path, len(kp), p.layout.Keypoints)
	}
	if len(m.names) == 0 {
		for i := 0; i < p.layout.Classes; i++ {
			m.names = append(m.names, fmt.Sprintf("class_%d", i))
		}
	}
	return p, nil
}

// keypointNames are a pose model's point names: its description file's,
// else COCO's for 17 points, else none.
func (p *probedModel) keypointNames() []string {
	if p.desc.keypoints != nil {
		return p.desc.keypoints
	}
	return p.layout.KeypointNames()
}
