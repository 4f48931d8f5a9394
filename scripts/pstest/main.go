// Command pstest runs Google's in-memory Pub/Sub server (the pstest package of
// cloud.google.com/go/pubsub/v2) on a loopback port, for connector tests that set
// PUBSUB_EMULATOR_HOST. State lives in memory only and is lost when the process stops.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"

	"cloud.google.com/go/pubsub/v2/pstest"
)

func main() {
	port := flag.Int("port", 8085, "TCP port to listen on at 127.0.0.1 (0 picks a free port)")
	flag.Parse()
	if *port < 0 || *port > 65535 {
		log.Fatalf("pstest: invalid -port %d: expected 0 to 65535", *port)
	}

	server := pstest.NewServerWithAddress(fmt.Sprintf("127.0.0.1:%d", *port))
	defer server.Close()
	fmt.Printf("pstest: serving Pub/Sub on %s\n", server.Addr)

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	received := <-stop
	fmt.Printf("pstest: stopping on %s\n", received)
}
