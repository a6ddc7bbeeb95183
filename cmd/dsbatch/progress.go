package main

import (
	"io"
	"os"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// counter reports progress through a known number of steps.
type counter interface {
	Add(n int)
	Finish()
}

type silent struct{}

func (silent) Add(int) {}
func (silent) Finish() {}

type bar struct{ b *progressbar.ProgressBar }

func (b bar) Add(n int) { _ = b.b.Add(n) }
func (b bar) Finish()   { _ = b.b.Finish() }

// newCounter shows a progress bar on w when w is a terminal and the work is
// long enough to watch; otherwise it stays silent.
func newCounter(w io.Writer, total int, label string) counter {
	f, ok := w.(*os.File)
	if !ok || total < 50 || !term.IsTerminal(int(f.Fd())) {
		return silent{}
	}
	return bar{progressbar.NewOptions(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(label),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("files"),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionThrottle(100_000_000),
	)}
}
