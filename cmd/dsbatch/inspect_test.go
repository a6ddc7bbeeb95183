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
	// A part per video (--part-rows 1): parts that compact rewrites.
	if r := dsbatch(t, "run", "--no-cache", "--part-rows", "1", "--model", model(t), "--out", out, media); r.code != exitPartial {
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
	// Small parts, and the command that rewrites them.
	parts, _ := filepath.Glob(filepath.Join(out, "detections", "*.parquet"))
	if in.Layout != "parts" || in.Parts != len(parts) || in.Parts < 2 || in.SmallParts != in.Parts {
		t.Errorf("layout %q, %d parts (%d files), %d small", in.Layout, in.Parts, len(parts), in.SmallParts)
	}
	if r := dsbatch(t, "inspect", out); !strings.Contains(r.stdout, "dsbatch compact "+out) {
		t.Errorf("inspect does not say how to rewrite small parts:\n%s", r.stdout)
	}
	if r := dsbatch(t, "compact", out); r.code != 0 || !strings.Contains(r.stdout, "small parts rewritten into large ones: 1 parts now") {
		t.Errorf("compact: exit %d %s %s", r.code, r.stdout, r.stderr)
	}
	var after job.Inspection
	if r := dsbatch(t, "inspect", "--json", out); json.Unmarshal([]byte(r.stdout), &after) != nil || after.Parts != 1 || after.SmallParts != 0 ||
		after.Detections["person"] != in.Detections["person"] || after.Tracks["person"] != in.Tracks["person"] {
		t.Errorf("after compact: %d parts, %d small, %d people (was %d)", after.Parts, after.SmallParts, after.Detections["person"], in.Detections["person"])
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
