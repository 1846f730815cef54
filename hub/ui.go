package hub

import (
	"io/fs"
	"net/http"
	"strings"
)

// uiPages are the paths of the browser UI's pages: each is served the same
// HTML shell, whose script routes by the path.
var uiPages = []string{"/{$}", "/login", "/register", "/pending", "/referrals", "/referrals/new", "/referrals/{id}",
	"/board", "/wallboard", "/admin", "/account", "/notifications"}

// uiRoutes serves the UI in fsys: its pages and its assets (/assets/…).
// The pages and assets change with each release and are small, so they are
// revalidated on every load rather than cached.
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
	assets := http.FileServerFS(fsys)
	mux.Handle("GET /assets/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r) // no listings of what the UI is made of
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		assets.ServeHTTP(w, r)
	}))
	return nil
}
