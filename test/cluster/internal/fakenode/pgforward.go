package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
)

var notIdent = regexp.MustCompile(`[^a-z0-9_]+`)

// dbName names the database of a cluster after the folder that holds the
// nodes (data dir = <cluster>/<id>/data).
func dbName(dataDir string) string {
	base := strings.ToLower(filepath.Base(filepath.Dir(filepath.Dir(dataDir))))
	name := "fk_" + notIdent.ReplaceAllString(base, "_")
	if len(name) > 63 {
		name = name[len(name)-63:]
	}
	return name
}

// forwardPG accepts client connections and relays them to the server of
// dsn, with the startup message's database replaced by db.
func forwardPG(ln net.Listener, dsn, db string) {
	u, err := url.Parse(dsn)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fakenode: bad FAKENODE_PG_DSN:", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	if conn, err := pgx.Connect(ctx, dsn); err == nil {
		conn.Exec(ctx, "CREATE DATABASE "+db) // the other nodes race to do the same
		conn.Close(ctx)
	}
	cancel()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go relay(c, u.Host, db)
	}
}

func relay(client net.Conn, server, db string) {
	defer client.Close()
	be := pgproto3.NewBackend(client, client)
	msg, err := be.ReceiveStartupMessage()
	if err != nil {
		return
	}
	for {
		if _, ok := msg.(*pgproto3.SSLRequest); ok {
			client.Write([]byte("N"))
			if msg, err = be.ReceiveStartupMessage(); err != nil {
				return
			}
			continue
		}
		break
	}
	sm, ok := msg.(*pgproto3.StartupMessage)
	if !ok {
		return
	}
	sm.Parameters["database"] = db
	sm.Parameters["user"] = "postgres"
	s, err := net.Dial("tcp", server)
	if err != nil {
		return
	}
	defer s.Close()
	buf, err := sm.Encode(nil)
	if err != nil {
		return
	}
	if _, err := s.Write(buf); err != nil {
		return
	}
	go func() {
		io.Copy(s, client)
		s.Close()
	}()
	io.Copy(client, s)
}
