package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"
	"go.yaml.in/yaml/v3"
)

// parseConfig reads a YAML config file: a mapping of flag names (without
// dashes) to values; lists are allowed for repeatable flags.
func parseConfig(b []byte) (map[string][]string, error) {
	var raw map[string]any
	if err := yaml.Unmarshal(b, &raw); err != nil {
		return nil, err
	}
	out := make(map[string][]string, len(raw))
	for k, v := range raw {
		switch x := v.(type) {
		case nil:
			return nil, fmt.Errorf("%s: no value", k)
		case []any:
			for _, e := range x {
				switch e.(type) {
				case map[string]any, []any, nil:
					return nil, fmt.Errorf("%s: list items must be plain values", k)
				}
				out[k] = append(out[k], fmt.Sprint(e))
			}
		case map[string]any:
			return nil, fmt.Errorf("%s: want a value or a list, not a mapping", k)
		default:
			out[k] = []string{fmt.Sprint(x)}
		}
	}
	return out, nil
}

// applyConfig sets every flag the config file names and the command line
// left unset, so flags override the file.
func applyConfig(c *cli.Context, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	settings, err := parseConfig(b)
	if err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	known := map[string]bool{}
	for _, f := range c.Command.Flags {
		for _, n := range f.Names() {
			known[n] = true
		}
	}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !known[k] || k == "config" {
			return fmt.Errorf("config %s: unknown setting %q", path, k)
		}
		if c.IsSet(k) {
			continue
		}
		for _, v := range settings[k] {
			if err := c.Set(k, v); err != nil {
				return fmt.Errorf("config %s: %s: %w", path, k, err)
			}
		}
	}
	return nil
}

// modelKeys are the settings a model description file may hold: those of
// the model, not of the run.
var modelKeys = []string{"head", "input", "classes", "imgsz", "strides", "conf", "iou", "max-det", "topk", "agnostic-nms"}

// modelFilePath is where a model's description file lies: beside it, with
// the same name and .yaml (or .yml) for .onnx. "" when there is none.
func modelFilePath(model string) string {
	base := strings.TrimSuffix(model, filepath.Ext(model))
	for _, ext := range []string{".yaml", ".yml"} {
		if _, err := os.Stat(base + ext); err == nil {
			return base + ext
		}
	}
	return ""
}

// modelFile is what a model's description file said beyond flags.
type modelFile struct {
	path      string   // the file, or "" when the model has none
	names     []string // class names listed in it (nil: a names file, set as --classes, or none)
	keypoints []string // a pose model's point names
	set       []string // the settings it gave, for reports
}

// applyModelFile sets, from the description file beside the model, the
// model settings that neither the command line nor --config set: run's
// flags by the same names. Its classes are a names file (relative to the
// description) or a list of names; keypoints, a pose model's point names.
func applyModelFile(c *cli.Context, model string) (*modelFile, error) {
	mf := &modelFile{path: modelFilePath(model)}
	if mf.path == "" {
		return mf, nil
	}
	path := mf.path
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("model description: %w", err)
	}
	var raw map[string]any
	if err := yaml.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("model description %s: %w", path, err)
	}
	list := func(key string) ([]string, bool) {
		l, ok := raw[key].([]any)
		if !ok {
			return nil, false
		}
		out := []string{}
		for _, v := range l {
			out = append(out, fmt.Sprint(v))
		}
		delete(raw, key)
		return out, true
	}
	if names, ok := list("classes"); ok {
		mf.names = names
	} else if f, ok := raw["classes"].(string); ok && !filepath.IsAbs(f) {
		raw["classes"] = filepath.Join(filepath.Dir(path), f)
	}
	if kp, ok := list("keypoints"); ok {
		mf.keypoints = kp
		mf.set = append(mf.set, "keypoints")
	} else if _, ok := raw["keypoints"]; ok {
		return nil, fmt.Errorf("model description %s: keypoints: want a list of the pose's point names", path)
	}
	if strides, ok := list("strides"); ok {
		raw["strides"] = strings.Join(strides, ",")
	}
	b, err = yaml.Marshal(raw)
	if err != nil {
		return nil, err
	}
	settings, err := parseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("model description %s: %w", path, err)
	}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !slices.Contains(modelKeys, k) {
			return nil, fmt.Errorf("model description %s: %q is not a setting of the model (want %s)", path, k, strings.Join(append(modelKeys, "keypoints"), ", "))
		}
		if c.IsSet(k) {
			continue
		}
		mf.set = append(mf.set, k)
		for _, v := range settings[k] {
			if err := c.Set(k, v); err != nil {
				return nil, fmt.Errorf("model description %s: %s: %w", path, k, err)
			}
		}
	}
	if c.IsSet("classes") {
		mf.names = nil // the flag, or the file's path, wins
	} else if mf.names != nil {
		mf.set = append(mf.set, "classes")
	}
	sort.Strings(mf.set)
	return mf, nil
}
