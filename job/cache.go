package job

import (
	"bufio"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/dsbatch/dsbatch/decode"
	"github.com/dsbatch/dsbatch/internal/atomicfile"
)

// cacheVersion changes whenever what Probe records changes, so that old
// caches are ignored rather than misread.
const cacheVersion = 4

// Cache remembers probe results by absolute path, size and modification
// time, so that re-probing an unchanged archive reads no video file. It is
// safe for concurrent use.
type Cache struct {
	path    string
	mu      sync.Mutex
	entries map[string]cacheEntry
	dirty   bool
}

type cacheEntry struct {
	Size    int64
	ModTime int64 // nanoseconds since the epoch
	Info    decode.Info
	Err     string // a media error that will not change while the file does not
}

// CacheFile is the name of the probe cache inside its folder.
const CacheFile = "probe-cache.gob"

// OpenCache loads the cache kept in dir (created on Save). A missing,
// unreadable or outdated cache starts empty: the cache only saves time.
func OpenCache(dir string) *Cache {
	c := &Cache{path: filepath.Join(dir, CacheFile), entries: map[string]cacheEntry{}}
	atomicfile.RemoveDeadTemps(dir)
	f, err := os.Open(c.path)
	if err != nil {
		return c
	}
	defer f.Close()
	dec := gob.NewDecoder(bufio.NewReader(f))
	var version int
	if dec.Decode(&version) != nil || version != cacheVersion {
		return c
	}
	var entries map[string]cacheEntry
	if dec.Decode(&entries) == nil {
		c.entries = entries
	}
	return c
}

// Len returns the number of entries.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

func (c *Cache) get(path string, size int64, mod int64) (cacheEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[path]
	if !ok || e.Size != size || e.ModTime != mod {
		return cacheEntry{}, false
	}
	return e, true
}

func (c *Cache) put(path string, e cacheEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries[path] = e
	c.dirty = true
}

// Save writes the cache atomically (temporary file, then rename) if it
// changed since it was opened.
func (c *Cache) Save() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.dirty {
		return nil
	}
	err := atomicfile.Write(c.path, func(f io.Writer) error {
		w := bufio.NewWriter(f)
		enc := gob.NewEncoder(w)
		return errors.Join(enc.Encode(cacheVersion), enc.Encode(c.entries), w.Flush())
	})
	if err != nil {
		return fmt.Errorf("probe cache: %w", err)
	}
	c.dirty = false
	return nil
}

// cacheable reports whether a probe error belongs to the file's content
// (and so holds until the file changes), rather than to its permissions or
// to the moment.
func cacheable(err error) bool {
	for _, e := range []error{decode.ErrEmpty, decode.ErrNotVideo, decode.ErrNoVideo, decode.ErrUnsupportedCodec, decode.ErrTruncated, decode.ErrPlaylist} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
