package hub_test

import (
	"compress/gzip"
	"io"
	"io/fs"
	"net/http"
	"strings"
	"testing"

	"patientpass/static"
)

// TestAssetsAreServedGzippedWithETags: a browser that takes gzip is sent
// the compressed file, one that does not the file itself; an ETag turns a
// revalidation into a 304; nothing outside the UI's files, and no listing,
// is served.
func TestAssetsAreServedGzippedWithETags(t *testing.T) {
	e := newEnv(t, openEmbedded(t))
	want, err := fs.ReadFile(static.FS(), "assets/app.js")
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string, header ...string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", e.base+path, nil)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		// The transport's own gzip handling would hide what the server did.
		res, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { res.Body.Close() })
		return res
	}
	res := get("/assets/app.js", "Accept-Encoding", "gzip, deflate, br")
	if res.StatusCode != 200 || res.Header.Get("Content-Encoding") != "gzip" || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/javascript") {
		t.Fatalf("gzip request: %d, %q, %q", res.StatusCode, res.Header.Get("Content-Encoding"), res.Header.Get("Content-Type"))
	}
	zr, err := gzip.NewReader(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := io.ReadAll(zr); string(got) != string(want) {
		t.Fatal("the gzipped app.js is not app.js")
	}
	plain := get("/assets/app.js")
	if body, _ := io.ReadAll(plain.Body); plain.Header.Get("Content-Encoding") != "" || string(body) != string(want) {
		t.Fatalf("plain request: encoding %q, %d bytes", plain.Header.Get("Content-Encoding"), len(body))
	}
	if again := get("/assets/app.js", "If-None-Match", res.Header.Get("ETag")); again.StatusCode != http.StatusNotModified {
		t.Fatalf("revalidation with the ETag = %d; want 304", again.StatusCode)
	}
	for _, p := range []string{"/assets/", "/assets/lib/", "/assets/nope.js"} {
		if res := get(p); res.StatusCode != 404 {
			t.Errorf("GET %s = %d; want 404", p, res.StatusCode)
		}
	}
	if res := get("/assets/../index.html"); res.StatusCode == 200 {
		t.Errorf("GET /assets/../index.html served a file")
	}
	if res := get("/assets/app.js", "Accept-Encoding", "gzip;q=0"); res.Header.Get("Content-Encoding") != "" {
		t.Errorf("gzip;q=0 was answered gzipped")
	}
}
