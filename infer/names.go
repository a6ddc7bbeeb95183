package infer

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// ParseNamesDict parses the class names Ultralytics writes into model
// metadata: a Python dict literal such as {0: 'person', 1: "bicycle"}. Keys
// must be 0..n-1 in any order.
func ParseNamesDict(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	if len(s) < 2 || s[0] != '{' || s[len(s)-1] != '}' {
		return nil, fmt.Errorf("names %q: want a dict like {0: 'person'}", clip(s))
	}
	body := s[1 : len(s)-1]
	byKey := map[int]string{}
	for i := 0; ; {
		for i < len(body) && (body[i] == ' ' || body[i] == ',' || body[i] == '\n' || body[i] == '\t') {
			i++
		}
		if i >= len(body) {
			break
		}
		j := i
		for j < len(body) && body[j] >= '0' && body[j] <= '9' {
			j++
		}
		key, err := strconv.Atoi(body[i:j])
		if err != nil {
			return nil, fmt.Errorf("names: bad key at %q", clip(body[i:]))
		}
		i = j
		for i < len(body) && body[i] == ' ' {
			i++
		}
		if i >= len(body) || body[i] != ':' {
			return nil, fmt.Errorf("names: missing ':' after key %d", key)
		}
		i++
		for i < len(body) && body[i] == ' ' {
			i++
		}
		if i >= len(body) || (body[i] != '\'' && body[i] != '"') {
			return nil, fmt.Errorf("names: value of key %d is not a quoted string", key)
		}
		val, n, err := pyString(body[i:])
		if err != nil {
			return nil, fmt.Errorf("names: key %d: %w", key, err)
		}
		i += n
		if _, dup := byKey[key]; dup {
			return nil, fmt.Errorf("names: key %d twice", key)
		}
		byKey[key] = val
	}
	keys := make([]int, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	names := make([]string, len(keys))
	for i, k := range keys {
		if k != i {
			return nil, fmt.Errorf("names: keys must be 0..%d, missing %d", len(keys)-1, i)
		}
		names[i] = byKey[k]
	}
	return names, nil
}

// pyString reads a quoted Python string literal at the start of s and
// returns its value and length.
func pyString(s string) (string, int, error) {
	q := s[0]
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == q:
			return b.String(), i + 1, nil
		case c == '\\' && i+1 < len(s):
			i++
			switch s[i] {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			default:
				b.WriteByte(s[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, fmt.Errorf("unterminated string")
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// ReadNames reads class names, one per line; blank lines and lines starting
// with # are skipped.
func ReadNames(r io.Reader) ([]string, error) {
	var names []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		names = append(names, line)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no class names")
	}
	return names, nil
}
