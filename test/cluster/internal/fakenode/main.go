// Command fakenode is a stand-in for raftsqld in the cluster harness's own
// tests: it accepts raftsqld's flags, serves /status and /readyz, and on
// its Raft address exchanges hello lines with its peers so that a test can
// see which links the fault proxy lets through. The lowest id is always the
// leader. It knows nothing of Raft or SQL: with $FAKENODE_PG_DSN set it
// forwards its PostgreSQL port to that server (every node of one cluster to
// the same database, created on first use and named after the cluster's
// directory), which lets the whole-cluster tests be tried against a real
// PostgreSQL while raftsqld is being written.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "fakenode:", err)
		os.Exit(1)
	}
}

func run() error {
	fs := flag.NewFlagSet("fakenode", flag.ContinueOnError)
	id := fs.String("id", "", "")
	fs.String("data-dir", "", "")
	pgAddr := fs.String("pg-addr", "", "")
	raftAddr := fs.String("raft-addr", "", "")
	httpAddr := fs.String("http-addr", "", "")
	peers := fs.String("peers", "", "")
	fs.Duration("election-timeout", 0, "")
	fs.Duration("heartbeat-interval", 0, "")
	fs.Int("snapshot-entries", 0, "")
	dataDir := fs.Lookup("data-dir")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	var ids []string
	addrs := map[string]string{}
	for _, p := range strings.Split(*peers, ",") {
		k, v, ok := strings.Cut(p, "=")
		if !ok {
			return fmt.Errorf("bad --peers entry %q", p)
		}
		ids = append(ids, k)
		addrs[k] = v
	}
	sort.Strings(ids)
	var mu sync.Mutex
	heard := map[string]time.Time{}

	rl, err := net.Listen("tcp", *raftAddr)
	if err != nil {
		return err
	}
	pl, err := net.Listen("tcp", *pgAddr)
	if err != nil {
		return err
	}
	defer pl.Close()
	if dsn := os.Getenv("FAKENODE_PG_DSN"); dsn != "" {
		db := dbName(dataDir.Value.String())
		go forwardPG(pl, dsn, db)
	}
	go func() {
		for {
			c, err := rl.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					mu.Lock()
					heard[sc.Text()] = time.Now()
					mu.Unlock()
				}
			}()
		}
	}()
	for _, p := range ids {
		if p == *id {
			continue
		}
		go func(addr string) {
			for {
				c, err := net.DialTimeout("tcp", addr, time.Second)
				if err != nil {
					time.Sleep(50 * time.Millisecond)
					continue
				}
				for {
					if _, err := fmt.Fprintln(c, *id); err != nil {
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
				c.Close()
			}
		}(addrs[p])
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		role := "follower"
		if *id == ids[0] {
			role = "leader"
		}
		var conf []map[string]any
		for _, p := range ids {
			conf = append(conf, map[string]any{"id": p, "raft_addr": addrs[p], "voter": true})
		}
		// heard_from: peers heard from in the last 300 ms.
		var recent []string
		mu.Lock()
		for p, t := range heard {
			if time.Since(t) < 300*time.Millisecond {
				recent = append(recent, p)
			}
		}
		mu.Unlock()
		sort.Strings(recent)
		json.NewEncoder(w).Encode(map[string]any{
			"id": *id, "role": role, "term": 1, "leader": ids[0],
			"commit_index": 1, "applied_index": 1, "configuration": conf,
			"heard_from": recent,
		})
	})
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	go func() {
		<-sig
		os.Exit(0) // a clean shutdown, as raftsqld does on SIGTERM
	}()
	return http.ListenAndServe(*httpAddr, mux)
}
