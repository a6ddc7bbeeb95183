package main

import (
	"io"
	"reflect"
	"testing"
)

func TestIntersperse(t *testing.T) {
	app := newApp(io.Discard, io.Discard)
	tests := []struct{ in, want []string }{
		{[]string{"dsbatch", "run", "/v", "--model", "m.onnx", "--out", "o", "--force"},
			[]string{"dsbatch", "run", "--model", "m.onnx", "--out", "o", "--force", "--", "/v"}},
		{[]string{"dsbatch", "--verbose", "probe", "--json", "a", "b", "--jobs=4"},
			[]string{"dsbatch", "--verbose", "probe", "--json", "--jobs=4", "--", "a", "b"}},
		{[]string{"dsbatch", "preview", "OUT", "--video", "v.mp4", "--to", "x.png"},
			[]string{"dsbatch", "preview", "--video", "v.mp4", "--to", "x.png", "--", "OUT"}},
		{[]string{"dsbatch", "probe", "--", "-weird-name.mp4"},
			[]string{"dsbatch", "probe", "--", "-weird-name.mp4"}},
		{[]string{"dsbatch", "bench", "decode", "f.mp4", "--sessions", "7"},
			[]string{"dsbatch", "bench", "decode", "--sessions", "7", "--", "f.mp4"}},
		{[]string{"dsbatch", "gpus"}, []string{"dsbatch", "gpus"}},
		{[]string{"dsbatch", "--help"}, []string{"dsbatch", "--help"}},
	}
	for _, tt := range tests {
		if got := intersperse(app, tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("intersperse(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestShownPath(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"/a/b c.mp4", "/a/b c.mp4"},
		{"ünïcødé 日本.mp4", "ünïcødé 日本.mp4"},
		{"-dash.mp4", "-dash.mp4"},
		{"new\nline.mp4", `"new\nline.mp4"`},
		{"tab\there.mp4", `"tab\there.mp4"`},
		{"bell\a.mp4", `"bell\a.mp4"`},
	} {
		if got := shownPath(tt.in); got != tt.want {
			t.Errorf("shownPath(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}
