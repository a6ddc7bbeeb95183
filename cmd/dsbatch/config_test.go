package main

import (
	"reflect"
	"testing"
)

func TestParseConfig(t *testing.T) {
	got, err := parseConfig([]byte("model: m.onnx\nconf: 0.5\nexclude: [\"a/*\", b]\nforce: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"model": {"m.onnx"}, "conf": {"0.5"}, "exclude": {"a/*", "b"}, "force": {"true"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v", got)
	}
	for _, bad := range []string{"model:\n", "a: {b: 1}\n", "a: [[1]]\n", "- x\n", "a: [b: 1]\n"} {
		if _, err := parseConfig([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("model: m.onnx\nconf: 0.5\nexclude: [\"a/*\", b]\n"))
	f.Add([]byte("a: {b: [1, {c: d}]}\n"))
	f.Add([]byte("&a [*a]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseConfig(b)
		if err != nil {
			return
		}
		for k, vs := range m {
			if len(vs) == 0 {
				t.Fatalf("%q: key %q without values", b, k)
			}
		}
	})
}
