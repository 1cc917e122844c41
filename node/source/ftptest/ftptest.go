// Package ftptest starts a real FTP server (goftp) on loopback over a folder, for
// tests of FTP update sources.
package ftptest

import (
	"errors"
	"io/fs"
	"maps"
	"net"
	"os"
	"path/filepath"
	"testing"

	ftpserver "goftp.io/server/v2"
	ftpfile "goftp.io/server/v2/driver/file"
)

// Start serves dir over FTP on 127.0.0.1 for user/pass until the test ends and
// returns the server's address.
func Start(tb testing.TB, dir, user, pass string) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	drv, err := ftpfile.NewDriver(dir)
	if err != nil {
		tb.Fatal(err)
	}
	srv, err := ftpserver.NewServer(&ftpserver.Options{
		Driver:   drv,
		Auth:     &ftpserver.SimpleAuth{Name: user, Password: pass},
		Perm:     ftpserver.NewSimplePerm("test", "test"),
		Hostname: "127.0.0.1",
		Port:     l.Addr().(*net.TCPAddr).Port,
		Logger:   &ftpserver.DiscardLogger{},
		Commands: Commands(dir),
	})
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	tb.Cleanup(func() {
		_ = srv.Shutdown()
		<-done
	})
	return l.Addr().String()
}

// Commands are goftp's commands for a server over dir, except that RETR of a
// missing file answers 550 as real servers do (goftp answers 551).
func Commands(dir string) map[string]ftpserver.Command {
	cmds := maps.Clone(ftpserver.DefaultCommands())
	cmds["RETR"] = retr550{Command: cmds["RETR"], root: dir}
	return cmds
}

// retr550 answers RETR of a missing file with 550, as vsftpd, ProFTPD, IIS and
// FileZilla do; goftp's own RETR answers 551 for every error.
type retr550 struct {
	ftpserver.Command
	root string
}

func (c retr550) Execute(sess *ftpserver.Session, param string) {
	p := filepath.Join(c.root, filepath.FromSlash(sess.BuildPath(param)))
	if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
		sess.WriteMessage(550, "No such file or directory")
		return
	}
	c.Command.Execute(sess, param)
}
