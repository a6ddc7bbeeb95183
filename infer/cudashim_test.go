package infer

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// kernelOnCPU compiles a kernel source as C++ with a main (harness) that
// reads its input from the file argv[1] and writes its output to argv[2]
// (testdata/cudashim.h: each block on one thread, every operation rounded
// on its own, nothing fused), and returns the function that runs it on
// one input. It skips the test without g++, which make setup installs.
func kernelOnCPU(t *testing.T, source, harness string) func(in []byte) []byte {
	t.Helper()
	cxx, err := exec.LookPath("g++")
	if err != nil {
		t.Skip("no g++ (make setup installs it)")
	}
	dir := t.TempDir()
	shim, err := os.ReadFile(filepath.Join("testdata", "cudashim.h"))
	if err != nil {
		t.Fatal(err)
	}
	src, bin := filepath.Join(dir, "kernel.cc"), filepath.Join(dir, "kernel")
	code := string(shim) + strings.ReplaceAll(source, `extern "C" `, "") + harness
	if err := os.WriteFile(src, []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(cxx, "-O1", "-ffp-contract=off", "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("g++: %v\n%s", err, out)
	}
	runs := 0
	return func(in []byte) []byte {
		t.Helper()
		runs++
		inPath, outPath := filepath.Join(dir, fmt.Sprint("in", runs)), filepath.Join(dir, fmt.Sprint("out", runs))
		if err := os.WriteFile(inPath, in, 0o644); err != nil {
			t.Fatal(err)
		}
		if msg, err := exec.Command(bin, inPath, outPath).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", bin, err, msg)
		}
		out, err := os.ReadFile(outPath)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
}
