// Package job turns folders of recordings into work: it discovers video
// files, probes them in parallel through a cache, and plans which worker
// (one per GPU, or CPU workers) processes which file.
package job
