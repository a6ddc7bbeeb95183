package decode

// NVDEC decoding through the cuvid API, loaded at run time with the
// ffnvcodec dlopen loader. The parser calls back into C; each displayed
// picture is mapped there (cuvidMapVideoFrame copies it into an output
// surface, out of reach of later decodes) and queued for Go, which unmaps it
// once used. All C memory is freed in dsb_nvdec_close.

//#cgo LDFLAGS: -ldl
//#include <stdlib.h>
//#include <string.h>
//#include <stdio.h>
//#include <ffnvcodec/dynlink_loader.h>
//
//#define DSB_QUEUE 16
//typedef struct { CUdeviceptr ptr; unsigned int pitch; long long ts; } dsb_frame;
//typedef struct {
//	CudaFunctions *cu; CuvidFunctions *cv; CUcontext ctx; CUvideoctxlock lock;
//	CUvideoparser parser; CUvideodecoder dec; cudaVideoCodec codec;
//	int width, height, surface_h, coded_w, coded_h, max_w, max_h, depth, out16, chroma;
//	int fresh; /* no picture of the current file yet: the decoder may be re-created */
//	int surfaces; /* decode surfaces the decoder was created with */
//	dsb_frame q[DSB_QUEUE]; int qh, qn;
//	long long decode_errors; int fatal; char msg[256];
//	CUstream stream; /* where mapped frames are post-processed */
//} dsb_nvdec;
//
//static int CUDAAPI dsb_seq(void *u, CUVIDEOFORMAT *f) {
//	dsb_nvdec *d = u;
//	int surfaces = f->min_num_decode_surfaces + 4;
//	if (surfaces > 32) surfaces = 32;
//	int dw = f->display_area.right - f->display_area.left, dh = f->display_area.bottom - f->display_area.top;
//	if (d->dec) {
//		int same = (int)f->coded_width == d->coded_w && (int)f->coded_height == d->coded_h && dw == d->width && dh == d->height &&
//		    (int)f->chroma_format == d->chroma && f->bit_depth_luma_minus8 + 8 == d->depth;
//		/* A stream may need more decode surfaces than the one the decoder
//		   was made for (B-frames after a file without): the parser would
//		   decode into surfaces the decoder lacks, and pictures be lost. */
//		if (same && surfaces <= d->surfaces) { d->fresh = 0; return d->surfaces; }
//		if (d->fresh) { /* a new file of another format: start over */
//			d->cu->cuCtxPushCurrent(d->ctx); d->cv->cuvidDestroyDecoder(d->dec); d->cu->cuCtxPopCurrent(NULL);
//			d->dec = NULL;
//			return dsb_seq(u, f);
//		}
//		// Frames of the old sequence may still wait for display at the new
//		// size: the caller redoes such a file on the CPU.
//		if (same) snprintf(d->msg, sizeof d->msg, "needs %d decode surfaces mid-stream, the decoder has %d", surfaces, d->surfaces);
//		else snprintf(d->msg, sizeof d->msg, "resolution changed mid-stream from %dx%d to %dx%d", d->width, d->height, dw, dh);
//		d->fatal = 2; return 0;
//	}
//	CUVIDDECODECAPS caps; memset(&caps, 0, sizeof caps);
//	caps.eCodecType = f->codec; caps.eChromaFormat = f->chroma_format; caps.nBitDepthMinus8 = f->bit_depth_luma_minus8;
//	d->cu->cuCtxPushCurrent(d->ctx);
//	CUresult r = d->cv->cuvidGetDecoderCaps(&caps);
//	d->cu->cuCtxPopCurrent(NULL);
//	if (r || !caps.bIsSupported) {
//		snprintf(d->msg, sizeof d->msg, "NVDEC cannot decode this stream (chroma format %d, %d-bit)", (int)f->chroma_format, f->bit_depth_luma_minus8 + 8);
//		d->fatal = 1; return 0;
//	}
//	if (f->coded_width > caps.nMaxWidth || f->coded_height > caps.nMaxHeight || f->coded_width < caps.nMinWidth || f->coded_height < caps.nMinHeight) {
//		snprintf(d->msg, sizeof d->msg, "NVDEC decodes %ux%u to %ux%u, stream is %ux%u", caps.nMinWidth, caps.nMinHeight, caps.nMaxWidth, caps.nMaxHeight, f->coded_width, f->coded_height);
//		d->fatal = 1; return 0;
//	}
//	CUVIDDECODECREATEINFO ci; memset(&ci, 0, sizeof ci);
//	ci.CodecType = f->codec; ci.ChromaFormat = f->chroma_format;
//	d->out16 = f->bit_depth_luma_minus8 > 0;
//	ci.OutputFormat = d->out16 ? cudaVideoSurfaceFormat_P016 : cudaVideoSurfaceFormat_NV12;
//	ci.bitDepthMinus8 = f->bit_depth_luma_minus8;
//	ci.DeinterlaceMode = f->progressive_sequence ? cudaVideoDeinterlaceMode_Weave : cudaVideoDeinterlaceMode_Adaptive;
//	ci.ulWidth = f->coded_width; ci.ulHeight = f->coded_height;
//	ci.ulMaxWidth = f->coded_width; ci.ulMaxHeight = f->coded_height;
//	ci.ulTargetWidth = dw; ci.ulTargetHeight = dh;
//	ci.ulNumDecodeSurfaces = surfaces;
//	ci.ulNumOutputSurfaces = DSB_QUEUE / 2;
//	ci.ulCreationFlags = cudaVideoCreate_PreferCUVID;
//	ci.vidLock = d->lock;
//	ci.display_area.left = f->display_area.left; ci.display_area.top = f->display_area.top;
//	ci.display_area.right = f->display_area.right; ci.display_area.bottom = f->display_area.bottom;
//	d->cu->cuCtxPushCurrent(d->ctx);
//	r = d->cv->cuvidCreateDecoder(&d->dec, &ci);
//	d->cu->cuCtxPopCurrent(NULL);
//	if (r) { snprintf(d->msg, sizeof d->msg, "cuvidCreateDecoder: error %d", (int)r); d->fatal = 1; return 0; }
//	d->coded_w = d->max_w = f->coded_width; d->coded_h = d->max_h = f->coded_height;
//	d->width = dw; d->height = dh; d->surface_h = dh; d->depth = f->bit_depth_luma_minus8 + 8;
//	d->chroma = f->chroma_format; d->fresh = 0; d->surfaces = surfaces;
//	return surfaces;
//}
//
//static int CUDAAPI dsb_decode(void *u, CUVIDPICPARAMS *p) {
//	dsb_nvdec *d = u;
//	if (!d->dec) return 0;
//	d->cu->cuCtxPushCurrent(d->ctx);
//	CUresult r = d->cv->cuvidDecodePicture(d->dec, p);
//	d->cu->cuCtxPopCurrent(NULL);
//	if (r) d->decode_errors++;
//	return 1;
//}
//
//static int CUDAAPI dsb_display(void *u, CUVIDPARSERDISPINFO *i) {
//	dsb_nvdec *d = u;
//	if (!i) return 1;
//	if (d->qn >= DSB_QUEUE / 2) { snprintf(d->msg, sizeof d->msg, "display queue full"); d->fatal = 1; return 0; }
//	CUVIDPROCPARAMS pp; memset(&pp, 0, sizeof pp);
//	pp.progressive_frame = i->progressive_frame; pp.top_field_first = i->top_field_first;
//	pp.unpaired_field = i->repeat_first_field < 0;
//	pp.output_stream = d->stream;
//	CUdeviceptr ptr = 0; unsigned int pitch = 0;
//	d->cu->cuCtxPushCurrent(d->ctx);
//	CUresult r = d->cv->cuvidMapVideoFrame(d->dec, i->picture_index, &ptr, &pitch, &pp);
//	d->cu->cuCtxPopCurrent(NULL);
//	if (r) { d->decode_errors++; return 1; }
//	int slot = (d->qh + d->qn) % DSB_QUEUE;
//	d->q[slot].ptr = ptr; d->q[slot].pitch = pitch; d->q[slot].ts = i->timestamp;
//	d->qn++;
//	return 1;
//}
//
//static CUresult dsb_parser(dsb_nvdec *d) {
//	CUVIDPARSERPARAMS pp; memset(&pp, 0, sizeof pp);
//	pp.CodecType = d->codec; pp.ulMaxNumDecodeSurfaces = 1; pp.ulMaxDisplayDelay = 2;
//	pp.ulClockRate = 0; pp.pUserData = d;
//	pp.pfnSequenceCallback = dsb_seq; pp.pfnDecodePicture = dsb_decode; pp.pfnDisplayPicture = dsb_display;
//	return d->cv->cuvidCreateVideoParser(&d->parser, &pp);
//}
//
//static int dsb_nvdec_open(void *ctx, int codec, dsb_nvdec **out, char *err, int errlen) {
//	dsb_nvdec *d = calloc(1, sizeof *d);
//	d->ctx = ctx; d->codec = codec; d->fresh = 1;
//	if (cuda_load_functions(&d->cu, NULL) < 0) { snprintf(err, errlen, "cannot load libcuda.so.1"); free(d); return -1; }
//	if (cuvid_load_functions(&d->cv, NULL) < 0) { snprintf(err, errlen, "cannot load libnvcuvid.so.1"); cuda_free_functions(&d->cu); free(d); return -1; }
//	CUresult r = d->cv->cuvidCtxLockCreate(&d->lock, ctx);
//	if (r) { snprintf(err, errlen, "cuvidCtxLockCreate: error %d", (int)r); goto fail; }
//	r = dsb_parser(d);
//	if (r) { snprintf(err, errlen, "cuvidCreateVideoParser: error %d", (int)r); goto fail; }
//	*out = d;
//	return 0;
//fail:
//	if (d->lock) d->cv->cuvidCtxLockDestroy(d->lock);
//	cuvid_free_functions(&d->cv); cuda_free_functions(&d->cu); free(d);
//	return -1;
//}
//
//static int dsb_nvdec_feed(dsb_nvdec *d, const unsigned char *data, int size, long long ts, int eos) {
//	CUVIDSOURCEDATAPACKET p; memset(&p, 0, sizeof p);
//	p.payload = data; p.payload_size = size; p.timestamp = ts;
//	p.flags = CUVID_PKT_TIMESTAMP | CUVID_PKT_ENDOFPICTURE | (eos ? CUVID_PKT_ENDOFSTREAM : 0);
//	if (!data) p.flags = CUVID_PKT_ENDOFSTREAM;
//	CUresult r = d->cv->cuvidParseVideoData(d->parser, &p);
//	if (r && !d->fatal) { snprintf(d->msg, sizeof d->msg, "cuvidParseVideoData: error %d", (int)r); d->fatal = 1; }
//	return d->fatal;
//}
//
//static int dsb_nvdec_pop(dsb_nvdec *d, dsb_frame *f) {
//	if (d->qn == 0) return 0;
//	*f = d->q[d->qh]; d->qh = (d->qh + 1) % DSB_QUEUE; d->qn--;
//	return 1;
//}
//
//static void dsb_nvdec_unmap(dsb_nvdec *d, CUdeviceptr p) {
//	d->cu->cuCtxPushCurrent(d->ctx);
//	d->cv->cuvidUnmapVideoFrame(d->dec, p);
//	d->cu->cuCtxPopCurrent(NULL);
//}
//
//// dsb_nvdec_reset readies d for another file of the same codec: queued
//// frames are dropped and the parser replaced; the hardware decoder stays,
//// to be re-created only if the new file's format differs.
//static int dsb_nvdec_reset(dsb_nvdec *d) {
//	dsb_frame f;
//	while (dsb_nvdec_pop(d, &f)) dsb_nvdec_unmap(d, f.ptr);
//	if (d->parser) { d->cv->cuvidDestroyVideoParser(d->parser); d->parser = NULL; }
//	d->fatal = 0; d->msg[0] = 0; d->decode_errors = 0; d->fresh = 1;
//	return (int)dsb_parser(d);
//}
//
//static void dsb_nvdec_close(dsb_nvdec *d) {
//	if (!d) return;
//	dsb_frame f;
//	while (dsb_nvdec_pop(d, &f)) dsb_nvdec_unmap(d, f.ptr);
//	if (d->parser) d->cv->cuvidDestroyVideoParser(d->parser);
//	if (d->dec) { d->cu->cuCtxPushCurrent(d->ctx); d->cv->cuvidDestroyDecoder(d->dec); d->cu->cuCtxPopCurrent(NULL); }
//	if (d->lock) d->cv->cuvidCtxLockDestroy(d->lock);
//	cuvid_free_functions(&d->cv); cuda_free_functions(&d->cu);
//	free(d);
//}
import "C"

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"unsafe"

	"github.com/asticode/go-astiav"
)

// ErrNVDECUnsupported means NVDEC cannot decode this file; decode it on the
// CPU instead. The error says why.
var ErrNVDECUnsupported = errors.New("not decodable by NVDEC")

// GPUFormat is the layout of a GPUFrame.
type GPUFormat int

// GPU frame layouts.
const (
	GPUNV12 GPUFormat = iota // 8-bit Y plane, then interleaved UV at half resolution
	GPUP016                  // 16-bit samples (10/12-bit data in the high bits), same planes
)

// GPUFrame is a decoded picture in GPU memory, valid until the next call of
// NVDEC.Next or Close.
type GPUFrame struct {
	Index    int64
	PTS      float64
	Ptr      uint64 // device address of the luma plane
	Pitch    int    // bytes per row of both planes
	Width    int    // picture size as coded (before rotation)
	Height   int
	ChromaAt uint64 // device address of the chroma plane
	Format   GPUFormat
	Rotation int // clockwise degrees to show the picture upright
}

// nvdecCodec is a cudaVideoCodec value and the bitstream filter its packets
// go through ("" for none).
type nvdecCodec struct {
	codec int
	bsf   string
}

// nvdecCodecs maps FFmpeg codec names to cudaVideoCodec and the bitstream
// filter that turns the container's packets into what the parser reads.
// VP8 and VP9 decode on NVDEC too, but the parser's timestamps go astray at
// VP9's hidden frames; until that is handled they decode on the CPU.
var nvdecCodecs = map[string]nvdecCodec{
	"h264": {4, "h264_mp4toannexb"},
	"hevc": {8, "hevc_mp4toannexb"},
}

// NVDEC decodes one video file on a GPU's hardware decoder.
type NVDEC struct {
	path   string
	in     *input
	bsf    *astiav.BitStreamFilterContext
	pkt    *astiav.Packet
	d      *C.dsb_nvdec
	samp   sampler
	rot    int
	clock  frameClock
	unwrap tsUnwrap
	seq    int64 // packets given to the parser
	held   C.CUdeviceptr
	loop   bool
	eof    bool
	stats  Stats
	closed bool
}

// OpenNVDEC opens path for decoding on the GPU whose CUDA context is cuCtx
// (gpu.CUDA.Context). Errors wrapping ErrNVDECUnsupported mean the file
// should be decoded on the CPU.
func OpenNVDEC(ctx context.Context, path string, cuCtx unsafe.Pointer, opts Options) (*NVDEC, error) {
	in, c, err := openForNVDEC(ctx, path, opts)
	if err != nil {
		return nil, err
	}
	d := &NVDEC{}
	d.start(path, in, opts)
	if err := d.init(c.codec, c.bsf, cuCtx); err != nil {
		d.Close()
		return nil, fileErr("open", path, err)
	}
	return d, nil
}

func (d *NVDEC) init(codec int, bsfName string, cuCtx unsafe.Pointer) error {
	d.pkt = astiav.AllocPacket()
	if bsfName != "" {
		if err := d.initBSF(bsfName); err != nil {
			return err
		}
	}
	errbuf := make([]byte, 256)
	var dec *C.dsb_nvdec
	if C.dsb_nvdec_open(cuCtx, C.int(codec), &dec, (*C.char)(unsafe.Pointer(&errbuf[0])), C.int(len(errbuf))) != 0 {
		return fmt.Errorf("%w: %s", ErrNVDECUnsupported, C.GoString((*C.char)(unsafe.Pointer(&errbuf[0]))))
	}
	d.d = dec
	return nil
}

// openForNVDEC opens path (from its probe facts when given) and checks that
// NVDEC takes its codec.
func openForNVDEC(ctx context.Context, path string, opts Options) (*input, nvdecCodec, error) {
	var in *input
	var err error
	if opts.Probed != nil {
		in, err = openProbed(ctx, path, opts.Probed)
	} else {
		in, err = openInput(ctx, path)
	}
	if err != nil {
		return nil, nvdecCodec{}, fileErr("open", path, err)
	}
	c, ok := nvdecCodecs[in.info.Codec]
	if !ok {
		in.close()
		return nil, c, fileErr("open", path, fmt.Errorf("%w: codec %s", ErrNVDECUnsupported, in.info.Codec))
	}
	return in, c, nil
}

// start sets up the per-file state of d for in.
func (d *NVDEC) start(path string, in *input, opts Options) {
	d.path, d.in, d.samp, d.loop = path, in, newSampler(opts), opts.Loop
	d.clock = newFrameClock(in, opts.AssumeFPS)
	d.unwrap = newTSUnwrap(d.clock.tb)
	if !opts.NoAutoRotate {
		d.rot = in.info.Rotation
	}
}

// ErrNVDECCodecChanged is returned by Reopen for a file of another codec:
// close the decoder and open a new one.
var ErrNVDECCodecChanged = errors.New("file of another codec")

// Reopen makes d decode another file, keeping the hardware decoder when the
// file has the same codec, chroma format, bit depth and size: creating a
// decoder stalls every decoder on the GPU, which archives of short clips
// would pay for each file. A failure leaves d unusable: Close it.
func (d *NVDEC) Reopen(ctx context.Context, path string, opts Options) error {
	in, c, err := openForNVDEC(ctx, path, opts)
	if err != nil {
		return err
	}
	if C.int(c.codec) != C.int(d.d.codec) {
		in.close()
		return fileErr("open", path, ErrNVDECCodecChanged)
	}
	d.release()
	if d.bsf != nil {
		d.bsf.Free()
		d.bsf = nil
	}
	d.in.close()
	*d = NVDEC{pkt: d.pkt, d: d.d}
	d.start(path, in, opts)
	if r := C.dsb_nvdec_reset(d.d); r != 0 {
		return fileErr("open", path, fmt.Errorf("cuvidCreateVideoParser: error %d", int(r)))
	}
	if c.bsf != "" {
		if err := d.initBSF(c.bsf); err != nil {
			return fileErr("open", path, err)
		}
	}
	return nil
}

// SetStream makes NVDEC prepare mapped frames on the CUDA stream s (a
// CUstream), so that work queued after Next on the same stream sees the
// whole frame. Without it frames are prepared on the legacy default stream,
// which non-blocking streams do not wait for.
func (d *NVDEC) SetStream(s unsafe.Pointer) { d.d.stream = C.CUstream(s) }

// initBSF sets up the bitstream filter for the current input.
func (d *NVDEC) initBSF(name string) error {
	f := astiav.FindBitStreamFilterByName(name)
	if f == nil {
		return fmt.Errorf("%w: FFmpeg lacks the %s filter", ErrNVDECUnsupported, name)
	}
	bsf, err := astiav.AllocBitStreamFilterContext(f)
	if err != nil {
		return err
	}
	d.bsf = bsf
	if err := d.in.stream.CodecParameters().Copy(bsf.InputCodecParameters()); err != nil {
		return err
	}
	bsf.SetInputTimeBase(d.in.stream.TimeBase())
	if err := bsf.Initialize(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// Info describes the stream.
func (d *NVDEC) Info() Info { return d.in.info }

// Stats returns the counters so far.
func (d *NVDEC) Stats() Stats {
	s := d.stats
	if d.d != nil {
		s.CorruptPackets += int64(d.d.decode_errors)
	}
	return s
}

// Next returns the next frame sampling keeps, in GPU memory. The previous
// frame is released. It returns io.EOF after the last frame.
func (d *NVDEC) Next(ctx context.Context, f *GPUFrame) error {
	d.release()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var fr C.dsb_frame
		if C.dsb_nvdec_pop(d.d, &fr) != 0 {
			idx, pts := d.clock.frame(d.unwrap.out(int64(fr.ts)))
			d.stats.frame(pts)
			keep, pastEnd := d.samp.keep(idx, pts)
			if pastEnd {
				C.dsb_nvdec_unmap(d.d, fr.ptr)
				d.eof = true
				d.drain()
				return io.EOF
			}
			if !keep {
				C.dsb_nvdec_unmap(d.d, fr.ptr)
				continue
			}
			d.held = fr.ptr
			d.stats.Emitted++
			*f = GPUFrame{Index: idx, PTS: pts, Ptr: uint64(fr.ptr), Pitch: int(fr.pitch),
				Width: int(d.d.width), Height: int(d.d.height), Rotation: d.rot,
				ChromaAt: uint64(fr.ptr) + uint64(fr.pitch)*uint64(d.d.surface_h)}
			if d.d.out16 != 0 {
				f.Format = GPUP016
			}
			return nil
		}
		if d.eof {
			if d.stats.Decoded == 0 {
				return fileErr("decode", d.path, fmt.Errorf("%w (%d packets read)", ErrNoFrames, d.stats.Packets))
			}
			return io.EOF
		}
		if err := d.feed(); err != nil {
			return fileErr("decode", d.path, err)
		}
	}
}

// drain unmaps whatever the parser still queues.
func (d *NVDEC) drain() {
	var fr C.dsb_frame
	for C.dsb_nvdec_pop(d.d, &fr) != 0 {
		C.dsb_nvdec_unmap(d.d, fr.ptr)
	}
}

func (d *NVDEC) release() {
	if d.held != 0 {
		C.dsb_nvdec_unmap(d.d, d.held)
		d.held = 0
	}
}

// feed reads the next packet of the video stream and gives it to the
// parser, or ends the stream.
func (d *NVDEC) feed() error {
	for {
		err := d.in.fc.ReadFrame(d.pkt)
		if errors.Is(err, astiav.ErrEof) && d.loop {
			if err := d.in.fc.SeekFrame(d.in.info.StreamIndex, math.MinInt64+1, astiav.NewSeekFlags(astiav.SeekFlagBackward)); err != nil {
				return fmt.Errorf("rewind: %w", err)
			}
			continue
		}
		if errors.Is(err, astiav.ErrEof) {
			d.eof = true
			return d.send(nil, 0, true)
		}
		if err != nil {
			if errors.Is(err, astiav.ErrInvaliddata) {
				d.stats.CorruptPackets++
				continue
			}
			d.eof = true
			if d.stats.Packets > 0 {
				return d.send(nil, 0, true) // truncated: keep what decoded
			}
			return fmt.Errorf("%w: reading packet: %v", ErrTruncated, err)
		}
		if d.pkt.StreamIndex() != d.in.info.StreamIndex {
			d.pkt.Unref()
			continue
		}
		d.stats.Packets++
		if d.bsf == nil {
			err := d.sendPacket()
			d.pkt.Unref()
			return err
		}
		if err := d.bsf.SendPacket(d.pkt); err != nil {
			d.pkt.Unref()
			d.stats.CorruptPackets++
			continue
		}
		d.pkt.Unref()
		for {
			err := d.bsf.ReceivePacket(d.pkt)
			if errors.Is(err, astiav.ErrEagain) || errors.Is(err, astiav.ErrEof) {
				break
			}
			if err != nil {
				d.stats.CorruptPackets++
				break
			}
			serr := d.sendPacket()
			d.pkt.Unref()
			if serr != nil {
				return serr
			}
		}
		return nil
	}
}

// sendPacket gives d.pkt to the parser with the timestamp the clock times
// its file by (frameClock says why), or fails with ErrNVDECUnsupported for
// a packet that lacks it.
func (d *NVDEC) sendPacket() error {
	ts, ok := d.clock.packet(d.pkt.Pts(), d.pkt.Dts())
	if !ok {
		return fmt.Errorf("%w: packet %d has no timestamp where the file's first had one", ErrNVDECUnsupported, d.seq)
	}
	if ts == astiav.NoPtsValue {
		ts = d.seq // untimed stream: any increasing value keeps decode order
	}
	d.seq++
	return d.send(d.pkt.Data(), d.unwrap.in(ts, d.pkt.Flags().Has(astiav.PacketFlagKey)), false)
}

// send gives data to the parser with the timestamp ts, or ends the stream.
func (d *NVDEC) send(data []byte, ts int64, eos bool) error {
	var p *C.uchar
	if len(data) > 0 {
		cdata := C.CBytes(data)
		defer C.free(cdata)
		p = (*C.uchar)(cdata)
	}
	e := C.int(0)
	if eos {
		e = 1
	}
	if C.dsb_nvdec_feed(d.d, p, C.int(len(data)), C.longlong(ts), e) != 0 {
		if d.d.dec == nil || d.d.fatal == 2 { // the CPU can take over this file
			return fmt.Errorf("%w: %s", ErrNVDECUnsupported, C.GoString(&d.d.msg[0]))
		}
		return fmt.Errorf("nvdec: %s", C.GoString(&d.d.msg[0]))
	}
	return nil
}

// Close releases the decoder, the parser and the demuxer.
func (d *NVDEC) Close() error {
	if d.closed {
		return nil
	}
	d.closed = true
	if d.d != nil {
		d.release()
		C.dsb_nvdec_close(d.d)
		d.d = nil
	}
	if d.bsf != nil {
		d.bsf.Free()
	}
	if d.pkt != nil {
		d.pkt.Free()
	}
	if d.in != nil {
		d.in.close()
	}
	return nil
}
