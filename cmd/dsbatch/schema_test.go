package main

import (
	"database/sql"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestSchemaQueries runs every SQL block of docs/SCHEMA.md with DuckDB in
// the folder of a real run, so the documented queries keep working.
func TestSchemaQueries(t *testing.T) {
	withORT(t)
	doc, err := os.ReadFile("../../docs/SCHEMA.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```sql\n(.*?)```").FindAllStringSubmatch(string(doc), -1)
	if len(blocks) < 5 {
		t.Fatalf("found %d SQL blocks in docs/SCHEMA.md", len(blocks))
	}
	out := filepath.Join(t.TempDir(), "out")
	if r := dsbatch(t, "run", "--no-cache", "--model", model(t), "--out", out, media); r.code != exitPartial {
		t.Fatalf("run: exit %d %s", r.code, r.stderr)
	}
	wd, _ := os.Getwd()
	defer os.Chdir(wd)
	if err := os.Chdir(out); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, b := range blocks {
		q := strings.TrimSpace(b[1])
		rows, err := db.Query(q)
		if err != nil {
			t.Errorf("%s\n%v", q, err)
			continue
		}
		n := 0
		for rows.Next() {
			n++
		}
		rows.Close()
		if n == 0 && !strings.Contains(q, ">= 3") {
			t.Errorf("no rows from\n%s", q)
		}
	}
}
