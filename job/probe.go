package job

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/dsbatch/dsbatch/decode"
	"github.com/dsbatch/dsbatch/gpu"
)

// Video is one discovered file and what probing found.
type Video struct {
	Path    string    `json:"path"`
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mtime"`
	decode.Info
	// NVDEC is "yes", or "no: REASON", when a GPU was checked; "" otherwise.
	NVDEC  string `json:"nvdec,omitempty"`
	Error  string `json:"error,omitempty"`
	Cached bool   `json:"-"`
}

// OK reports whether the file was probed without error.
func (v *Video) OK() bool { return v.Error == "" }

// ProbeOptions tune ProbeAll.
type ProbeOptions struct {
	Jobs        int            // files probed at once; 0 means the number of CPUs
	Cache       *Cache         // nil: no cache
	CountFrames bool           // count packets when the container stores no frame count
	AssumeFPS   float64        // frame rate of raw streams (0: their headers', else 25); see decode.Info.WithAssumedFPS
	Decoders    *gpu.Decoders  // when set, check that NVDEC decodes each file
	Progress    func(done int) // called after each file, from any goroutine
}

// ProbeAll probes paths in parallel and returns one Video per path, in the
// same order. A file that cannot be probed gets its error in Video.Error;
// only cancellation stops the whole call.
func ProbeAll(ctx context.Context, paths []string, opts ProbeOptions) ([]Video, error) {
	jobs := opts.Jobs
	if jobs <= 0 {
		jobs = runtime.NumCPU()
	}
	out := make([]Video, len(paths))
	parent := ctx
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(jobs)
	var done atomic.Int64
	for i, p := range paths {
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error {
			if err := ctx.Err(); err != nil {
				return err
			}
			out[i] = probeOne(ctx, p, opts)
			out[i].Info = out[i].Info.WithAssumedFPS(opts.AssumeFPS)
			if errors.Is(ctx.Err(), context.Canceled) {
				return ctx.Err()
			}
			n := done.Add(1)
			if opts.Progress != nil {
				opts.Progress(int(n))
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if err := parent.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

func probeOne(ctx context.Context, path string, opts ProbeOptions) Video {
	v := Video{Path: path}
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	if st, err := os.Stat(path); err == nil {
		v.Size, v.ModTime = st.Size(), st.ModTime()
	}
	mod := v.ModTime.UnixNano()
	if opts.Cache != nil && v.Size > 0 {
		if e, ok := opts.Cache.get(abs, v.Size, mod); ok && (!opts.CountFrames || !e.Info.Estimated || e.Err != "") {
			v.Info, v.Error, v.Cached = e.Info, e.Err, true
			checkNVDEC(&v, opts.Decoders)
			return v
		}
	}
	info, err := decode.Probe(ctx, path, decode.ProbeOptions{CountFrames: opts.CountFrames})
	if err != nil {
		v.Error = err.Error()
		if opts.Cache != nil && v.Size > 0 && cacheable(err) {
			opts.Cache.put(abs, cacheEntry{Size: v.Size, ModTime: mod, Err: v.Error})
		}
		return v
	}
	v.Info = info
	if opts.Cache != nil {
		opts.Cache.put(abs, cacheEntry{Size: v.Size, ModTime: mod, Info: info})
	}
	checkNVDEC(&v, opts.Decoders)
	return v
}

func checkNVDEC(v *Video, d *gpu.Decoders) {
	if d == nil || !v.OK() {
		return
	}
	if err := d.Check(v.Codec, v.Chroma, v.BitDepth, v.Width, v.Height); err != nil {
		v.NVDEC = "no: " + err.Error()
		return
	}
	v.NVDEC = "yes"
}
