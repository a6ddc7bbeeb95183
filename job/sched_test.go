package job

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestSchedulerShard(t *testing.T) {
	tests := []struct {
		name   string
		env    map[string]string
		count  int
		want   Shard
		source ShardSource
		err    string
	}{
		{"nothing", map[string]string{}, 0, Shard{}, ShardNone, ""},
		{"slurm count", map[string]string{"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_MIN": "0"}, 0, Shard{2, 3}, ShardFromSlurm, ""},
		{"slurm from 1", map[string]string{"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "4"}, 0, Shard{0, 4}, ShardFromSlurm, ""},
		{"slurm min/max only", map[string]string{"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_MIN": "5", "SLURM_ARRAY_TASK_MAX": "9"}, 0, Shard{2, 5}, ShardFromSlurm, ""},
		{"slurm step", map[string]string{"SLURM_ARRAY_TASK_ID": "6", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_MAX": "8", "SLURM_ARRAY_TASK_STEP": "2"}, 0, Shard{3, 5}, ShardFromSlurm, ""},
		{"slurm beats k8s", map[string]string{"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "2", "JOB_COMPLETION_INDEX": "1"}, 4, Shard{0, 2}, ShardFromSlurm, ""},
		{"slurm off step", map[string]string{"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_MAX": "8", "SLURM_ARRAY_TASK_STEP": "2"}, 0, Shard{}, ShardFromSlurm, "not on the array's step"},
		{"slurm irregular", map[string]string{"SLURM_ARRAY_TASK_ID": "9", "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_MIN": "1"}, 0, Shard{}, ShardFromSlurm, "outside the 3 tasks"},
		{"slurm no count", map[string]string{"SLURM_ARRAY_TASK_ID": "0"}, 0, Shard{}, ShardFromSlurm, "without SLURM_ARRAY_TASK_COUNT"},
		{"slurm garbage", map[string]string{"SLURM_ARRAY_TASK_ID": "x"}, 0, Shard{}, ShardFromSlurm, "not a number"},
		{"k8s", map[string]string{"JOB_COMPLETION_INDEX": "3"}, 4, Shard{3, 4}, ShardFromK8s, ""},
		{"k8s no count", map[string]string{"JOB_COMPLETION_INDEX": "0"}, 0, Shard{}, ShardFromK8s, "--shards"},
		{"k8s too high", map[string]string{"JOB_COMPLETION_INDEX": "4"}, 4, Shard{}, ShardFromK8s, "not below the 4 shards"},
		{"k8s garbage", map[string]string{"JOB_COMPLETION_INDEX": "-1"}, 4, Shard{}, ShardFromK8s, "not an index"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, source, err := SchedulerShard(func(k string) string { return tt.env[k] }, tt.count)
			if source != tt.source {
				t.Errorf("source %q, want %q", source, tt.source)
			}
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestShardDir(t *testing.T) {
	if got := ShardDir("out", Shard{}); got != "out" {
		t.Errorf("unsharded: %s", got)
	}
	if got := ShardDir("out", Shard{0, 1}); got != "out" {
		t.Errorf("one shard: %s", got)
	}
	if got, want := ShardDir("out", Shard{2, 3}), filepath.Join("out", "shards", "2-of-3"); got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}
