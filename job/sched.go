package job

import (
	"fmt"
	"path/filepath"
	"strconv"
)

// ShardSource says where a run's shard came from.
type ShardSource string

// Where a shard can come from, strongest first.
const (
	ShardFromFlag  ShardSource = "--shard"
	ShardFromSlurm ShardSource = "Slurm job array"
	ShardFromK8s   ShardSource = "Kubernetes Indexed Job"
	ShardNone      ShardSource = ""
)

// SchedulerShard works out this task's shard from a scheduler's
// environment: a Slurm job array (SLURM_ARRAY_TASK_ID with
// SLURM_ARRAY_TASK_COUNT, or with SLURM_ARRAY_TASK_MIN/MAX/STEP on older
// versions) or a Kubernetes Indexed Job (JOB_COMPLETION_INDEX, with count
// the job's completions, which Kubernetes does not put in the
// environment). Outside both it returns the zero Shard and ShardNone.
func SchedulerShard(getenv func(string) string, count int) (Shard, ShardSource, error) {
	if id := getenv("SLURM_ARRAY_TASK_ID"); id != "" {
		s, err := slurmShard(getenv, id)
		return s, ShardFromSlurm, err
	}
	if idx := getenv("JOB_COMPLETION_INDEX"); idx != "" {
		i, err := strconv.Atoi(idx)
		if err != nil || i < 0 {
			return Shard{}, ShardFromK8s, fmt.Errorf("JOB_COMPLETION_INDEX=%q: not an index", idx)
		}
		if count < 1 {
			return Shard{}, ShardFromK8s, fmt.Errorf("JOB_COMPLETION_INDEX=%d but no shard count: give --shards (or DSBATCH_SHARDS) the job's completions", i)
		}
		if i >= count {
			return Shard{}, ShardFromK8s, fmt.Errorf("JOB_COMPLETION_INDEX=%d is not below the %d shards", i, count)
		}
		return Shard{Index: i, Count: count}, ShardFromK8s, nil
	}
	return Shard{}, ShardNone, nil
}

func slurmShard(getenv func(string) string, id string) (Shard, error) {
	num := func(name string, def int) (int, error) {
		v := getenv(name)
		if v == "" {
			return def, nil
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return 0, fmt.Errorf("%s=%q: not a number", name, v)
		}
		return n, nil
	}
	task, err := strconv.Atoi(id)
	if err != nil {
		return Shard{}, fmt.Errorf("SLURM_ARRAY_TASK_ID=%q: not a number", id)
	}
	lo, err1 := num("SLURM_ARRAY_TASK_MIN", 0)
	hi, err2 := num("SLURM_ARRAY_TASK_MAX", -1)
	step, err3 := num("SLURM_ARRAY_TASK_STEP", 1)
	count, err4 := num("SLURM_ARRAY_TASK_COUNT", 0)
	for _, err := range []error{err1, err2, err3, err4} {
		if err != nil {
			return Shard{}, err
		}
	}
	if step < 1 {
		step = 1
	}
	if count == 0 && hi >= lo {
		count = (hi-lo)/step + 1
	}
	if count < 1 {
		return Shard{}, fmt.Errorf("SLURM_ARRAY_TASK_ID=%d without SLURM_ARRAY_TASK_COUNT or SLURM_ARRAY_TASK_MIN/MAX", task)
	}
	if (task-lo)%step != 0 {
		// Arrays like 1,4,9 have no regular step: the tasks cannot be
		// numbered from the environment alone.
		return Shard{}, fmt.Errorf("Slurm array task %d is not on the array's step %d from %d: use a range array like --array=0-%d", task, step, lo, count-1)
	}
	i := (task - lo) / step
	if i < 0 || i >= count {
		return Shard{}, fmt.Errorf("Slurm array task %d is outside the %d tasks from %d: use a range array like --array=0-%d", task, count, lo, count-1)
	}
	return Shard{Index: i, Count: count}, nil
}

// ShardDir is where a shard of a run writes inside the run's shared output
// folder: out/shards/<i>-of-<n>. Shards of one run never write the same
// file; Merge gathers them into out.
func ShardDir(out string, s Shard) string {
	if s.Count <= 1 {
		return out
	}
	return filepath.Join(out, shardsDir, fmt.Sprintf("%d-of-%d", s.Index, s.Count))
}
