// Command app is gantry's sample service: /health reports the commit and
// version it was built from, which is what gantry's verify checks.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// Set at build time with -ldflags "-X main.gitSHA=... -X main.version=...";
// the GIT_SHA and APP_VERSION environment variables override them.
var (
	gitSHA  = "unknown"
	version = "dev"
)

func healthcheck(url string) int {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		log.Print(err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		log.Printf("%s answered %s", url, resp.Status)
		return 1
	}
	return 0
}

func main() {
	if v := os.Getenv("GIT_SHA"); v != "" {
		gitSHA = v
	}
	if v := os.Getenv("APP_VERSION"); v != "" {
		version = v
	}
	addr := ":8080"
	if p := os.Getenv("PORT"); p != "" {
		addr = ":" + p
	}
	if len(os.Args) > 1 && os.Args[1] == "-version" {
		// A one-shot task for deploy tests (a migration stands in): print and exit 0.
		log.Printf("app %s (%s)", version, gitSHA)
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "-health" {
		// For a HEALTHCHECK in an image without a shell or curl: exit 0 when /health answers 200.
		os.Exit(healthcheck("http://127.0.0.1" + addr + "/health"))
	}
	started := time.Now()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"status":  "ok",
			"git_sha": gitSHA,
			"version": version,
			"uptime":  time.Since(started).Round(time.Second).String(),
		})
	})
	// A small API for the examples' contract checks: a public list, and an
	// admin route that answers 401 without ADMIN_TOKEN as a bearer token.
	mux.HandleFunc("GET /api/v1/items", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"items": []map[string]any{{"id": 1, "name": "gantry"}}})
	})
	mux.HandleFunc("GET /api/v1/admin", func(w http.ResponseWriter, r *http.Request) {
		token := os.Getenv("ADMIN_TOKEN")
		if token == "" || r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte("admin\n"))
	})
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("hello from " + version + " (" + gitSHA + ")\n"))
	})
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		// Finish in-flight requests before exiting, so a deploy drains cleanly.
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	log.Printf("app %s (%s) listening on %s", version, gitSHA, addr)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}
