package main

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestK8sManifests checks that deploy/k8s's Jobs say what dsbatch expects:
// an Indexed Job whose shard count matches its completions, and arguments
// the CLI accepts.
func TestK8sManifests(t *testing.T) {
	type job struct {
		Kind string
		Spec struct {
			CompletionMode string `yaml:"completionMode"`
			Completions    int
			Template       struct {
				Spec struct {
					Containers []struct {
						Args []string
						Env  []struct{ Name, Value string }
					}
				}
			}
		}
	}
	read := func(path string) job {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var j job
		if err := yaml.Unmarshal(b, &j); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if j.Kind != "Job" || len(j.Spec.Template.Spec.Containers) != 1 {
			t.Fatalf("%s: want a Job with one container, got %+v", path, j)
		}
		return j
	}
	run := read("../../deploy/k8s/indexed-job.yaml")
	if run.Spec.CompletionMode != "Indexed" {
		t.Errorf("completionMode %q, want Indexed", run.Spec.CompletionMode)
	}
	c := run.Spec.Template.Spec.Containers[0]
	shards := 0
	for _, e := range c.Env {
		if e.Name == "DSBATCH_SHARDS" {
			shards, _ = strconv.Atoi(e.Value)
		}
	}
	if shards != run.Spec.Completions || shards < 2 {
		t.Errorf("DSBATCH_SHARDS %d, completions %d: want them equal", shards, run.Spec.Completions)
	}
	// The arguments parse, and the last index takes the last shard: the run
	// gets as far as reading the (absent) model.
	r := dsbatchEnv(t, []string{"JOB_COMPLETION_INDEX=" + strconv.Itoa(shards-1), "DSBATCH_SHARDS=" + strconv.Itoa(shards)}, c.Args...)
	if r.code != exitFailed || !strings.Contains(r.stderr, "/models/yolov8n.onnx") || !strings.Contains(r.stderr, "from the Kubernetes Indexed Job") {
		t.Errorf("%v: exit %d, stderr %s", c.Args, r.code, r.stderr)
	}
	merge := read("../../deploy/k8s/merge-job.yaml")
	if args := merge.Spec.Template.Spec.Containers[0].Args; len(args) != 2 || args[0] != "merge" {
		t.Errorf("merge job args %v", args)
	}
}
