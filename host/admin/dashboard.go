package admin

import (
	"embed"
	"io/fs"
	"net/http"
)

// ui is the dashboard: one page, its script and its style sheet, with no
// build step and nothing loaded from elsewhere.
//
//go:embed ui
var ui embed.FS

func dashboard() http.Handler {
	sub, _ := fs.Sub(ui, "ui")
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		files.ServeHTTP(w, r)
	})
}
