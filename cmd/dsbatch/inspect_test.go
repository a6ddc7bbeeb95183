package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dsbatch/dsbatch/job"
)

// TestInspect compares inspect's report with DuckDB's reading of the same
// output folder.
func TestInspect(t *testing.T) {
	withORT(t)
	out := filepath.Join(t.TempDir(), "out")
	if r := dsbatch(t, "run", "--no-cache", "--model", model(t), "--out", out, media); r.code != exitPartial {
		t.Fatalf("run: exit %d %s", r.code, r.stderr)
	}
	r := dsbatch(t, "inspect", "--json", "--top", "3", out)
	if r.code != 0 {
		t.Fatalf("inspect: exit %d %s", r.code, r.stderr)
	}
	var in job.Inspection
	if err := json.Unmarshal([]byte(r.stdout), &in); err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	q := func(sql string) int64 { return duckInt(t, fmt.Sprintf(sql, out)) }
	if int64(in.Videos) != q("select count(*) from read_parquet('%s/videos.parquet')") ||
		int64(in.Done) != q("select count(*) from read_parquet('%s/videos.parquet') where status = 'done'") ||
		int64(len(in.Failed)) != q("select count(*) from read_parquet('%s/videos.parquet') where status = 'failed'") ||
		in.Frames != q("select sum(frames_inferred) from read_parquet('%s/videos.parquet')") ||
		in.Detections["person"] != q("select count(*) from read_parquet('%s/detections/*.parquet') where class_name = 'person'") ||
		in.Tracks["person"] != q("select count(*) from read_parquet('%s/tracks/*.parquet') where class_name = 'person'") {
		t.Errorf("inspect disagrees with DuckDB: %+v", in)
	}
	if len(in.Busiest) != 3 || in.Busiest[0].Detections < in.Busiest[2].Detections || in.FPS <= 0 {
		t.Errorf("busiest %+v, fps %v", in.Busiest, in.FPS)
	}
	r = dsbatch(t, "inspect", out)
	for _, want := range []string{"11 done, 5 failed", "CLASS", "person", "BUSIEST VIDEO", "FAILED", "empty file"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("table lacks %q:\n%s", want, r.stdout)
		}
	}
	if r := dsbatch(t, "inspect", t.TempDir()); r.code != exitFailed || !strings.Contains(r.stderr, "no videos.parquet") {
		t.Errorf("not an output folder: exit %d %s", r.code, r.stderr)
	}
}
