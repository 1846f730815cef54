package static

import (
	"bytes"
	"compress/gzip"
	"io/fs"
	"strings"
	"testing"
)

// TestEveryPageWeighsUnder100KBGzipped adds up, gzipped, everything a page
// loads: every page is the same shell, which imports every module, so the
// sum of the UI's files (but the screenshots, which are not served) is
// every page's weight.
func TestEveryPageWeighsUnder100KBGzipped(t *testing.T) {
	fsys := FS()
	var raw, zipped int
	err := fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(path, ".md") {
			return err
		}
		b, err := fs.ReadFile(fsys, path)
		if err != nil {
			return err
		}
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		_, _ = zw.Write(b)
		_ = zw.Close()
		raw += len(b)
		zipped += buf.Len()
		t.Logf("%-40s %7d B, %6d B gzipped", path, len(b), buf.Len())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("every page: %d B, %d B gzipped", raw, zipped)
	if zipped > 100<<10 {
		t.Fatalf("the UI weighs %d bytes gzipped; the budget is 100 KB", zipped)
	}
}

// TestTheShellHasNoInlineScriptOrStyle keeps the CSP strict: the shell
// loads its script and styles from files only.
func TestTheShellHasNoInlineScriptOrStyle(t *testing.T) {
	b, err := fs.ReadFile(FS(), "index.html")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, bad := range []string{"<style", " style=", "onload=", "onclick=", "javascript:"} {
		if strings.Contains(s, bad) {
			t.Errorf("index.html contains %q", bad)
		}
	}
	if strings.Count(s, "<script") != strings.Count(s, `<script type="module" src="/assets/`) {
		t.Errorf("index.html has a script that is not a module file of /assets/")
	}
}
