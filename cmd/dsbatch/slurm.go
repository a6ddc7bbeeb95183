package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/dsbatch/dsbatch/internal/atomicfile"
)

func slurmCommand() *cli.Command {
	return &cli.Command{
		Name:      "slurm",
		Usage:     "write an sbatch script that runs `dsbatch run` as a Slurm job array",
		ArgsUsage: "-- RUN-ARGS...",
		Description: "RUN-ARGS are the arguments of `dsbatch run` (--model, --out, paths, ...). Each array task\n" +
			"runs its shard (from SLURM_ARRAY_TASK_ID) into --out/shards/<i>-of-<n> on the GPUs Slurm\n" +
			"gives it; the script's header says how to submit it and merge the shards after.\n" +
			"Example: dsbatch slurm --tasks 8 --gpus-per-task 2 --time 6:00:00 -o job.sbatch -- \\\n" +
			"           --model yolo.onnx --out /shared/out /shared/archive",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "tasks", Aliases: []string{"n"}, Usage: "array tasks (shards) (required)"},
			&cli.IntFlag{Name: "gpus-per-task", Value: 1, Usage: "GPUs each task asks for (0: CPU only)"},
			&cli.IntFlag{Name: "cpus-per-task", Value: 8, Usage: "CPU cores each task asks for"},
			&cli.StringFlag{Name: "mem", Value: "32G", Usage: "memory each task asks for"},
			&cli.StringFlag{Name: "time", Value: "12:00:00", Usage: "time limit of each task"},
			&cli.StringFlag{Name: "partition", Aliases: []string{"p"}, Usage: "partition (default: the cluster's)"},
			&cli.StringFlag{Name: "account", Usage: "account to charge"},
			&cli.StringFlag{Name: "job-name", Value: "dsbatch", Usage: "job name"},
			&cli.IntFlag{Name: "max-running", Usage: "at most this many tasks at once (0: no limit)"},
			&cli.StringFlag{Name: "logs", Value: "logs", Usage: "folder for the tasks' logs, relative to --chdir (made now: Slurm needs it at submission)"},
			&cli.StringFlag{Name: "chdir", Usage: "working folder of the tasks (default: this one), so relative paths mean the same"},
			&cli.StringFlag{Name: "dsbatch", Usage: "dsbatch executable on the nodes (default: this one)"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "-", Usage: "where to write the script (- for standard output)"},
		},
		Action: runSlurm,
	}
}

// slurmJob is what the sbatch script is made of.
type slurmJob struct {
	Tasks, GPUs, CPUs, MaxRunning            int
	Mem, Time, Partition, Account, Name, Log string
	Chdir, Exe, Out                          string
	RunArgs                                  []string
}

func runSlurm(c *cli.Context) error {
	j := slurmJob{
		Tasks: c.Int("tasks"), GPUs: c.Int("gpus-per-task"), CPUs: c.Int("cpus-per-task"), MaxRunning: c.Int("max-running"),
		Mem: c.String("mem"), Time: c.String("time"), Partition: c.String("partition"), Account: c.String("account"),
		Name: c.String("job-name"), Log: c.String("logs"), Chdir: c.String("chdir"), Exe: c.String("dsbatch"),
		RunArgs: c.Args().Slice(),
	}
	if j.Tasks < 1 {
		return errors.New("slurm: --tasks N is required (the number of array tasks, one shard each)")
	}
	if j.GPUs < 0 || j.CPUs < 1 {
		return errors.New("slurm: --gpus-per-task must not be negative and --cpus-per-task at least 1")
	}
	if !regexp.MustCompile(`^(\d+-)?\d+(:\d+){0,2}$`).MatchString(j.Time) {
		return fmt.Errorf("slurm: --time %q: want minutes, [D-]HH:MM:SS or HH:MM", j.Time)
	}
	var err error
	if j.Out, err = runOut(j.RunArgs); err != nil {
		return err
	}
	if j.Chdir == "" {
		if j.Chdir, err = os.Getwd(); err != nil {
			return err
		}
	}
	if j.Exe == "" {
		if j.Exe, err = os.Executable(); err != nil {
			return err
		}
	}
	// Slurm opens the log before the script runs: the folder must exist.
	logs := j.Log
	if !filepath.IsAbs(logs) {
		logs = filepath.Join(j.Chdir, logs)
	}
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return fmt.Errorf("slurm: --logs: %w", err)
	}
	if path := c.String("output"); path != "-" {
		return atomicfile.Write(path, func(w io.Writer) error { return j.write(w) })
	}
	return j.write(c.App.Writer)
}

// runOut finds --out in run's arguments and checks the ones a task needs.
func runOut(args []string) (string, error) {
	var out string
	model := false
	for i, a := range args {
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") {
			continue
		}
		if !hasVal && i+1 < len(args) {
			val = args[i+1]
		}
		switch name {
		case "out", "o":
			out = val
		case "model", "m":
			model = true
		case "shard":
			return "", errors.New("slurm: leave --shard out of the run's arguments: each array task takes its own")
		case "config":
			model = true // the config file may name the model and output
		}
	}
	if out == "" || !model {
		return "", errors.New("slurm: give the run's arguments after --, with --model and --out (like: -- --model yolo.onnx --out /shared/out /shared/archive)")
	}
	return out, nil
}

func (j slurmJob) write(w io.Writer) error {
	run := append([]string{shellQuote(j.Exe), "run"}, quoteAll(j.RunArgs)...)
	merge := fmt.Sprintf("%s merge %s", shellQuote(j.Exe), shellQuote(j.Out))
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	p("#!/bin/bash")
	p("# dsbatch as a Slurm job array: task i of %d runs shard i/%d into %s/shards/<i>-of-%d.", j.Tasks, j.Tasks, j.Out, j.Tasks)
	p("#")
	p("# Submit, then merge the shards once every task has ended:")
	p("#   jid=$(sbatch --parsable THIS_SCRIPT)")
	p("#   sbatch --dependency=afterany:$jid --chdir=%s --output=%s/merge-%%j.log --wrap=%s", shellQuote(j.Chdir), shellQuote(j.Log), shellQuote(merge))
	p("# A task that failed or ran out of time resumes where it stopped: sbatch --array=<i> THIS_SCRIPT,")
	p("# then merge again. Merging is idempotent; it reports missing or unfinished shards.")
	p("#SBATCH --job-name=%s", j.Name)
	if j.MaxRunning > 0 {
		p("#SBATCH --array=0-%d%%%d", j.Tasks-1, j.MaxRunning)
	} else {
		p("#SBATCH --array=0-%d", j.Tasks-1)
	}
	p("#SBATCH --ntasks=1")
	p("#SBATCH --cpus-per-task=%d", j.CPUs)
	if j.GPUs > 0 {
		p("#SBATCH --gres=gpu:%d", j.GPUs)
	}
	if j.Mem != "" {
		p("#SBATCH --mem=%s", j.Mem)
	}
	p("#SBATCH --time=%s", j.Time)
	if j.Partition != "" {
		p("#SBATCH --partition=%s", j.Partition)
	}
	if j.Account != "" {
		p("#SBATCH --account=%s", j.Account)
	}
	p("#SBATCH --chdir=%s", j.Chdir)
	p("#SBATCH --output=%s", filepath.Join(j.Log, "%x-%A_%a.log"))
	p("#SBATCH --open-mode=append")
	p("# SIGTERM two minutes before the limit: the run stops cleanly and a resubmission resumes.")
	p("#SBATCH --signal=B:TERM@120")
	p("")
	p("exec %s", strings.Join(run, " "))
	_, err := io.WriteString(w, b.String())
	return err
}

func quoteAll(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = shellQuote(a)
	}
	return out
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && regexp.MustCompile(`^[A-Za-z0-9_./:=,+@%-]+$`).MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
