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

// applyModelFile sets, from the description file beside the model, the
// model settings that neither the command line nor --config set: run's
// flags by the same names. Its classes are a names file (relative to the
// description) or a list of names, returned. path is "" when the model has
// no description; set lists the settings it gave.
func applyModelFile(c *cli.Context, model string) (path string, names []string, set []string, err error) {
	path = modelFilePath(model)
	if path == "" {
		return "", nil, nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", nil, nil, fmt.Errorf("model description: %w", err)
	}
	var raw map[string]any
	if err := yaml.Unmarshal(b, &raw); err != nil {
		return "", nil, nil, fmt.Errorf("model description %s: %w", path, err)
	}
	if list, ok := raw["classes"].([]any); ok {
		for _, v := range list {
			names = append(names, fmt.Sprint(v))
		}
		delete(raw, "classes")
	} else if f, ok := raw["classes"].(string); ok && !filepath.IsAbs(f) {
		raw["classes"] = filepath.Join(filepath.Dir(path), f)
	}
	if list, ok := raw["strides"].([]any); ok {
		var s []string
		for _, v := range list {
			s = append(s, fmt.Sprint(v))
		}
		raw["strides"] = strings.Join(s, ",")
	}
	b, err = yaml.Marshal(raw)
	if err != nil {
		return "", nil, nil, err
	}
	settings, err := parseConfig(b)
	if err != nil {
		return "", nil, nil, fmt.Errorf("model description %s: %w", path, err)
	}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !slices.Contains(modelKeys, k) {
			return "", nil, nil, fmt.Errorf("model description %s: %q is not a setting of the model (want %s)", path, k, strings.Join(modelKeys, ", "))
		}
		if c.IsSet(k) || (k == "classes" && names != nil) {
			continue
		}
		set = append(set, k)
		for _, v := range settings[k] {
			if err := c.Set(k, v); err != nil {
				return "", nil, nil, fmt.Errorf("model description %s: %s: %w", path, k, err)
			}
		}
	}
	if c.IsSet("classes") {
		names = nil // the flag, or the file's path, wins
	} else if names != nil {
		set = append(set, "classes")
	}
	sort.Strings(set)
	return path, names, set, nil
}
