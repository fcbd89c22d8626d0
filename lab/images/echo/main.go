// The lab's test workload (a fixture, not installed by the program): an HTTP server that
// answers with the pod's name and node, and logs every request, so `kubectl logs` has lines.
// With -get URL it is a client instead: it fetches URL and exits 0 only if the answer
// contains -expect, so a pod's exit code says whether pod-to-pod traffic worked.
//
// On SIGTERM it behaves like a well-kept service: it keeps serving for -linger (the time every
// node's kube-proxy needs to drop the terminating endpoint), then closes gracefully, finishing
// requests in flight. Exiting at once resets connections other nodes still send it, and a
// rollout's availability test would blame the drain for the workload's own shutdown.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", ":8080", "address to serve on")
	get := flag.String("get", "", "fetch this URL and exit")
	expect := flag.String("expect", "", "with -get: text the answer must contain")
	linger := flag.Duration("linger", 3*time.Second, "after SIGTERM: keep serving this long, then shut down")
	flag.Parse()
	if *get != "" {
		os.Exit(fetch(*get, *expect))
	}
	who := fmt.Sprintf("pod=%s node=%s\n", os.Getenv("POD_NAME"), os.Getenv("NODE_NAME"))
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		log.Printf("request from %s for %s", r.RemoteAddr, r.URL.Path)
		io.WriteString(w, who)
	})
	server := &http.Server{Addr: *listen}
	stopped := make(chan struct{})
	go func() {
		terms := make(chan os.Signal, 1)
		signal.Notify(terms, syscall.SIGTERM, syscall.SIGINT)
		<-terms
		log.Printf("echo: terminating; serving %s more, then closing", *linger)
		time.Sleep(*linger)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := server.Shutdown(ctx); err != nil {
			log.Printf("echo: shutdown: %v", err)
		}
		close(stopped)
	}()
	log.Printf("echo: serving on %s as %s", *listen, strings.TrimSpace(who))
	if err := server.ListenAndServe(); err != http.ErrServerClosed {
		log.Fatal(err)
	}
	<-stopped
	log.Printf("echo: closed")
}

func fetch(url, expect string) int {
	client := http.Client{Timeout: 5 * time.Second}
	for attempt := 1; attempt <= 10; attempt++ {
		response, err := client.Get(url)
		if err == nil {
			body, _ := io.ReadAll(response.Body)
			response.Body.Close()
			log.Printf("GET %s: %s %q", url, response.Status, body)
			if strings.Contains(string(body), expect) {
				return 0
			}
		} else {
			log.Printf("GET %s: %v", url, err)
		}
		time.Sleep(time.Second)
	}
	return 1
}
