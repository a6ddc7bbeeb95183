package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// sameRows checks with DuckDB that two Parquet globs hold the same rows.
func sameRows(t *testing.T, a, b string) {
	t.Helper()
	ra, rb := fmt.Sprintf("read_parquet('%s')", a), fmt.Sprintf("read_parquet('%s')", b)
	for _, pair := range [][2]string{{ra, rb}, {rb, ra}} {
		if n := duckInt(t, fmt.Sprintf("select count(*) from (select * from %s except all select * from %s)", pair[0], pair[1])); n != 0 {
			t.Errorf("%d rows of %s are not in %s", n, pair[0], pair[1])
		}
	}
	if n := duckInt(t, fmt.Sprintf("select count(*) from %s", ra)); n == 0 {
		t.Errorf("%s is empty: nothing compared", a)
	}
}

// sameVideos compares the videos tables of two outputs, less run times.
func sameVideos(t *testing.T, a, b string) {
	t.Helper()
	cols := "video_id, path, status, error, frames_decoded, frames_inferred, corrupt_packets, detections, decoder"
	sameRowsQuery(t, fmt.Sprintf("select %s from read_parquet('%s/videos.parquet')", cols, a), fmt.Sprintf("select %s from read_parquet('%s/videos.parquet')", cols, b))
}

func sameRowsQuery(t *testing.T, qa, qb string) {
	t.Helper()
	for _, pair := range [][2]string{{qa, qb}, {qb, qa}} {
		if n := duckInt(t, fmt.Sprintf("select count(*) from (%s except all %s)", pair[0], pair[1])); n != 0 {
			t.Errorf("%d rows of (%s) are not in (%s)", n, pair[0], pair[1])
		}
	}
}

func TestShardedRunMerge(t *testing.T) {
	withORT(t)
	m := model(t)
	dir := t.TempDir()
	cache := filepath.Join(dir, "cache")
	archive, _ := filepath.Abs(media)
	run := func(env []string, out string, extra ...string) result {
		args := append([]string{"run", "--cache-dir", cache, "--model", m, "--out", out}, extra...)
		return dsbatchEnv(t, env, append(args, archive)...)
	}
	ref := filepath.Join(dir, "ref")
	if r := run(nil, ref); r.code != exitPartial {
		t.Fatalf("single run: exit %d\n%s", r.code, r.stderr)
	}

	// Three shards, each told its place a different way.
	out := filepath.Join(dir, "out")
	shards := []struct {
		env  []string
		args []string
		says string
	}{
		{nil, []string{"--shard", "0/3"}, ""},
		{[]string{"SLURM_ARRAY_JOB_ID=7", "SLURM_ARRAY_TASK_ID=1", "SLURM_ARRAY_TASK_COUNT=3", "SLURM_ARRAY_TASK_MIN=0", "SLURM_ARRAY_TASK_MAX=2"}, nil, "shard 1/3 from the Slurm job array"},
		{[]string{"JOB_COMPLETION_INDEX=2", "DSBATCH_SHARDS=3"}, nil, "shard 2/3 from the Kubernetes Indexed Job"},
	}
	for i, s := range shards[:2] {
		r := run(s.env, out, s.args...)
		if r.code == exitFailed || !strings.Contains(r.stderr, s.says) {
			t.Fatalf("shard %d: exit %d\n%s", i, r.code, r.stderr)
		}
	}
	if entries, _ := os.ReadDir(out); len(entries) != 1 || entries[0].Name() != "shards" {
		t.Errorf("shards wrote outside out/shards: %v", entries)
	}

	// Shard 2 is missing: nothing merged, unless --partial.
	r := dsbatch(t, "merge", out)
	if r.code != exitFailed || !strings.Contains(r.stdout, "missing: shards [2] of 3") || !strings.Contains(r.stdout, "nothing merged") {
		t.Fatalf("merge without shard 2: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(out, "videos.parquet")); err == nil {
		t.Error("a refused merge wrote videos.parquet")
	}
	if r := dsbatch(t, "merge", "--partial", out); r.code != exitPartial || !strings.Contains(r.stdout, "merged 2 shard(s) of 3") {
		t.Fatalf("partial merge: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	if r := run(shards[2].env, out, shards[2].args...); r.code == exitFailed || !strings.Contains(r.stderr, shards[2].says) {
		t.Fatalf("shard 2: exit %d\n%s", r.code, r.stderr)
	}
	for i := 0; i < 2; i++ { // merging twice gives the same
		r = dsbatch(t, "merge", out)
		if r.code != exitPartial || !strings.Contains(r.stdout, "merged 3 shard(s) of 3") || !strings.Contains(r.stdout, "16 videos (11 done, 5 failed)") {
			t.Fatalf("merge %d: exit %d\n%s%s", i, r.code, r.stdout, r.stderr)
		}
		sameRows(t, ref+"/detections/*.parquet", out+"/detections/*.parquet")
		sameRows(t, ref+"/tracks/*.parquet", out+"/tracks/*.parquet")
		sameVideos(t, ref, out)
	}
	if !strings.Contains(r.stdout, "linked") {
		t.Errorf("no link count in %s", r.stdout)
	}

	// The merged folder resumes like a single run's: nothing is redone.
	if r := run(nil, out); r.code != exitPartial || !strings.Contains(r.stdout, "0 done, 5 failed, 11 already done") {
		t.Errorf("rerun into the merged folder: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// A shard with other settings, a running shard and a killed shard are refused, by name.
	odd := filepath.Join(dir, "odd")
	if r := run(nil, odd, "--shard", "1/3", "--conf", "0.5"); r.code == exitFailed {
		t.Fatalf("odd shard: %s", r.stderr)
	}
	s0, s1, s2 := filepath.Join(out, "shards", "0-of-3"), filepath.Join(odd, "shards", "1-of-3"), filepath.Join(out, "shards", "2-of-3")
	if r := dsbatch(t, "merge", "--out", filepath.Join(dir, "m1"), s0, s1, s2); r.code != exitFailed || !strings.Contains(r.stdout, "settings differ") || !strings.Contains(r.stdout, "conf 0.25, here 0.5") {
		t.Errorf("mixed settings: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	lock, err := os.OpenFile(filepath.Join(s2, ".dsbatch", "lock"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	syscall.Flock(int(lock.Fd()), syscall.LOCK_EX)
	r = dsbatch(t, "merge", out)
	lock.Close()
	if r.code != exitFailed || !strings.Contains(r.stdout, "running: a run holds its lock") {
		t.Errorf("running shard: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	os.Remove(filepath.Join(s2, "run.json"))
	if r := dsbatch(t, "merge", "--json", out); r.code != exitFailed || !strings.Contains(r.stdout, `"state":"unfinished"`) || !strings.Contains(r.stderr, "run was killed") {
		t.Errorf("killed shard: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := dsbatch(t, "merge", filepath.Join(dir, "nowhere")); r.code != exitFailed || !strings.Contains(r.stderr, "not a dsbatch output folder") {
		t.Errorf("merge of nothing: exit %d\n%s", r.code, r.stderr)
	}
}
