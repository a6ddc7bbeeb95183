package main

// The only cgo of the generator: go-astiav v0.16 can read a frame's pixels
// but not write them.

//#cgo pkg-config: libavutil
//#include <libavutil/frame.h>
//#include <libavutil/imgutils.h>
//
//static int dsb_fill(AVFrame *f, const uint8_t *buf, int size) {
//	uint8_t *data[4]; int ls[4];
//	int n = av_image_fill_arrays(data, ls, buf, f->format, f->width, f->height, 1);
//	if (n < 0 || n > size) return -1;
//	av_image_copy(f->data, f->linesize, (const uint8_t **)data, ls, f->format, f->width, f->height);
//	return 0;
//}
import "C"

import (
	"errors"
	"unsafe"

	"github.com/asticode/go-astiav"
)

// fillFrame copies tightly packed pixels into an allocated frame.
func fillFrame(f *astiav.Frame, pix []byte) error {
	if C.dsb_fill((*C.AVFrame)(f.UnsafePointer()), (*C.uint8_t)(unsafe.Pointer(&pix[0])), C.int(len(pix))) < 0 {
		return errors.New("pixel buffer does not match the frame")
	}
	return nil
}
