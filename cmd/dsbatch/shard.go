package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/dsbatch/dsbatch/job"
)

// shardFlags select this task's share of a multi-node run.
func shardFlags(usage string) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "shard", Usage: usage + " (default: from a Slurm job array or a Kubernetes Indexed Job)"},
		&cli.IntFlag{Name: "shards", EnvVars: []string{"DSBATCH_SHARDS"}, Usage: "shard count under a Kubernetes Indexed Job (its completions)"},
	}
}

// resolveShard returns the shard --shard names or, without it, the one the
// scheduler's environment implies, and says so on standard error.
func resolveShard(c *cli.Context) (job.Shard, error) {
	if c.IsSet("shard") {
		return job.ParseShard(c.String("shard"))
	}
	shard, source, err := job.SchedulerShard(os.Getenv, c.Int("shards"))
	if err != nil {
		return shard, fmt.Errorf("%s: %w", source, err)
	}
	if source != job.ShardNone {
		fmt.Fprintf(c.App.ErrWriter, "dsbatch: shard %s from the %s\n", shard, source)
	}
	return shard, nil
}
