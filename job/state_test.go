package job

import (
	"os"
	"path/filepath"
	"testing"
)

func TestOpenOutRemovesTemps(t *testing.T) {
	root := t.TempDir()
	o, err := openOut(root)
	if err != nil {
		t.Fatal(err)
	}
	o.close()
	temps := []string{
		filepath.Join(root, ".run.json.123.tmp"),
		filepath.Join(root, stateDir, ".settings.json.456.tmp"),
		filepath.Join(root, stateDir, recordsDir, ".00000000000000ff.json.7.tmp"),
		filepath.Join(root, detectionsDir, ".00000000000000ff.parquet.8.tmp"),
		filepath.Join(root, tracksDir, ".00000000000000ff.parquet.9.tmp"),
	}
	keep := filepath.Join(root, detectionsDir, "00000000000000ff.parquet")
	for _, p := range append(temps, keep) {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	o, err = openOut(root)
	if err != nil {
		t.Fatal(err)
	}
	defer o.close()
	for _, p := range temps {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s survived opening the folder (err %v)", p, err)
		}
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("committed file removed: %v", err)
	}
}
