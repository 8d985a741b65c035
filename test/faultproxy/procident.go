package faultproxy

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ProcIdentify returns an Identify that names the dialer of a loopback
// connection by finding which process owns the other end of the socket:
// the connection's remote port is looked up in /proc/net/tcp{,6} to get the
// socket inode, and the inode among the open files of the processes that
// owners lists (pid → node id). Linux only; elsewhere it always errs.
func ProcIdentify(owners func() map[int]string) Identify {
	return func(c net.Conn) (string, error) {
		remote, ok := c.RemoteAddr().(*net.TCPAddr)
		if !ok {
			return "", fmt.Errorf("faultproxy: not a TCP connection: %v", c.RemoteAddr())
		}
		local, ok := c.LocalAddr().(*net.TCPAddr)
		if !ok {
			return "", fmt.Errorf("faultproxy: not a TCP connection: %v", c.LocalAddr())
		}
		inode, err := socketInode(remote.Port, local.Port)
		if err != nil {
			return "", err
		}
		want := "socket:[" + inode + "]"
		for pid, id := range owners() {
			dir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
			ents, err := os.ReadDir(dir)
			if err != nil {
				continue
			}
			for _, e := range ents {
				if l, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && l == want {
					return id, nil
				}
			}
		}
		return "", fmt.Errorf("faultproxy: no known process owns the socket of port %d (inode %s)", remote.Port, inode)
	}
}

// socketInode finds the inode of the socket whose local port is lport and
// remote port is rport.
func socketInode(lport, rport int) (string, error) {
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || fields[0] == "sl" {
				continue
			}
			if hexPort(fields[1]) == lport && hexPort(fields[2]) == rport {
				fh.Close()
				return fields[9], nil
			}
		}
		fh.Close()
	}
	return "", fmt.Errorf("faultproxy: no socket with local port %d and remote port %d in /proc/net/tcp", lport, rport)
}

// hexPort parses the port of "0100007F:1F90".
func hexPort(addr string) int {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return -1
	}
	p, err := strconv.ParseUint(addr[i+1:], 16, 32)
	if err != nil {
		return -1
	}
	return int(p)
}
