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
	blocks := schemaBlocks(t, "sql", 5)
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
	for _, q := range blocks {
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

// schemaBlocks returns docs/SCHEMA.md's code blocks of language lang (sql,
// sql-pose, sql-seg), trimmed, and fails when there are fewer than least.
func schemaBlocks(t *testing.T, lang string, least int) []string {
	t.Helper()
	doc, err := os.ReadFile("../../docs/SCHEMA.md")
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	for _, m := range regexp.MustCompile("(?s)```"+regexp.QuoteMeta(lang)+"\n(.*?)```").FindAllStringSubmatch(string(doc), -1) {
		blocks = append(blocks, strings.TrimSpace(m[1]))
	}
	if len(blocks) < least {
		t.Fatalf("found %d %s blocks in docs/SCHEMA.md, want at least %d", len(blocks), lang, least)
	}
	return blocks
}
