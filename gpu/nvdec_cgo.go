package gpu

// The CUDA driver and NVDEC (cuvid) libraries are opened with the dlopen
// loader of NVIDIA's codec headers (Debian's libffmpeg-nvenc-dev), so no
// CUDA library is needed to build or link. Everything allocated here is
// freed before the function returns.

//#cgo LDFLAGS: -ldl
//#include <stdlib.h>
//#include <string.h>
//#include <ffnvcodec/dynlink_loader.h>
//
//typedef struct { int codec, chroma, depth, supported, engines, minw, minh, maxw, maxh, maxmb; } dsb_caps;
//
//// dsb_query fills caps[i] for each (codec, chroma, depth) asked, on the CUDA
//// device whose UUID is the 16 bytes uuid. It returns 0, or a negative step
//// number with *cuerr set to the failing CUresult.
//static int dsb_query(const unsigned char *uuid, dsb_caps *caps, int n, int *cuerr) {
//	CudaFunctions *cu = NULL; CuvidFunctions *cv = NULL;
//	int rc = 0; CUdevice dev = -1; CUcontext ctx = NULL; int count = 0;
//	*cuerr = 0;
//	if (cuda_load_functions(&cu, NULL) < 0) { rc = -1; goto out; }
//	if (cuvid_load_functions(&cv, NULL) < 0) { rc = -2; goto out; }
//	if ((*cuerr = cu->cuInit(0)) != 0) { rc = -3; goto out; }
//	if ((*cuerr = cu->cuDeviceGetCount(&count)) != 0) { rc = -4; goto out; }
//	for (int i = 0; i < count; i++) {
//		CUdevice d; CUuuid u;
//		if (cu->cuDeviceGet(&d, i) != 0 || cu->cuDeviceGetUuid(&u, d) != 0) continue;
//		if (memcmp(u.bytes, uuid, 16) == 0) { dev = d; break; }
//	}
//	if (dev < 0) { rc = -5; goto out; }
//	if ((*cuerr = cu->cuDevicePrimaryCtxRetain(&ctx, dev)) != 0) { rc = -6; goto out; }
//	if ((*cuerr = cu->cuCtxPushCurrent(ctx)) != 0) { rc = -7; cu->cuDevicePrimaryCtxRelease(dev); goto out; }
//	for (int i = 0; i < n; i++) {
//		CUVIDDECODECAPS c; memset(&c, 0, sizeof c);
//		c.eCodecType = caps[i].codec; c.eChromaFormat = caps[i].chroma; c.nBitDepthMinus8 = caps[i].depth - 8;
//		if (cv->cuvidGetDecoderCaps(&c) != 0) continue;
//		caps[i].supported = c.bIsSupported; caps[i].engines = c.nNumNVDECs;
//		caps[i].minw = c.nMinWidth; caps[i].minh = c.nMinHeight;
//		caps[i].maxw = c.nMaxWidth; caps[i].maxh = c.nMaxHeight; caps[i].maxmb = c.nMaxMBCount;
//	}
//	cu->cuCtxPopCurrent(NULL);
//	cu->cuDevicePrimaryCtxRelease(dev);
//out:
//	cuvid_free_functions(&cv);
//	cuda_free_functions(&cu);
//	return rc;
//}
import "C"

import (
	"encoding/hex"
	"fmt"
	"strings"
)

var queryStep = map[C.int]string{
	-1: "load libcuda.so.1", -2: "load libnvcuvid.so.1", -3: "cuInit", -4: "cuDeviceGetCount",
	-5: "find the CUDA device", -6: "cuDevicePrimaryCtxRetain", -7: "cuCtxPushCurrent",
}

// queryDecoders asks the CUDA device with this NVML UUID ("GPU-…") which
// codecs, chroma formats and bit depths its NVDEC decodes.
func queryDecoders(uuid string) (*Decoders, error) {
	raw, err := hex.DecodeString(strings.ReplaceAll(strings.TrimPrefix(uuid, "GPU-"), "-", ""))
	if err != nil || len(raw) != 16 {
		return nil, fmt.Errorf("nvdec caps: bad GPU UUID %q", uuid)
	}
	var asks []C.dsb_caps
	for _, c := range cuvidCodecs {
		for _, ch := range cuvidChroma {
			for _, depth := range []int{8, 10, 12} {
				asks = append(asks, C.dsb_caps{codec: C.int(c.cuvid), chroma: C.int(ch.cuvid), depth: C.int(depth)})
			}
		}
	}
	craw := C.CBytes(raw)
	defer C.free(craw)
	var cuerr C.int
	rc := C.dsb_query((*C.uchar)(craw), &asks[0], C.int(len(asks)), &cuerr)
	if rc != 0 {
		return nil, fmt.Errorf("nvdec caps of %s: %s failed (CUresult %d)", uuid, queryStep[rc], int(cuerr))
	}
	d := &Decoders{}
	for i, a := range asks {
		if a.supported == 0 {
			continue
		}
		if int(a.engines) > d.Engines {
			d.Engines = int(a.engines)
		}
		c := cuvidCodecs[i/(len(cuvidChroma)*3)]
		ch := cuvidChroma[i/3%len(cuvidChroma)]
		d.Caps = append(d.Caps, CodecCaps{
			Codec: c.name, Chroma: ch.name, BitDepth: int(a.depth),
			MinWidth: int(a.minw), MinHeight: int(a.minh), MaxWidth: int(a.maxw), MaxHeight: int(a.maxh),
			MaxMBCount: int(a.maxmb),
		})
	}
	return d, nil
}
