package job

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/asticode/go-astiav"
	"go.uber.org/goleak"
)

const media = "../testdata/media"

func TestMain(m *testing.M) {
	astiav.SetLogLevel(astiav.LogLevelQuiet)
	// Every pipeline test must leave no goroutine behind: decoders,
	// batchers, exporters, samplers and the work queue all end with Run.
	goleak.VerifyTestMain(m)
}

func touch(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func rel(t *testing.T, root string, paths []string) []string {
	out := []string{}
	for _, p := range paths {
		r, err := filepath.Rel(root, p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func TestDiscover(t *testing.T) {
	root := t.TempDir()
	for _, f := range []string{"a.mp4", "b.MKV", "notes.txt", "cam1/c.ts", "cam1/d_thumb.mp4", "cam2/deep/e.webm", "cam2/f.avi"} {
		touch(t, filepath.Join(root, f))
	}
	outside := t.TempDir()
	touch(t, filepath.Join(outside, "g.mov"))
	must(t, os.Symlink(outside, filepath.Join(root, "linked")))    // symlinked folder
	must(t, os.Symlink(root, filepath.Join(root, "cam1", "loop"))) // loop back to the root
	must(t, os.Symlink(filepath.Join(root, "a.mp4"), filepath.Join(root, "alias.mp4")))
	must(t, os.Symlink(filepath.Join(root, "nowhere.mp4"), filepath.Join(root, "broken.mp4")))

	tests := []struct {
		name string
		opts DiscoverOptions
		want []string
	}{
		{"default", DiscoverOptions{}, []string{"a.mp4", "alias.mp4", "b.MKV", "broken.mp4", "cam1/c.ts", "cam1/d_thumb.mp4", "cam2/deep/e.webm", "cam2/f.avi"}},
		{"ext", DiscoverOptions{Extensions: []string{".ts", "avi"}}, []string{"cam1/c.ts", "cam2/f.avi"}},
		{"exclude", DiscoverOptions{Exclude: []string{"*_thumb.mp4", "cam2/*"}}, []string{"a.mp4", "alias.mp4", "b.MKV", "broken.mp4", "cam1/c.ts", "cam2/deep/e.webm"}},
		{"include", DiscoverOptions{Include: []string{"cam2/*/*"}}, []string{"cam2/deep/e.webm"}},
		{"follow", DiscoverOptions{FollowSymlinks: true, Include: []string{"*.mov", "c.ts"}}, []string{"cam1/c.ts", "linked/g.mov"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			found, err := Discover(context.Background(), []string{root}, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if got := rel(t, root, found.Files); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v\nwant %v", got, tt.want)
			}
		})
	}
}

func TestDiscoverExplicitFilesAndErrors(t *testing.T) {
	root := t.TempDir()
	touch(t, filepath.Join(root, "clip.bin"))
	touch(t, filepath.Join(root, "v.mp4"))
	found, err := Discover(context.Background(), []string{filepath.Join(root, "clip.bin"), root, filepath.Join(root, "v.mp4")}, DiscoverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := rel(t, root, found.Files); !reflect.DeepEqual(got, []string{"clip.bin", "v.mp4"}) {
		t.Errorf("got %v: a file named directly is kept whatever its extension, each file once", got)
	}
	if _, err := Discover(context.Background(), []string{filepath.Join(root, "missing")}, DiscoverOptions{}); err == nil ||
		!strings.Contains(err.Error(), "missing") {
		t.Errorf("missing input: %v", err)
	}
	if _, err := Discover(context.Background(), []string{root}, DiscoverOptions{Include: []string{"[x"}}); err == nil {
		t.Error("a bad glob must be refused")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestProbeAllAndCache(t *testing.T) {
	found, err := Discover(context.Background(), []string{media}, DiscoverOptions{})
	must(t, err)
	if len(found.Files) < 15 {
		t.Fatalf("found %d files in %s", len(found.Files), media)
	}
	dir := t.TempDir()
	cache := OpenCache(dir)
	videos, err := ProbeAll(context.Background(), found.Files, ProbeOptions{Jobs: 4, Cache: cache})
	must(t, err)
	byName := map[string]Video{}
	for i, v := range videos {
		if v.Path != found.Files[i] {
			t.Fatalf("result %d is %s, want %s (order kept)", i, v.Path, found.Files[i])
		}
		if v.Cached {
			t.Errorf("%s cached on first probe", v.Path)
		}
		byName[filepath.Base(v.Path)] = v
	}
	if v := byName["h264.mp4"]; !v.OK() || v.Codec != "h264" || v.Frames != 50 || v.Size == 0 {
		t.Errorf("h264.mp4: %+v", v)
	}
	for _, bad := range []string{"empty.mp4", "random.mp4", "audio-only.mkv", "unknown-codec.mkv", "truncated.mp4"} {
		if v := byName[bad]; v.OK() || !strings.Contains(v.Error, bad) {
			t.Errorf("%s: error %q should name the file", bad, v.Error)
		}
	}
	must(t, cache.Save())

	// A second run reads everything from the cache, including media errors.
	cache2 := OpenCache(dir)
	again, err := ProbeAll(context.Background(), found.Files, ProbeOptions{Cache: cache2})
	must(t, err)
	for i, v := range again {
		if filepath.Base(v.Path) == "empty.mp4" {
			continue // size 0 is never cached: checking it costs one stat
		}
		if !v.Cached {
			t.Errorf("%s not served from the cache", v.Path)
		}
		if v.Info != videos[i].Info || v.Error != videos[i].Error {
			t.Errorf("%s: cached %+v differs from probed %+v", v.Path, v, videos[i])
		}
	}

	// A changed file is probed again.
	tmp := t.TempDir()
	clip := filepath.Join(tmp, "clip.mp4")
	b, err := os.ReadFile(filepath.Join(media, "h264.mp4"))
	must(t, err)
	must(t, os.WriteFile(clip, b, 0o644))
	c3 := OpenCache(tmp)
	_, err = ProbeAll(context.Background(), []string{clip}, ProbeOptions{Cache: c3})
	must(t, err)
	b2, err := os.ReadFile(filepath.Join(media, "hevc.mkv"))
	must(t, err)
	must(t, os.WriteFile(clip, b2, 0o644))
	must(t, os.Chtimes(clip, time.Now().Add(time.Hour), time.Now().Add(time.Hour)))
	v, err := ProbeAll(context.Background(), []string{clip}, ProbeOptions{Cache: c3})
	must(t, err)
	if v[0].Cached || v[0].Codec != "hevc" {
		t.Errorf("changed file: cached=%v codec=%s", v[0].Cached, v[0].Codec)
	}
}

func TestCacheIgnoresGarbage(t *testing.T) {
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, CacheFile), []byte("not a cache"), 0o644))
	if c := OpenCache(dir); c.Len() != 0 {
		t.Errorf("garbage cache loaded %d entries", c.Len())
	}
}

func TestProbeAllCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := ProbeAll(ctx, []string{filepath.Join(media, "h264.mp4")}, ProbeOptions{}); err == nil {
		t.Error("canceled probe returned no error")
	}
}

func TestParseShard(t *testing.T) {
	for _, s := range []string{"", "0/1", "2/3"} {
		if _, err := ParseShard(s); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
	for _, s := range []string{"3/3", "-1/2", "1", "a/b", "0/0"} {
		if _, err := ParseShard(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}

// synthetic returns n probed videos of varied length, size and codec.
func synthetic(n int) []Video {
	codecs := []string{"h264", "hevc", "vp9", "mpeg4"}
	sizes := [][2]int{{1920, 1080}, {1280, 720}, {3840, 2160}, {640, 480}}
	vs := make([]Video, n)
	for i := range vs {
		s := sizes[(i*7)%len(sizes)]
		vs[i] = Video{Path: fmt.Sprintf("/archive/cam%03d/%06d.mp4", i%97, i), Size: int64(1000 + i)}
		vs[i].Codec = codecs[(i*3)%len(codecs)]
		vs[i].Width, vs[i].Height = s[0], s[1]
		vs[i].Frames = int64(300 + (i*7919)%54000)
	}
	return vs
}

func TestPlanBalanceAndDeterminism(t *testing.T) {
	vs := synthetic(1000)
	vs = append(vs, Video{Path: "/archive/bad.mp4", Error: "probe /archive/bad.mp4: empty file (0 bytes)"})
	ws := Workers(nil, 4)
	p := MakePlan(vs, ws, Shard{})
	if p.Videos != 1000 || len(p.Skipped) != 1 || p.Skipped[0].Path != "/archive/bad.mp4" {
		t.Fatalf("videos %d skipped %v", p.Videos, p.Skipped)
	}
	if p.Imbalance > 0.01 {
		t.Errorf("imbalance %.4f over 1000 videos on 4 workers", p.Imbalance)
	}
	seen := map[string]int{}
	var frames int64
	for _, w := range p.Workers {
		for _, v := range w.Videos {
			seen[v.Path]++
			frames += v.Frames
		}
	}
	if len(seen) != 1000 || frames != p.Frames {
		t.Fatalf("%d distinct videos, %d frames of %d", len(seen), frames, p.Frames)
	}
	// Same input, shuffled: same plan.
	rev := append([]Video(nil), vs...)
	sort.Slice(rev, func(i, j int) bool { return rev[i].Path > rev[j].Path })
	q := MakePlan(rev, ws, Shard{})
	for i := range p.Workers {
		if !reflect.DeepEqual(p.Workers[i].Videos, q.Workers[i].Videos) {
			t.Fatalf("worker %d differs when the input order changes", i)
		}
	}
}

func TestPlanLPTExample(t *testing.T) {
	// Costs 7,6,5,4,3 (1080p H.264 frames) on 2 workers: LPT gives 7+4+3=14 / 6+5=11.
	var vs []Video
	for i, f := range []int64{3, 7, 5, 4, 6} {
		v := Video{Path: fmt.Sprintf("v%d.mp4", i)}
		v.Codec, v.Width, v.Height, v.Frames = "h264", 1920, 1080, f
		vs = append(vs, v)
	}
	p := MakePlan(vs, Workers(nil, 2), Shard{})
	if p.Workers[0].Cost != 14 || p.Workers[1].Cost != 11 {
		t.Errorf("costs %v / %v, want 14 / 11", p.Workers[0].Cost, p.Workers[1].Cost)
	}
	if want := 14/12.5 - 1; math.Abs(p.Imbalance-want) > 1e-12 {
		t.Errorf("imbalance %v, want %v", p.Imbalance, want)
	}
}

func TestShardsPartition(t *testing.T) {
	var paths []string
	for _, v := range synthetic(5000) {
		paths = append(paths, v.Path)
	}
	owner := map[string]int{}
	for i := 0; i < 3; i++ {
		s := Shard{Index: i, Count: 3}
		part := s.Filter(paths)
		if len(part) < 1500 || len(part) > 1850 {
			t.Errorf("shard %s has %d of 5000 files", s, len(part))
		}
		for _, p := range part {
			if prev, ok := owner[p]; ok {
				t.Fatalf("%s in shards %d and %d", p, prev, i)
			}
			owner[p] = i
		}
	}
	if len(owner) != len(paths) {
		t.Fatalf("%d of %d files in some shard", len(owner), len(paths))
	}
}

func TestCostNVDECFallback(t *testing.T) {
	v := Video{}
	v.Codec, v.Width, v.Height, v.Frames = "av1", 1920, 1080, 100
	gpuOK := Cost(&v, "gpu")
	v.NVDEC = "no: NVDEC does not decode av1"
	if got := Cost(&v, "gpu"); math.Abs(got-gpuOK*nvdecFallbackCost) > 1e-9 {
		t.Error("a file NVDEC cannot decode must cost a GPU worker more")
	}
}

// BenchmarkPlan100k plans 100,000 probed files across 8 GPUs.
func BenchmarkPlan100k(b *testing.B) {
	vs := synthetic(100000)
	devs := make([]Worker, 8)
	for i := range devs {
		devs[i] = Worker{ID: i, Kind: "gpu"}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		MakePlan(vs, devs, Shard{})
	}
}

// BenchmarkCache100k saves and loads a cache of 100,000 entries: the cost
// of re-probing an unchanged archive before any file is stat'ed.
func BenchmarkCache100k(b *testing.B) {
	dir := b.TempDir()
	c := OpenCache(dir)
	for i, v := range synthetic(100000) {
		c.put(v.Path, cacheEntry{Size: v.Size, ModTime: int64(i), Info: v.Info})
	}
	if err := c.Save(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if OpenCache(dir).Len() != 100000 {
			b.Fatal("short cache")
		}
	}
}
