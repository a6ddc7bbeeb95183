package decode

// This file holds the few FFmpeg calls go-astiav v0.16 does not expose.
// They take and return plain values; no C memory outlives a call.

//#cgo pkg-config: libavformat libavcodec libavutil
//#include <stdlib.h>
//#include <string.h>
//#include <libavformat/avformat.h>
//#include <libavcodec/avcodec.h>
//#include <libavutil/frame.h>
//#include <libavutil/pixdesc.h>
//
//static int dsb_pixfmt_depth(int f) {
//	const AVPixFmtDescriptor *d = av_pix_fmt_desc_get((enum AVPixelFormat)f);
//	return d ? d->comp[0].depth : 0;
//}
//static int dsb_pixfmt_chroma(int f, int *w, int *h) {
//	const AVPixFmtDescriptor *d = av_pix_fmt_desc_get((enum AVPixelFormat)f);
//	if (!d) return -1;
//	*w = d->log2_chroma_w; *h = d->log2_chroma_h;
//	return d->nb_components;
//}
//static int dsb_frame_damaged(const AVFrame *f) {
//	return f->decode_error_flags != 0 || (f->flags & AV_FRAME_FLAG_CORRUPT);
//}
//static size_t dsb_demuxer_names(char *buf, size_t size) {
//	void *it = NULL;
//	const AVInputFormat *f;
//	size_t n = 0;
//	while ((f = av_demuxer_iterate(&it))) {
//		size_t l = strlen(f->name);
//		if (n + l + 1 <= size) {
//			memcpy(buf + n, f->name, l);
//			buf[n + l] = '\n';
//		}
//		n += l + 1;
//	}
//	return n;
//}
//static const char *dsb_probe_format(const char *filename, unsigned char *buf, int size) {
//	AVProbeData pd = { .filename = filename, .buf = buf, .buf_size = size };
//	const AVInputFormat *f = av_probe_input_format(&pd, 1);
//	return f ? f->name : NULL;
//}
import "C"

import (
	"strings"
	"unsafe"

	"github.com/asticode/go-astiav"
)

// profileName returns FFmpeg's name for a codec profile ("High", "Main 10"),
// or "" when the codec has no such profile.
func profileName(id astiav.CodecID, profile astiav.Profile) string {
	s := C.avcodec_profile_name(C.enum_AVCodecID(id), C.int(profile))
	if s == nil {
		return ""
	}
	return C.GoString(s)
}

// pixelFormatDepth returns the bit depth of the first component of f.
func pixelFormatDepth(f astiav.PixelFormat) int {
	return int(C.dsb_pixfmt_depth(C.int(f)))
}

// chromaSubsampling returns "4:2:0", "4:2:2", "4:4:4", "4:0:0" (grey) or "".
func chromaSubsampling(f astiav.PixelFormat) string {
	var w, h C.int
	n := C.dsb_pixfmt_chroma(C.int(f), &w, &h)
	switch {
	case n < 0:
		return ""
	case n <= 2:
		return "4:0:0"
	case w == 1 && h == 1:
		return "4:2:0"
	case w == 1 && h == 0:
		return "4:2:2"
	case w == 0 && h == 0:
		return "4:4:4"
	}
	return ""
}

// frameDamaged reports whether the decoder concealed errors in f
// (AVFrame.decode_error_flags), which go-astiav v0.16 does not expose.
func frameDamaged(f *astiav.Frame) bool {
	return C.dsb_frame_damaged((*C.AVFrame)(f.UnsafePointer())) != 0
}

// demuxers returns the names of every demuxer in the linked FFmpeg, each
// as FFmpeg gives it (a comma-separated list of aliases: "mov,mp4,m4a,…").
func demuxers() []string {
	buf := make([]byte, 8192)
	for {
		n := int(C.dsb_demuxer_names((*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf))))
		if n <= len(buf) {
			return strings.Fields(string(buf[:n]))
		}
		buf = make([]byte, n)
	}
}

// probeFormat returns the name of the demuxer FFmpeg picks for a file whose
// name is filename and whose first bytes are head, or "" if none fits.
func probeFormat(filename string, head []byte) string {
	// FFmpeg reads up to AVPROBE_PADDING_SIZE zero bytes past the data.
	buf := make([]byte, len(head)+C.AVPROBE_PADDING_SIZE)
	copy(buf, head)
	name := C.CString(filename)
	defer C.free(unsafe.Pointer(name))
	f := C.dsb_probe_format(name, (*C.uchar)(unsafe.Pointer(&buf[0])), C.int(len(head)))
	if f == nil {
		return ""
	}
	return strings.SplitN(C.GoString(f), ",", 2)[0]
}
