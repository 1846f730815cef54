package hub

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
)

// uiPages are the paths of the browser UI's pages: each is served the same
// HTML shell, whose script routes by the path.
var uiPages = []string{"/{$}", "/login", "/register", "/pending", "/referrals", "/referrals/new", "/referrals/{id}",
	"/board", "/wallboard", "/admin", "/account", "/notifications"}

// asset is one file of the UI, ready to serve: as it is and gzipped.
type asset struct {
	contentType string
	etag        string
	raw, gz     []byte // gz is nil when gzip does not make it smaller
}

// uiRoutes serves the UI in fsys: its pages and its assets (/assets/…).
// The pages and assets change with each release and are small, so they are
// revalidated on every load (an ETag makes that a 304) rather than cached;
// assets are compressed once, when the node starts, for browsers that take
// gzip.
func uiRoutes(mux *http.ServeMux, fsys fs.FS) error {
	shell, err := fs.ReadFile(fsys, "index.html")
	if err != nil {
		return err
	}
	page := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(shell)
	}
	for _, p := range uiPages {
		mux.HandleFunc("GET "+p, page)
	}
	assets, err := loadAssets(fsys)
	if err != nil {
		return err
	}
	mux.Handle("GET /assets/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, ok := assets[strings.TrimPrefix(r.URL.Path, "/")]
		if !ok {
			http.NotFound(w, r) // nor any listing of what the UI is made of
			return
		}
		h := w.Header()
		h.Set("Content-Type", a.contentType)
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", a.etag)
		h.Set("Vary", "Accept-Encoding")
		if r.Header.Get("If-None-Match") == a.etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		body := a.raw
		if a.gz != nil && acceptsGzip(r) {
			h.Set("Content-Encoding", "gzip")
			body = a.gz
		}
		_, _ = w.Write(body)
	}))
	return nil
}

// loadAssets reads every file under assets/, keyed by its path.
func loadAssets(fsys fs.FS) (map[string]asset, error) {
	assets := map[string]asset{}
	err := fs.WalkDir(fsys, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		raw, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(raw)
		a := asset{contentType: mime.TypeByExtension(path.Ext(p)), etag: `"` + hex.EncodeToString(sum[:12]) + `"`, raw: raw}
		if a.contentType == "" {
			a.contentType = "application/octet-stream"
		}
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		_, _ = zw.Write(raw)
		if err := zw.Close(); err != nil {
			return err
		}
		if buf.Len() < len(raw) {
			a.gz = buf.Bytes()
		}
		assets[p] = a
		return nil
	})
	return assets, err
}

// acceptsGzip reports whether the request takes a gzipped answer: gzip is
// listed in Accept-Encoding without q=0.
func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			continue
		}
		q, ok := strings.CutPrefix(strings.TrimSpace(params), "q=")
		if !ok {
			return true
		}
		v, err := strconv.ParseFloat(q, 64)
		return err == nil && v > 0
	}
	return false
}
