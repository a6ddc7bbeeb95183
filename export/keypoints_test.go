package export

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

func TestKeypointNames(t *testing.T) {
	for _, tc := range []struct {
		name  string
		n     int
		given []string
		want  []string
	}{
		{"none given", 3, nil, []string{"kp0", "kp1", "kp2"}},
		{"all given", 2, []string{"wrist", "thumb"}, []string{"wrist", "thumb"}},
		{"fewer given", 3, []string{"wrist"}, []string{"wrist", "kp1", "kp2"}},
		{"empty", 2, []string{"", "thumb"}, []string{"kp0", "thumb"}},
		{"repeated", 3, []string{"a", "a", "b"}, []string{"a", "kp1", "b"}},
		{"given a default's name", 2, []string{"kp1", ""}, []string{"kp1", "kp1_2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := DetectionOptions{Keypoints: tc.n, KeypointNames: tc.given}.keypointNames()
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestKeypointsReadsBothForms: Keypoints reads a keypoints column written
// now (a struct of named points, read back from Parquet, a row short of
// points among them) and one of the list form written before 2026-12-03.
func TestKeypointsReadsBothForms(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	type point struct {
		name string
		k    Keypoint
	}
	want := [][]point{
		{{"a", Keypoint{1, 2, 0.9}}, {"b", Keypoint{3, 4, 0.1}}},
		{{"a", Keypoint{5, 6, 1}}, {"b", Keypoint{}}},
	}
	check := func(t *testing.T, col arrow.Array) {
		t.Helper()
		for i, w := range want {
			var got []point
			if err := Keypoints(col, i, func(name string, k Keypoint) { got = append(got, point{name, k}) }); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, w) {
				t.Errorf("row %d: got %v, want %v", i, got, w)
			}
		}
	}
	t.Run("struct", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "d.parquet")
		w, err := NewDetectionWriter(path, mem, DetectionOptions{Keypoints: 2, KeypointNames: []string{"a", "b"}})
		if err != nil {
			t.Fatal(err)
		}
		for _, kps := range [][]Keypoint{{{1, 2, 0.9}, {3, 4, 0.1}}, {{5, 6, 1}}} {
			if err := w.Append(Detection{VideoID: 1, VideoPath: "/v.mp4", ClassName: "person", Keypoints: kps}); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		var rows int64
		err = ScanColumns(t.Context(), path, []string{"keypoints"}, mem, func(r arrow.Record) error {
			rows += r.NumRows()
			check(t, r.Column(0))
			return nil
		})
		if err != nil || rows != 2 {
			t.Fatalf("%d rows read: %v", rows, err)
		}
	})
	t.Run("list", func(t *testing.T) {
		named := arrow.StructOf(arrow.Field{Name: "name", Type: arrow.BinaryTypes.String}, arrow.Field{Name: "x", Type: arrow.PrimitiveTypes.Float32},
			arrow.Field{Name: "y", Type: arrow.PrimitiveTypes.Float32}, arrow.Field{Name: "score", Type: arrow.PrimitiveTypes.Float32})
		lb := array.NewListBuilder(mem, named)
		defer lb.Release()
		sb := lb.ValueBuilder().(*array.StructBuilder)
		for _, row := range want {
			lb.Append(true)
			for _, p := range row {
				sb.Append(true)
				sb.FieldBuilder(0).(*array.StringBuilder).Append(p.name)
				for f, v := range []float32{p.k.X, p.k.Y, p.k.Score} {
					sb.FieldBuilder(1 + f).(*array.Float32Builder).Append(v)
				}
			}
		}
		col := lb.NewArray()
		defer col.Release()
		check(t, col)
	})
	t.Run("not points", func(t *testing.T) {
		b := array.NewFloat32Builder(mem)
		defer b.Release()
		b.Append(1)
		col := b.NewArray()
		defer col.Release()
		if err := Keypoints(col, 0, func(string, Keypoint) {}); err == nil {
			t.Error("a float column read as keypoints")
		}
	})
}
