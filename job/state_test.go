package job

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestOpenOutRemovesTemps(t *testing.T) {
	root := t.TempDir()
	o, err := openOut(root)
	if err != nil {
		t.Fatal(err)
	}
	o.close()
	temps := []string{
		filepath.Join(root, ".run.json.123.tmp"),
		filepath.Join(root, stateDir, ".settings.json.456.tmp"),
		filepath.Join(root, stateDir, recordsDir, ".00000000000000ff.json.7.tmp"),
		filepath.Join(root, detectionsDir, ".00000000000000ff.parquet.8.tmp"),
		filepath.Join(root, tracksDir, ".00000000000000ff.parquet.9.tmp"),
	}
	keep := filepath.Join(root, detectionsDir, "00000000000000ff.parquet")
	for _, p := range append(temps, keep) {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	o, err = openOut(root)
	if err != nil {
		t.Fatal(err)
	}
	defer o.close()
	for _, p := range temps {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s survived opening the folder (err %v)", p, err)
		}
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("committed file removed: %v", err)
	}
}

// TestSettingsDiffCoversEveryField changes each field of Settings in turn:
// every change must be reported, by the field's JSON name, so that a rerun
// never reuses results made with other settings.
func TestSettingsDiffCoversEveryField(t *testing.T) {
	base := Settings{Names: []string{"a"}}
	typ := reflect.TypeOf(base)
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		other := base
		v := reflect.ValueOf(&other).Elem().Field(i)
		switch v.Kind() {
		case reflect.String:
			v.SetString("x")
		case reflect.Int:
			v.SetInt(7)
		case reflect.Float32, reflect.Float64:
			v.SetFloat(0.5)
		case reflect.Bool:
			v.SetBool(true)
		case reflect.Slice:
			v.Set(reflect.ValueOf([]string{"b"}))
		default:
			t.Fatalf("field %s: kind %s not handled by this test", f.Name, v.Kind())
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		d := base.diff(other)
		if !strings.Contains(d, strings.ReplaceAll(name, "_", " ")) {
			t.Errorf("changing %s: diff %q does not name %s", f.Name, d, name)
		}
	}
	if d := (Settings{}).diff(Settings{Names: []string{}}); d != "" {
		t.Errorf("no names and an empty list differ: %q", d)
	}
}
