package main

import (
	"fmt"
	"os"
	"sort"

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
