package api

import (
	"net"
	"strings"
)

// IsLoopback reports whether a listen address ("127.0.0.1:7780", "[::1]:7780",
// "localhost:7780") only accepts connections from this machine. An empty host
// (":7780") listens on every interface and is not loopback. The caller requires a
// token when it is false.
func IsLoopback(listenAddr string) bool {
	host, _, err := net.SplitHostPort(listenAddr)
	if err != nil {
		host = strings.Trim(listenAddr, "[]") // no port given
	}
	return isLoopbackHost(host)
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	if i := strings.IndexByte(host, '%'); i >= 0 { // zone of a link-local address
		host = host[:i]
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
