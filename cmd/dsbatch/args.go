package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// intersperse lets flags follow positional arguments, as in
// `dsbatch run /videos --model m.onnx --out results`: urfave/cli stops at
// the first argument, so the command's flags (with their values) are moved
// before its arguments. A "--" ends the flags as usual.
func intersperse(app *cli.App, args []string) []string {
	// Find the command: the first argument naming one.
	ci := -1
	var cmd *cli.Command
	for i := 1; i < len(args) && ci < 0; i++ {
		for _, c := range app.Commands {
			if c.HasName(args[i]) {
				ci, cmd = i, c
				break
			}
		}
	}
	if cmd == nil {
		return args
	}
	for len(cmd.Subcommands) > 0 && ci+1 < len(args) {
		var sub *cli.Command
		for _, s := range cmd.Subcommands {
			if s.HasName(args[ci+1]) {
				sub = s
			}
		}
		if sub == nil {
			break
		}
		ci, cmd = ci+1, sub
	}
	takesValue := map[string]bool{}
	for _, f := range cmd.Flags {
		_, isBool := f.(*cli.BoolFlag)
		for _, n := range f.Names() {
			takesValue[n] = !isBool
		}
	}
	var flags, pos []string
	rest := args[ci+1:]
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		if a == "--" {
			pos = append(pos, rest[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		if takesValue[name] && i+1 < len(rest) {
			flags = append(flags, rest[i+1])
			i++
		}
	}
	out := append(append([]string{}, args[:ci+1]...), flags...)
	if len(pos) > 0 {
		out = append(append(out, "--"), pos...)
	}
	return out
}
