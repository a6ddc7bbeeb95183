package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestSlurmScriptGolden(t *testing.T) {
	dir := t.TempDir()
	r := dsbatch(t, "slurm", "--tasks", "8", "--gpus-per-task", "2", "--time", "6:00:00", "--partition", "gpu", "--max-running", "4",
		"--chdir", "/shared/work", "--logs", filepath.Join(dir, "logs"), "--dsbatch", "/opt/dsbatch/bin/dsbatch", "--",
		"--model", "/shared/models/yolo v8.onnx", "--out", "/shared/out", "--stride", "2", "/shared/archive/it's here")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	got := strings.ReplaceAll(r.stdout, dir, "LOGS")
	golden := filepath.Join("testdata", "slurm.sbatch.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("script differs from %s (go test -run TestSlurmScriptGolden -update to accept):\n%s", golden, got)
	}
	if _, err := os.Stat(filepath.Join(dir, "logs")); err != nil {
		t.Errorf("log folder not made: %v", err)
	}
	bash := exec.Command("bash", "-n")
	bash.Stdin = strings.NewReader(r.stdout)
	if out, err := bash.CombinedOutput(); err != nil {
		t.Errorf("bash -n: %v %s", err, out)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"slurm", "--", "--model", "m.onnx", "--out", "o", "a"}, "--tasks N is required"},
		{[]string{"slurm", "--tasks", "2", "--", "--model", "m.onnx", "a"}, "with --model and --out"},
		{[]string{"slurm", "--tasks", "2", "--", "--model", "m.onnx", "--out", "o", "--shard", "0/2", "a"}, "leave --shard out"},
		{[]string{"slurm", "--tasks", "2", "--time", "soon", "--", "--model", "m.onnx", "--out", "o", "a"}, `--time "soon"`},
	} {
		if r := dsbatch(t, tt.args...); r.code != exitFailed || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", tt.args, r.code, r.stderr, tt.want)
		}
	}
}

// TestSlurmArrayJob runs a real one-node Slurm cluster on localhost (munged,
// slurmctld, slurmd from Debian's slurm-wlm and munge, installed when
// missing), submits the script `dsbatch slurm` writes as a 3-task array
// job, merges the shards and checks with DuckDB that the rows equal one
// unsharded run's.
func TestSlurmArrayJob(t *testing.T) {
	if testing.Short() {
		t.Skip("Slurm cluster test skipped with -short")
	}
	sbin := ensureSlurm(t)
	withORT(t)
	m := model(t)
	dir, err := os.MkdirTemp("", "dss") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o700)
	conf := startSlurm(t, sbin, dir)
	t.Setenv("SLURM_CONF", conf)

	archive, _ := filepath.Abs(media)
	runArgs := []string{"--model", m, "--cache-dir", filepath.Join(dir, "cache"), "--exclude", "bad/*", "--gpus", "0", "--batch", "4"}
	ref := filepath.Join(dir, "ref")
	if r := dsbatch(t, append(append([]string{"run"}, runArgs...), "--out", ref, archive)...); r.code != 0 {
		t.Fatalf("single run: exit %d\n%s", r.code, r.stderr)
	}

	out := filepath.Join(dir, "out")
	script := filepath.Join(dir, "job.sbatch")
	args := []string{"slurm", "--tasks", "3", "--gpus-per-task", "0", "--cpus-per-task", "1", "--mem=", "--time", "10",
		"--chdir", dir, "--logs", filepath.Join(dir, "logs"), "--dsbatch", bin, "-o", script, "--"}
	if r := dsbatch(t, append(append(args, runArgs...), "--out", out, archive)...); r.code != 0 {
		t.Fatalf("dsbatch slurm: exit %d\n%s", r.code, r.stderr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sbatch := exec.CommandContext(ctx, filepath.Join(filepath.Dir(sbin), "..", "bin", "sbatch"), "--wait", "--parsable", script)
	sbatch.Env = os.Environ()
	res, err := sbatch.CombinedOutput()
	logs, _ := filepath.Glob(filepath.Join(dir, "logs", "*.log"))
	var all bytes.Buffer
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		fmt.Fprintf(&all, "== %s\n%s", l, b)
	}
	if err != nil {
		t.Fatalf("sbatch --wait: %v\n%s\n%s\nslurmctld log:\n%s", err, res, all.String(), tail(filepath.Join(dir, "slurmctld.log")))
	}
	if len(logs) != 3 {
		t.Errorf("%d task logs, want 3:\n%s", len(logs), all.String())
	}
	for i := 0; i < 3; i++ {
		if !strings.Contains(all.String(), fmt.Sprintf("shard %d/3 from the Slurm job array", i)) {
			t.Errorf("no task took shard %d/3:\n%s", i, all.String())
		}
	}

	r := dsbatch(t, "merge", out)
	if r.code != 0 || !strings.Contains(r.stdout, "merged 3 shard(s) of 3") {
		t.Fatalf("merge: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	sameRows(t, ref+"/detections/*.parquet", out+"/detections/*.parquet")
	sameRows(t, ref+"/tracks/*.parquet", out+"/tracks/*.parquet")
	sameVideos(t, ref, out)
	done := "select count(*) from read_parquet('%s/videos.parquet') where status = 'done'"
	if n, want := duckInt(t, fmt.Sprintf(done, out)), duckInt(t, fmt.Sprintf(done, ref)); n != want || n < 10 {
		t.Errorf("%d videos done after the merge, want %d (at least the 10 good test clips)", n, want)
	}
}

// ensureSlurm finds Slurm's and munge's daemons, installing Debian's
// slurm-wlm and munge when they are missing and this is root. It returns
// the folder slurmctld is in.
func ensureSlurm(t *testing.T) string {
	t.Helper()
	find := func() string {
		for _, d := range []string{"/usr/sbin", "/usr/local/sbin"} {
			ok := true
			for _, f := range []string{"slurmctld", "slurmd", "munged", "../bin/sbatch", "../bin/sinfo"} {
				if _, err := os.Stat(filepath.Join(d, f)); err != nil {
					ok = false
				}
			}
			if ok {
				return d
			}
		}
		return ""
	}
	if d := find(); d != "" {
		return d
	}
	if os.Geteuid() != 0 {
		t.Skip("Slurm is not installed and installing it (apt-get install slurm-wlm munge) needs root")
	}
	install := func() ([]byte, error) {
		cmd := exec.Command("apt-get", "install", "-y", "-q", "--no-install-recommends", "slurm-wlm", "munge")
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		return cmd.CombinedOutput()
	}
	out, err := install()
	if err != nil {
		upd, _ := exec.Command("apt-get", "update", "-q").CombinedOutput()
		out = append(upd, out...)
		var more []byte
		more, err = install()
		out = append(out, more...)
	}
	if err != nil {
		t.Skipf("Slurm cannot be installed (apt-get install slurm-wlm munge: %v): %s", err, lastLines(out, 5))
	}
	d := find()
	if d == "" {
		t.Fatalf("slurm-wlm and munge installed, but slurmctld, slurmd or munged is not in /usr/sbin")
	}
	return d
}

// startSlurm starts munged, slurmctld and slurmd for a one-node cluster on
// localhost, all in dir, stopped when the test ends. It returns the path
// of slurm.conf.
func startSlurm(t *testing.T, sbin, dir string) string {
	t.Helper()
	key := make([]byte, 1024)
	rand.Read(key)
	if err := os.WriteFile(filepath.Join(dir, "munge.key"), key, 0o400); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "munge.sock")
	host, _ := os.Hostname()
	conf := filepath.Join(dir, "slurm.conf")
	for _, d := range []string{"state", "spool"} {
		os.Mkdir(filepath.Join(dir, d), 0o700)
	}
	text := fmt.Sprintf(`ClusterName=dsbatchtest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=%d
SlurmdPort=%d
AuthType=auth/munge
AuthInfo=socket=%[3]s
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=%[4]s/state
SlurmdSpoolDir=%[4]s/spool
SlurmctldPidFile=%[4]s/slurmctld.pid
SlurmdPidFile=%[4]s/slurmd.pid
SlurmctldLogFile=%[4]s/slurmctld.log
SlurmdLogFile=%[4]s/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
NodeName=dsnode NodeAddr=127.0.0.1 NodeHostname=%[5]s CPUs=2 State=UNKNOWN
PartitionName=debug Nodes=dsnode Default=YES MaxTime=INFINITE State=UP
`, freePort(t), freePort(t), sock, dir, host)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	daemon := func(name string, args ...string) {
		cmd := exec.Command(filepath.Join(sbin, name), args...)
		cmd.Env = append(os.Environ(), "SLURM_CONF="+conf)
		log, _ := os.Create(filepath.Join(dir, name+".out"))
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); log.Close(); close(exited) }()
		t.Cleanup(func() {
			cmd.Process.Signal(os.Interrupt)
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-exited
			}
		})
	}
	daemon("munged", "-F", "-f", "--key-file="+filepath.Join(dir, "munge.key"), "--socket="+sock,
		"--pid-file="+filepath.Join(dir, "munged.pid"), "--log-file="+filepath.Join(dir, "munged.log"), "--seed-file="+filepath.Join(dir, "munged.seed"))
	waitFor(t, 10*time.Second, "munged's socket", func() bool { _, err := os.Stat(sock); return err == nil })
	daemon("slurmctld", "-D", "-c", "-f", conf)
	daemon("slurmd", "-D", "-N", "dsnode", "-f", conf)
	sinfo := filepath.Join(sbin, "..", "bin", "sinfo")
	waitFor(t, 60*time.Second, "the node to be idle", func() bool {
		cmd := exec.Command(sinfo, "-h", "-o", "%T")
		cmd.Env = append(os.Environ(), "SLURM_CONF="+conf)
		out, _ := cmd.Output()
		return strings.TrimSpace(string(out)) == "idle"
	})
	return conf
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitFor(t *testing.T, limit time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", limit, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	return lastLines(b, 20)
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
