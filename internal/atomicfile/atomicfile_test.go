package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "a.json")
	if err := Write(path, func(w io.Writer) error { _, err := io.WriteString(w, "one"); return err }); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if err := Write(path, func(w io.Writer) error { io.WriteString(w, "half"); return boom }); !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "one" {
		t.Errorf("a failed write changed the file: %q", b)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "sub", ".*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", fi.Mode())
	}
}

// TestRemoveTemps: a dead writer's temporary files go, a live one's stay
// unless every temporary file is to go; final files always stay.
func TestRemoveTemps(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := cmd.Process.Pid
	mine, err := Create(filepath.Join(dir, "b.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	mine.Close()
	files := map[string]bool{ // name: removed by RemoveDeadTemps
		fmt.Sprintf(".a.parquet.%d.123%s", dead, suffix): true,
		filepath.Base(mine.Name()):                       false,
		".old.parquet.x.tmp":                             true, // no writer named: anyone's
		"a.parquet":                                      false,
	}
	for name := range files {
		if name != filepath.Base(mine.Name()) {
			os.WriteFile(filepath.Join(dir, name), nil, 0o644)
		}
	}
	if err := RemoveDeadTemps(dir); err != nil {
		t.Fatal(err)
	}
	for name, gone := range files {
		if _, err := os.Stat(filepath.Join(dir, name)); (err != nil) != gone {
			t.Errorf("%s: removed %v, want %v", name, err != nil, gone)
		}
	}
	if err := RemoveTemps(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(mine.Name()); err == nil {
		t.Error("RemoveTemps left a live writer's file")
	}
	if _, err := os.Stat(filepath.Join(dir, "a.parquet")); err != nil {
		t.Error("RemoveTemps removed a final file")
	}
	if pid, ok := writer(filepath.Base(mine.Name())); !ok || pid != os.Getpid() {
		t.Errorf("writer of %s: %d %v, want %s", mine.Name(), pid, ok, strconv.Itoa(os.Getpid()))
	}
}
