// Package static is the browser UI, embedded in the binary: an HTML shell
// and ES modules (Preact with htm, vendored; no build step), served by the
// hub. Nothing is fetched from anywhere else at run time.
package static

import (
	"embed"
	"io/fs"
)

//go:embed app
var files embed.FS

// FS returns the UI's files: index.html and assets/.
func FS() fs.FS {
	sub, err := fs.Sub(files, "app")
	if err != nil {
		panic("static: " + err.Error()) // the directory is embedded above
	}
	return sub
}
