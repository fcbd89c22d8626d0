// The lab's test workload (a fixture, not installed by the program): an HTTP server that
// answers with the pod's name and node, and logs every request, so `kubectl logs` has lines.
// With -get URL it is a client instead: it fetches URL and exits 0 only if the answer
// contains -expect, so a pod's exit code says whether pod-to-pod traffic worked.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	listen := flag.String("listen", ":8080", "address to serve on")
	get := flag.String("get", "", "fetch this URL and exit")
	expect := flag.String("expect", "", "with -get: text the answer must contain")
	flag.Parse()
	if *get != "" {
		os.Exit(fetch(*get, *expect))
	}
	who := fmt.Sprintf("pod=%s node=%s\n", os.Getenv("POD_NAME"), os.Getenv("NODE_NAME"))
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		log.Printf("request from %s for %s", r.RemoteAddr, r.URL.Path)
		io.WriteString(w, who)
	})
	log.Printf("echo: serving on %s as %s", *listen, strings.TrimSpace(who))
	log.Fatal(http.ListenAndServe(*listen, nil))
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
