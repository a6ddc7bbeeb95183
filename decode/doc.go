// Package decode opens video files, reports what they contain (Probe) and
// decodes their frames (Open) with FFmpeg through go-astiav.
//
// Frames come out in host memory as packed RGB24 or NV12, rotated upright
// according to the container's display matrix, with presentation timestamps
// in seconds from the start of the stream. Every error names the file and
// the reason; bad input never panics or hangs.
package decode
